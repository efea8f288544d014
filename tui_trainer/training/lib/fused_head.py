"""The GPT head and its cross-entropy in one pass over row chunks, so the full fp32 logits never exist.

The plain path, ``F.cross_entropy(F.linear(h, W).float(), y)`` under bf16 autocast, writes the (N, V) logits in
bf16, casts them to fp32, keeps fp32 log-probabilities for the backward, builds an fp32 gradient of the same size
and casts that back to bf16 for the two backward matmuls: five passes over N × V values (N × 50,304 for GPT-2),
each far bigger than the CPU's caches. Here the rows are taken a chunk at a time (a chunk's logits fit in cache):

    logits = x_chunk @ Wᵀ                      in the compute dtype (bf16 under autocast, else fp32)
    logp   = log_softmax(logits) in fp32       one fused kernel; loss_i = -logp[i, y_i]
    g      = exp(logp) - onehot(y)             written straight into one (N, V) buffer in the compute dtype

Because the loss is the end of the graph, the gradient with respect to the logits is known in the forward: it is
``(softmax - onehot) / N`` times the incoming gradient. The backward is then just ``g @ W`` and ``gᵀ @ x``, scaled
by ``grad_out / N`` in fp32 on the small results (no host sync, no rounding of the scale into bf16). The target
entries ``p_y - 1`` are computed in fp32 before rounding, so a confident token's small gradient stays accurate.

Accuracy: in fp32 the loss and gradients equal ``F.cross_entropy``'s to float rounding; in bf16 they match the
autocast reference to bf16 accuracy (both round logits and logit-gradients to bf16 once). Every token counts
(no ignore index). Without grad (evaluation) no buffer is allocated.

Self-contained on purpose (torch only), so the one-file trainer can carry a copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Rows per chunk on CPU: 256 rows × 50,304 fp32 log-probs ≈ 51 MB of transient data per chunk; measured fastest
# among 16..1024 on the bench model (benchmarks/head_bench.py), the head matmul itself runs best around 256 rows.
CPU_CHUNK_ROWS = 256
# On accelerators the chunk only bounds memory; big chunks keep the kernel count low.
ACCELERATOR_CHUNK_ROWS = 8192
# The softmax and its casts walk a chunk's logits several times; on a CPU they go in blocks of rows whose fp32
# logits fit well inside the last-level cache (a 256-row chunk is 51 MB in fp32, beyond a 32 MB L3).
SOFTMAX_BLOCK_BYTES = 4 * 2**20


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast would run a matmul in on ``device_type`` right now, or None when it is off."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                compute_dtype: torch.dtype, chunk_rows: int, grad_enabled: bool) -> torch.Tensor:
        x = hidden.to(compute_dtype)
        w = weight.to(compute_dtype)
        n_rows, vocab = x.shape[0], w.shape[0]
        # needs_input_grad only says the inputs require grad: it stays true under torch.no_grad (evaluation),
        # and grad mode is always off inside forward, so the caller's mode is passed in.
        want_grad = grad_enabled and (ctx.needs_input_grad[0] or ctx.needs_input_grad[1])
        row_losses = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        grad_logits = torch.empty(n_rows, vocab, dtype=compute_dtype, device=x.device) if want_grad else None
        block = softmax_block_rows(vocab) if x.device.type == "cpu" else chunk_rows
        chunk_buffer = torch.empty(min(chunk_rows, n_rows), vocab, dtype=compute_dtype, device=x.device)
        for start in range(0, n_rows, chunk_rows):
            rows_here = min(chunk_rows, n_rows - start)
            logits = torch.mm(x[start:start + rows_here], w.t(), out=chunk_buffer[:rows_here])
            for first in range(0, logits.shape[0], block):
                part = logits[first:first + block]
                rows = slice(start + first, start + first + part.shape[0])
                _loss_and_grad_rows(part, targets[rows], row_losses[rows], grad_logits[rows] if want_grad else None)
        if want_grad:
            ctx.save_for_backward(x, w, grad_logits)
            ctx.hidden_dtype, ctx.weight_dtype = hidden.dtype, weight.dtype
        return row_losses.mean()

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        x, w, grad_logits = ctx.saved_tensors
        scale = grad_loss.float() / x.shape[0]  # a 0-d tensor: stays on the device, no host sync
        grad_hidden = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_hidden = ((grad_logits @ w).float() * scale).to(ctx.hidden_dtype)
        if ctx.needs_input_grad[1]:
            # The scale goes on the small (N, C) side, so the (V, C) result needs one cast and no extra pass.
            # 1/N and 1/grad-accumulation are powers of two in practice: the scaled x is then exact in bf16.
            grad_weight = (grad_logits.t() @ (x.float() * scale).to(x.dtype)).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None, None


def softmax_block_rows(vocab: int) -> int:
    """Rows whose fp32 logits fit in SOFTMAX_BLOCK_BYTES, so the softmax passes run from cache."""
    return max(1, SOFTMAX_BLOCK_BYTES // (4 * vocab))


def _loss_and_grad_rows(logits: torch.Tensor, targets: torch.Tensor, losses_out: torch.Tensor,
                        grad_out: torch.Tensor | None) -> None:
    """Cross-entropy of a few rows of logits into ``losses_out``; softmax - onehot into ``grad_out``."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    # log-sum-exp from the softmax itself: the largest probability sits at the largest logit, so
    # lse = max(logit) - log(max(prob)), exact in fp32 however small p_y gets (no extra exp pass).
    lse = logits.amax(dim=-1) - probs.amax(dim=-1).log()
    losses_out.copy_(lse - logits[rows, targets])
    if grad_out is not None:
        grad_out.copy_(probs)
        grad_out[rows, targets] = (probs[rows, targets] - 1.0).to(grad_out.dtype)  # p_y - 1 in fp32, rounded once


# torch.compile runs this eagerly (a graph break): traced, its row-chunk loop became inductor kernels that made
# the compiled bench step 1.07 s against 0.61 s with the break (the rest of the model compiled either way).
@torch.compiler.disable
def fused_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                               compute_dtype: torch.dtype | None = None,
                               chunk_rows: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets``, without materialising the logits.

    ``hidden`` (..., C), ``weight`` (V, C) (the tied GPT head has no bias), ``targets`` (...) int64 class ids.
    ``compute_dtype`` is the matmul dtype; by default the active autocast dtype of the device, else ``hidden``'s
    dtype. Log-softmax and the loss are always fp32. Returns a 0-d fp32 tensor; gradients flow to ``hidden`` and
    ``weight`` in their own dtypes.
    """
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and targets {tuple(targets.shape)} disagree")
    device_type = hidden.device.type
    if compute_dtype is None:
        compute_dtype = autocast_dtype(device_type) or hidden.dtype
    if chunk_rows is None:
        chunk_rows = CPU_CHUNK_ROWS if device_type == "cpu" else ACCELERATOR_CHUNK_ROWS
    hidden2d = hidden.reshape(-1, hidden.shape[-1])
    # The matmuls' dtype is chosen above; autocast must not re-cast inside (it would turn log_softmax's
    # fp32 output request into extra copies).
    with torch.autocast(device_type, enabled=False):
        return _LinearCrossEntropy.apply(hidden2d, weight, targets.reshape(-1), compute_dtype, int(chunk_rows),
                                         torch.is_grad_enabled())


def reference_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor,
                                   targets: torch.Tensor) -> torch.Tensor:
    """The plain path the fused one replaces (full logits, fp32 cross-entropy); for tests and benchmarks."""
    logits = F.linear(hidden, weight)
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
