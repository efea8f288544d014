"""Validation loss, HellaSwag accuracy and text samples for a GPT model (raw or torch.compile'd, never DDP).

All three put the model in eval mode under ``torch.no_grad`` and restore its previous mode. ``autocast`` is a
zero-argument callable returning a context manager (torch.autocast or contextlib.nullcontext). Results that need
every rank are all-reduced when torch.distributed is initialised; host syncs happen once per call, not per batch.
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .hellaswag import render_example
from .tokenizer import EOT, get_tokenizer

Autocast = Callable[[], ContextManager]

# Tokens per HellaSwag forward (rows × padded length): enough to batch several examples, small enough that
# activations (and the logits of models without a hidden_states method) stay a few hundred MB.
HELLASWAG_BATCH_TOKENS = 4096


@contextlib.contextmanager
def _evaluating(model: torch.nn.Module):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    return _all_reduce(t, dist.ReduceOp.SUM)  # SUM (not AVG): gloo has no AVG


def _all_reduce(t: torch.Tensor, op) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=op)
    return t


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


# Batches between two looks at the stop flag during an evaluation. Each look is one all-reduce of a single value
# (every rank must leave at the same batch) and a host sync, so not every batch; a CPU batch takes 0.1-1 s, so a
# stop is seen within seconds even in a 10,042-example HellaSwag that would otherwise outlast the launcher's
# 120 s grace before SIGKILL (and lose the steps since the last checkpoint).
STOP_CHECK_EVERY = 4


class EvaluationStopped(Exception):
    """A stop (SIGTERM/SIGINT) arrived during an evaluation: every rank left it at the same batch, nothing was
    reported; the trainer checkpoints as for any stop, before this step's evaluations, so a resume redoes them."""


def _stop_agreed(should_stop: Callable[[], bool] | None, batch: int, common_batches: int, device) -> bool:
    """At every STOP_CHECK_EVERY-th batch that all ranks reach: did any rank's stop flag go up? (A collective.)"""
    if should_stop is None or batch % STOP_CHECK_EVERY or batch >= common_batches:
        return False
    flag = torch.tensor(1.0 if should_stop() else 0.0, device=device)
    return _all_reduce(flag, dist.ReduceOp.MAX).item() > 0


def logits_at(model: torch.nn.Module, idx: torch.Tensor, rows: torch.Tensor | slice,
              positions: torch.Tensor | int) -> torch.Tensor:
    """Logits at ``(rows, positions)`` of ``idx`` only. When the model exposes ``hidden_states`` and
    ``lm_head`` (our GPT does), the 50304-wide head runs on just those positions — for HellaSwag the endings,
    for sampling the last token — instead of materialising logits for every position."""
    hidden_states, head = getattr(model, "hidden_states", None), getattr(model, "lm_head", None)
    if callable(hidden_states) and head is not None:
        return head(hidden_states(idx)[rows, positions])
    logits, _ = model(idx)
    return logits[rows, positions]


def model_block_size(model: torch.nn.Module) -> int:
    """The model's context length, read from its position table (works through torch.compile's wrapper)."""
    return int(model.transformer.wpe.weight.shape[0])


# --------------------------------------------------------------------------------------- val loss
def evaluate_loss(model: torch.nn.Module, val_loader, steps: int, device, autocast: Autocast,
                  should_stop: Callable[[], bool] | None = None) -> float:
    """Mean loss over ``steps`` validation micro-batches from the start of the val split (the loader is reset,
    so every evaluation sees the same tokens), averaged over ranks. EvaluationStopped once ``should_stop``
    (the trainer's stop flag) is up on any rank."""
    val_loader.reset()
    total = torch.zeros((), dtype=torch.float32, device=device)
    with _evaluating(model):
        for batch in range(steps):
            if _stop_agreed(should_stop, batch, steps, device):
                raise EvaluationStopped(f"stopped during the validation loss, at batch {batch} of {steps}")
            x, y = val_loader.next_batch()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast():
                _, loss = model(x, y)
            total += loss.detach().float()
    total /= steps
    return _all_reduce_sum(total).item() / _world_size()


# -------------------------------------------------------------------------------------- HellaSwag
def run_hellaswag_eval(model: torch.nn.Module, examples: list[dict], device, autocast: Autocast, rank: int,
                       world_size: int, *, batch_tokens: int = HELLASWAG_BATCH_TOKENS,
                       should_stop: Callable[[], bool] | None = None) -> dict:
    """Score ``examples`` (this rank takes every world_size-th, from ``rank``) and sum the counts over ranks.

    acc: the ending with the lowest total loss over its tokens is the answer; acc_norm: the lowest mean loss
    (build-nanogpt's number). Returns {"correct", "correct_norm", "total", "acc", "acc_norm"}. EvaluationStopped
    once ``should_stop`` is up on any rank.
    """
    enc = get_tokenizer()
    block_size = model_block_size(model)
    rendered = [render_example(ex, enc, block_size) for ex in examples[rank::world_size]]
    batches = list(_hellaswag_batches(rendered, batch_tokens))
    common = len(batches)  # ranks may batch their shares differently: look at the stop flag where all are
    if should_stop is not None:
        common = int(_all_reduce(torch.tensor(common, device=device), dist.ReduceOp.MIN).item())
    counts = torch.zeros(3, dtype=torch.long, device=device)  # correct, correct_norm, total
    with _evaluating(model):
        for i, batch in enumerate(batches):
            if _stop_agreed(should_stop, i, common, device):
                raise EvaluationStopped(f"stopped during HellaSwag, at batch {i} of {len(batches)}")
            counts += _score_batch(model, batch, device, autocast)
    correct, correct_norm, total = (int(v) for v in _all_reduce_sum(counts).tolist())
    return {"correct": correct, "correct_norm": correct_norm, "total": total,
            "acc": correct / total if total else 0.0, "acc_norm": correct_norm / total if total else 0.0}


