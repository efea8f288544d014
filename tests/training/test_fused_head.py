"""The fused head + cross-entropy against the plain F.linear + F.cross_entropy path, in fp32 and bf16."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tui_trainer.training.lib.fused_head import fused_linear_cross_entropy, reference_linear_cross_entropy

# bf16 keeps 8 significant bits: one rounding of logits / logit-gradients gives ~2^-8 relative error per term.
BF16_REL = 2 ** -6


def make_case(shape=(3, 37), width=48, vocab=1003, seed=0, logit_scale=0.1):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(*shape, width, generator=g).requires_grad_()
    weight = (torch.randn(vocab, width, generator=g) * logit_scale).requires_grad_()
    targets = torch.randint(0, vocab, shape, generator=g)
    targets.view(-1)[0], targets.view(-1)[-1] = 0, vocab - 1  # both ends of the vocabulary
    return hidden, weight, targets


def loss_and_grads(fn, hidden, weight, targets, *, autocast=False, upstream=1.0):
    hidden.grad = weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = fn(hidden, weight, targets)
    (loss * upstream).backward()
    return loss.detach(), hidden.grad.clone(), weight.grad.clone()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize("chunk_rows", [1, 7, 16, 111, 4096])
def test_fp32_matches_cross_entropy_exactly(chunk_rows):
    hidden, weight, targets = make_case()
    fused = loss_and_grads(lambda h, w, y: fused_linear_cross_entropy(h, w, y, chunk_rows=chunk_rows),
                           hidden, weight, targets)
    ref = loss_and_grads(reference_linear_cross_entropy, hidden, weight, targets)
    assert fused[0].dtype == torch.float32
    torch.testing.assert_close(fused[0], ref[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fused[1], ref[1], rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(fused[2], ref[2], rtol=1e-5, atol=1e-8)


def test_bf16_autocast_matches_reference_to_bf16_accuracy():
    hidden, weight, targets = make_case(shape=(4, 50), width=64, vocab=2048, logit_scale=0.5)
    fused = loss_and_grads(lambda h, w, y: fused_linear_cross_entropy(h, w, y, chunk_rows=33),
                           hidden, weight, targets, autocast=True)
    ref_bf16 = loss_and_grads(reference_linear_cross_entropy, hidden, weight, targets, autocast=True)
    ref_fp32 = loss_and_grads(reference_linear_cross_entropy, hidden, weight, targets)
    # gradients come back in the parameters' dtype, as autograd would give them
    assert fused[1].dtype == hidden.dtype and fused[2].dtype == weight.dtype
    for ref, tol in ((ref_bf16, BF16_REL), (ref_fp32, BF16_REL)):
        assert fused[0].item() == pytest.approx(ref[0].item(), rel=2 ** -8)
        assert rel_err(fused[1], ref[1]) < tol
        assert rel_err(fused[2], ref[2]) < tol
    # and no worse than the plain autocast path is against fp32
    assert rel_err(fused[2], ref_fp32[2]) < 2 * rel_err(ref_bf16[2], ref_fp32[2]) + 1e-3


def test_bf16_inputs_without_autocast_compute_in_bf16():
    hidden, weight, targets = make_case()
    h16 = hidden.detach().bfloat16().requires_grad_()
    w16 = weight.detach().bfloat16().requires_grad_()
    loss = fused_linear_cross_entropy(h16, w16, targets)
    loss.backward()
    assert loss.dtype == torch.float32 and h16.grad.dtype == w16.grad.dtype == torch.bfloat16
    ref = loss_and_grads(reference_linear_cross_entropy, hidden, weight, targets)
    assert loss.item() == pytest.approx(ref[0].item(), rel=2 ** -7)
    assert rel_err(h16.grad, ref[1]) < BF16_REL and rel_err(w16.grad, ref[2]) < BF16_REL


def test_confident_predictions_keep_accurate_target_gradients():
    # p_y close to 1: the target's gradient p_y - 1 is tiny and must not be lost to bf16 rounding of p_y.
    hidden, weight, _ = make_case(shape=(64,), width=96, vocab=300)
    targets = torch.randperm(300, generator=torch.Generator().manual_seed(1))[:64]
    with torch.no_grad():  # the target's logit becomes 12, the others stay near 0: p_y ≈ 0.998
        h = hidden.detach()
        weight[targets] = 12.0 * h / h.norm(dim=-1, keepdim=True) ** 2
    fused = loss_and_grads(fused_linear_cross_entropy, hidden, weight, targets, autocast=True)
    ref = loss_and_grads(reference_linear_cross_entropy, hidden, weight, targets)
    assert ref[0].item() < 0.01  # really confident
    assert rel_err(fused[1], ref[1]) < BF16_REL
    assert rel_err(fused[2], ref[2]) < BF16_REL


def test_upstream_gradient_scales_and_partial_requires_grad():
    hidden, weight, targets = make_case()
    once = loss_and_grads(fused_linear_cross_entropy, hidden, weight, targets)
    thrice = loss_and_grads(fused_linear_cross_entropy, hidden, weight, targets, upstream=-3.0)
    torch.testing.assert_close(thrice[1], -3.0 * once[1])
    torch.testing.assert_close(thrice[2], -3.0 * once[2])
    frozen = weight.detach()
    hidden.grad = None
    fused_linear_cross_entropy(hidden, frozen, targets).backward()
    torch.testing.assert_close(hidden.grad, once[1])


def test_no_grad_gives_the_same_loss():
    hidden, weight, targets = make_case(shape=(2, 9))
    with torch.no_grad():
        loss = fused_linear_cross_entropy(hidden, weight, targets, chunk_rows=4)
        ref = F.cross_entropy((hidden @ weight.t()).reshape(-1, weight.shape[0]), targets.reshape(-1))
    assert not loss.requires_grad
    torch.testing.assert_close(loss, ref)


def test_mismatched_targets_are_rejected():
    hidden, weight, targets = make_case(shape=(2, 9))
    with pytest.raises(ValueError, match="disagree"):
        fused_linear_cross_entropy(hidden, weight, targets[:, :-1])


def _largest_allocation_bytes(fn) -> int:
    """The largest single CPU allocation made while ``fn`` runs, as torch's profiler records it."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max((e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0), default=0)


def test_evaluation_allocates_no_logit_gradient_buffer():
    # Evaluation runs under torch.no_grad with parameters that still require grad (the model's own weights):
    # the (N, V) logit-gradient buffer must not be made then, only the per-chunk logits.
    hidden, weight, targets = make_case(shape=(4, 256), width=32, vocab=4096)
    n_rows, vocab, chunk_rows = 4 * 256, 4096, 64
    full_buffer = n_rows * vocab * 4

    def evaluate():
        with torch.no_grad():
            fused_linear_cross_entropy(hidden, weight, targets, chunk_rows=chunk_rows)

    def train():
        fused_linear_cross_entropy(hidden, weight, targets, chunk_rows=chunk_rows).backward()

    assert _largest_allocation_bytes(train) >= full_buffer  # the probe sees the buffer when it is made
    assert _largest_allocation_bytes(evaluate) <= chunk_rows * vocab * 4
