"""causal_attention: the explicit CPU path equals flash SDPA (fp32 exactly, bf16 to bf16 accuracy)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tui_trainer.training.lib import attention
from tui_trainer.training.lib.attention import causal_attention


def qkv(shape=(2, 3, 37, 16), dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g).to(dtype).requires_grad_() for _ in range(3)]


def forward_backward(fn, tensors):
    for t in tensors:
        t.grad = None
    out = fn(*tensors)
    out.backward(torch.ones_like(out) * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype))
    return [out.detach()] + [t.grad.clone() for t in tensors]


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def test_fp32_matches_sdpa_values_and_gradients():
    tensors = qkv()
    assert attention.use_explicit_attention(tensors[0])
    for ours, ref in zip(forward_backward(causal_attention, tensors), forward_backward(sdpa, tensors)):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_first_position_sees_only_itself():
    q, k, v = qkv(shape=(1, 1, 5, 4))
    out = causal_attention(q, k, v)
    torch.testing.assert_close(out[0, 0, 0], v[0, 0, 0])


def test_bf16_close_to_fp32():
    tensors = qkv(shape=(4, 6, 64, 32))
    ref = forward_backward(sdpa, tensors)
    low = [t.detach().bfloat16().requires_grad_() for t in tensors]
    ours = forward_backward(causal_attention, low)
    for a, b in zip(ours, ref):
        assert ((a.float() - b).norm() / b.norm()).item() < 2 ** -6


def test_large_score_matrices_fall_back_to_sdpa(monkeypatch):
    tensors = qkv(shape=(1, 2, 8, 4))
    monkeypatch.setattr(attention, "EXPLICIT_MAX_SCORES", 2 * 8 * 8 - 1)
    assert not attention.use_explicit_attention(tensors[0])
    torch.testing.assert_close(causal_attention(*tensors), sdpa(*tensors), rtol=0, atol=0)