def _hellaswag_batches(rendered: list, batch_tokens: int):
    """Consecutive examples grouped so that 4 rows × the longest row stays within ``batch_tokens``."""
    batch, longest = [], 0
    for item in rendered:
        width = max(len(r) for r in item[0])
        if batch and 4 * (len(batch) + 1) * max(longest, width) > batch_tokens:
            yield batch
            batch, longest = [], 0
        batch.append(item)
        longest = max(longest, width)
    if batch:
        yield batch


def _score_batch(model, batch: list, device, autocast: Autocast) -> torch.Tensor:
    """[correct, correct_norm, examples] for one batch of rendered examples, computed on the device."""
    rows = [row for rows, _, _ in batch for row in rows]
    masks = [mask for _, masks, _ in batch for mask in masks]
    width = max(len(r) for r in rows)
    tokens = torch.zeros((len(rows), width), dtype=torch.long)  # right-padded; causal attention ignores pads
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, (row, m) in enumerate(zip(rows, masks)):
        tokens[r, :len(row)] = torch.tensor(row)
        mask[r, :len(row)] = torch.tensor(m, dtype=torch.bool)
    # The loss terms: token i of a row is predicted by the logits at i-1, for each masked i >= 1. Found on the
    # CPU, so the device never waits on a data-dependent shape.
    pair_rows, pair_next = mask[:, 1:].nonzero(as_tuple=True)
    pair_targets = tokens[pair_rows, pair_next + 1]
    ending_lengths = torch.bincount(pair_rows, minlength=len(rows)).clamp(min=1)
    labels = torch.tensor([label for _, _, label in batch])

    tokens = tokens.to(device, non_blocking=True)
    pair_rows_d = pair_rows.to(device, non_blocking=True)
    with autocast():
        picked = logits_at(model, tokens, pair_rows_d, pair_next.to(device, non_blocking=True))
    picked = picked.float()
    losses = F.cross_entropy(picked, pair_targets.to(device, non_blocking=True), reduction="none")
    sum_loss = torch.zeros(len(rows), dtype=torch.float32, device=device).index_add_(0, pair_rows_d, losses)
    mean_loss = sum_loss / ending_lengths.to(device, non_blocking=True)
    labels = labels.to(device, non_blocking=True)
    correct = (sum_loss.view(-1, 4).argmin(dim=1) == labels).sum()
    correct_norm = (mean_loss.view(-1, 4).argmin(dim=1) == labels).sum()
    return torch.stack([correct, correct_norm, torch.tensor(len(batch), device=device)])


# ---------------------------------------------------------------------------------------- samples
class NonFiniteOutput(ValueError):
    """A diverged model cannot be sampled from (softmax of NaN/inf); the trainer reports it and trains on."""


def generate_samples(model: torch.nn.Module, enc, prompt: str, count: int, max_tokens: int, top_k: int,
                     temperature: float, seed: int, device, autocast: Autocast) -> list[str]:
    """``count`` continuations of ``prompt`` (texts exclude the prompt), top-k sampling at ``temperature``.

    Deterministic for a seed: a private torch.Generator, never the global RNG. Padded vocabulary rows are never
    sampled. The context is cropped to the model's block_size as the text grows.
    """
    block_size = model_block_size(model)
    prompt_tokens = enc.encode_ordinary(prompt) if prompt else [EOT]  # an empty prompt starts a fresh document
    idx = torch.tensor(prompt_tokens, dtype=torch.long).unsqueeze(0).repeat(count, 1).to(device)
    generator = torch.Generator(device=idx.device).manual_seed(seed)
    vocab = enc.n_vocab
    with _evaluating(model):
        for _ in range(max_tokens):
            with autocast():
                logits = logits_at(model, idx[:, -block_size:], slice(None), -1)
            logits = logits[:, :vocab].float() / temperature
            top_logits, top_ids = torch.topk(logits, min(top_k, vocab), dim=-1)
            if not bool(torch.isfinite(top_logits).all()):
                raise NonFiniteOutput("no samples: the model's outputs are NaN/inf (the weights have diverged)")
            choice = torch.multinomial(F.softmax(top_logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, torch.gather(top_ids, -1, choice)], dim=1)
    return [enc.decode(row[len(prompt_tokens):]) for row in idx.tolist()]
