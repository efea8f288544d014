"""The GPT-2 model: Hugging Face names, parameter count, tying, init, loss, and the FLOP formula."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from tui_trainer.training.lib.config import flops_per_token, load_config, parameter_count
from tui_trainer.training.lib.model import GPT
from tui_trainer.training.lib.optim import configure_optimizer

TINY = ["model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=32", "sample.max_tokens=8"]


@pytest.fixture(scope="module")
def tiny():
    cfg = load_config(None, TINY)
    torch.manual_seed(0)
    return cfg, GPT(cfg.model)


def test_hugging_face_parameter_names(tiny):
    cfg, model = tiny
    names = list(model.state_dict())
    expected_block = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                      "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                      "mlp.c_proj.weight", "mlp.c_proj.bias"]
    assert names == (["transformer.wte.weight", "transformer.wpe.weight"]
                     + [f"transformer.h.{i}.{n}" for i in range(2) for n in expected_block]
                     + ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"])


def test_parameter_count_matches_config_and_head_is_tied(tiny):
    cfg, model = tiny
    assert model.lm_head.weight is model.transformer.wte.weight
    assert sum(p.numel() for p in model.parameters()) == parameter_count(cfg)
    gpt2 = load_config()
    with torch.device("meta"):
        big = GPT(gpt2.model)
    assert sum(p.numel() for p in big.parameters()) == parameter_count(gpt2) == 124_475_904


def test_initialisation_scales_residual_projections():
    cfg = load_config(None, ["model.n_layer=8", "model.n_head=4", "model.n_embd=256", "model.block_size=32",
                             "sample.max_tokens=8"])
    torch.manual_seed(0)
    model = GPT(cfg.model)
    block = model.transformer.h[0]
    assert block.attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.05)
    for proj in (block.attn.c_proj, block.mlp.c_proj):
        assert proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
        assert torch.count_nonzero(proj.bias) == 0
    assert model.transformer.wpe.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_same_seed_same_weights():
    cfg = load_config(None, TINY)
    torch.manual_seed(7)
    a = GPT(cfg.model).state_dict()
    torch.manual_seed(7)
    b = GPT(cfg.model).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_forward_shapes_and_initial_loss(tiny):
    cfg, model = tiny
    idx = torch.randint(0, 50257, (3, 32), generator=torch.Generator().manual_seed(1))
    logits, loss = model(idx)
    assert logits.shape == (3, 32, cfg.model.vocab_size) and loss is None
    targets = torch.randint(0, 50257, (3, 32), generator=torch.Generator().manual_seed(5))
    none, loss = model(idx, targets)
    assert none is None
    # freshly initialised: close to uniform over the padded vocabulary
    assert loss.item() == pytest.approx(math.log(cfg.model.vocab_size), abs=0.3)
    reference = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_attention_is_causal(tiny):
    _, model = tiny
    a = torch.randint(0, 50257, (1, 16), generator=torch.Generator().manual_seed(2))
    b = a.clone()
    b[0, 10:] = 7  # change only the future of position 9
    la, lb = model(a)[0], model(b)[0]
    assert torch.allclose(la[0, :10], lb[0, :10], atol=1e-6) and not torch.allclose(la[0, 10:], lb[0, 10:])


def test_flops_per_token_matches_a_direct_count(tiny):
    """6N + 12·L·T·C against every matmul of a forward + backward, counted by torch's FlopCounterMode.

    The count covers matmuls only, so it equals the formula less 6 × the parameters that never enter a
    matmul (biases, LayerNorms, position embeddings are already excluded from N). Attention goes through the
    math SDPA kernel so its two matmuls are visible to the counter (the fused CPU kernel is not counted).
    """
    cfg, model = tiny
    B, T = 2, cfg.model.block_size
    idx = torch.randint(0, 50257, (B, T), generator=torch.Generator().manual_seed(3))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        _, loss = model(idx, idx)
        loss.backward()
    model.zero_grad(set_to_none=True)
    not_in_matmuls = sum(p.numel() for n, p in model.named_parameters()
                         if p.dim() < 2 and "wpe" not in n)  # biases and LayerNorm weights
    assert counter.get_total_flops() == B * T * (flops_per_token(cfg) - 6 * not_in_matmuls)
    assert counter.get_total_flops() / (B * T) == pytest.approx(flops_per_token(cfg), rel=0.01)


def test_optimizer_groups_decay_only_matrices(tiny):
    cfg, model = tiny
    opt = configure_optimizer(model, cfg, "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == cfg.optim.weight_decay and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # the tied weight once
    assert decay["betas"] == (0.9, 0.95) and opt.defaults["fused"]  # torch's fused CPU AdamW (optim.fused=auto)
