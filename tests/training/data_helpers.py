"""Helpers for the data/tokenizer/HellaSwag/evaluation tests: configs, synthetic shards, a model whose logits the
test chooses, and a local HTTP server for the download code."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tui_trainer.training.lib.config import load_config


def make_cfg(tmp_path: Path, *overrides: str):
    """A validated TrainingConfig with its cache under tmp_path and a tiny batch (B=2, T=8)."""
    base = [f"data.cache_dir={tmp_path / 'cache'}", "model.block_size=8", "optim.micro_batch_size=2",
            "optim.total_batch_size=16", "sample.max_tokens=4"]
    return load_config(None, base + list(overrides))


def write_shards(shard_dir: Path, val_tokens: int, train_lengths: list[int], *, manifest: bool = True,
                 source: str = "synthetic") -> list[np.ndarray]:
    """Shards whose token at global offset k is k % 50000, so a window's first token tells where it came from.
    Returns the arrays written (val first)."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    arrays, start, entries = [], 0, []
    for index, length in enumerate([val_tokens] + list(train_lengths)):
        split = "val" if index == 0 else "train"
        arr = (np.arange(start, start + length) % 50000).astype(np.uint16)
        name = f"{source}_{split}_{index:06d}.npy"
        np.save(shard_dir / name, arr)
        entries.append({"file": name, "split": split, "tokens": length})
        arrays.append(arr)
        start += length
    if manifest:
        (shard_dir / "manifest.json").write_text(json.dumps(
            {"source": source, "tokenizer": "gpt2", "eot": 50256, "shards": entries, "complete": True}))
    return arrays


class UnigramModel(nn.Module):
    """Logits are the same learned vector at every position: loss of token t = -log softmax(bias)[t], computable
    by hand. Follows the GPT contract (model(idx) -> (logits, None); model(idx, y) -> (None, loss)) and has a
    position table (transformer.wpe) giving its block_size, but no hidden_states method."""

    def __init__(self, bias: torch.Tensor, block_size: int = 64):
        super().__init__()
        self.bias = nn.Parameter(bias.clone().float())
        self.transformer = nn.ModuleDict({"wpe": nn.Embedding(block_size, 1)})
        self.block_size = block_size
        self.calls = 0

    def forward(self, idx, targets=None):
        self.calls += 1
        if idx.size(1) > self.block_size:
            raise ValueError(f"sequence of {idx.size(1)} exceeds block_size {self.block_size}")
        logits = self.bias.expand(idx.size(0), idx.size(1), -1)
        if targets is None:
            return logits, None
        return None, nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def token_losses(bias: torch.Tensor) -> torch.Tensor:
    return -torch.log_softmax(bias.float(), dim=-1)


@contextlib.contextmanager
def serve_directory(root: Path):
    """An HTTP server on 127.0.0.1 serving ``root``; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def closed_port() -> int:
    """A local port nothing listens on (bound then released)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
