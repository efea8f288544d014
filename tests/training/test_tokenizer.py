"""The GPT-2 tokenizer loads from the offline cache, and without cache or network fails with one clear message."""

from __future__ import annotations

import os
import subprocess
import sys

from tui_trainer.training.lib.tokenizer import EOT, get_tokenizer

from .data_helpers import closed_port


def test_gpt2_encoding_round_trips():
    enc = get_tokenizer()
    assert enc.n_vocab == 50257 and enc.eot_token == EOT
    tokens = enc.encode("Hello, I'm a language model,")
    assert tokens == [15496, 11, 314, 1101, 257, 3303, 2746, 11]  # GPT-2's well-known ids for this prompt
    assert enc.decode(tokens) == "Hello, I'm a language model,"


def _offline_env(tmp_path) -> dict:
    """An empty tiktoken cache and every proxy pointed at a closed local port: no way to fetch the BPE."""
    dead = f"http://127.0.0.1:{closed_port()}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "all_proxy")}
    env.update(TIKTOKEN_CACHE_DIR=str(tmp_path / "empty-cache"), HTTPS_PROXY=dead, HTTP_PROXY=dead,
               https_proxy=dead, http_proxy=dead)
    return env


def test_offline_without_cache_raises_one_clear_message(tmp_path):
    code = ("from tui_trainer.training.lib.tokenizer import get_tokenizer, TokenizerUnavailable\n"
            "try:\n    get_tokenizer()\nexcept TokenizerUnavailable as e:\n    print('MESSAGE', e)\n"
            "else:\n    print('LOADED')\n")
    out = subprocess.run([sys.executable, "-c", code], env=_offline_env(tmp_path), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("MESSAGE"), out.stdout
    message = out.stdout
    assert "GPT-2 BPE" in message and "offline" in message
    assert str(tmp_path / "empty-cache") in message  # says where it looked
    assert "TIKTOKEN_CACHE_DIR" in message and "run once with network" in message  # and both fixes
    assert "vocab.bpe" in message and "encoder.json" in message  # and what is missing
    assert "developers" not in message and "../shared" not in message  # nothing meant for this project's devs


def test_prepare_reports_missing_tokenizer_without_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tui_trainer.training.prepare", "--config", os.devnull,
         "--set", "data.source=embedded", "--set", f"data.cache_dir={tmp_path / 'cache'}"],
        env=_offline_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: The GPT-2 BPE"), out.stderr
    assert not (tmp_path / "cache" / "shards").exists()  # failed before touching the cache
