"""GPT-2 as in the 124M reproduction, with Hugging Face GPT-2 parameter names (so checkpoints export cleanly).

Learned positions, pre-LN blocks, tanh-GELU MLP, tied token embedding / output head, residual projections
initialised with std 0.02 × (2·n_layer)^-0.5, causal attention (flash SDPA on GPUs; on CPUs the explicit
softmax(QKᵀ)V while it is faster, see attention.py), and on CPUs the chunked fused head + cross-entropy
(fused_head.py) for the training loss.
Initialisation draws from torch's global RNG in module order: seed it before constructing the model.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import causal_attention
from .config import ModelConfig
from .fused_head import fused_linear_cross_entropy

INIT_STD = 0.02


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.n_embd = cfg.n_embd
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)  # q, k, v for all heads in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.c_proj.is_residual_projection = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = causal_attention(q, k, v)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's GELU
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.c_proj.is_residual_projection = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def lm_loss(hidden: torch.Tensor, head_weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy from the final hidden states (B, T, C) and the tied head weight (V, C).

    On a CPU the fused head computes it chunk by chunk without materialising the (B·T, V) logits in fp32
    (fused_head.py: ~15% faster here, same loss to bf16 accuracy); elsewhere the plain path, which
    torch.compile fuses on GPUs. Logits are upcast to fp32 before the softmax so bf16 autocast does not
    degrade the loss.
    """
    if hidden.device.type == "cpu":
        return fused_linear_cross_entropy(hidden, head_weight, targets)
    logits = F.linear(hidden, head_weight)
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
            ln_f=nn.LayerNorm(cfg.n_embd),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying (GPT-2)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            std = INIT_STD
            if getattr(module, "is_residual_projection", False):
                std *= (2 * self.config.n_layer) ** -0.5  # keeps the residual stream's variance from growing
            torch.nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """Final-LayerNorm'd hidden states (B, T, C) for token ids (B, T)."""
        T = idx.size(1)
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens exceeds block_size {self.config.block_size}")
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(logits, None) without targets; (None, mean loss) with targets (the loss path skips the logits)."""
        x = self.hidden_states(idx)
        if targets is None:
            return self.lm_head(x), None
        return None, lm_loss(x, self.lm_head.weight, targets)
