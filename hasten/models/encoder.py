"""The crammed BERT encoder (Geiping & Goldstein 2023, "Cramming: Training a Language Model on a
Single GPU in One Day"), built so it is also a ModernBERT (Warner et al. 2024, "Smarter,
Better, Faster, Longer") that HF `transformers` loads without remote code.

Cramming's choices kept: pre-norm blocks, no biases anywhere, gated-GELU feed-forward whose
input projection is *not* widened for the gate (width `intermediate` is split into value and
gate, so the down-projection has `intermediate // 2` inputs), a final norm, decoder tied to the
token embedding, no dropout, sparse token prediction (the head runs only on predicted rows).

What ModernBERT compatibility changes, relative to Cramming:
- positions are rotary (RoPE, rotate-half layout, theta 160000 as ModernBERT's global layers)
  instead of scaled sinusoids added to the embedding;
- the embedding norm and every LayerNorm have no bias (ModernBERT's `norm_bias=False`);
- layer 0 has no attention pre-norm (the embedding norm plays that role), as in ModernBERT;
- the MLM head is dense -> GELU -> LayerNorm before the tied decoder (Cramming skips it);
- GELU is the exact (erf) one.
Every layer attends globally (`global_attn_every_n_layers=1`); attention is
`F.scaled_dot_product_attention`. Module and parameter names are ModernBERT's, so `export_hf`
writes the state dict as is (minus the tied decoder).

The losses are in `hasten.pretrain.objectives.mlm`, the HF export in `hasten.models.export_hf`, the
BERT baselines in `hasten.models.bert`.
Results: docs/benchmarks.md ("MLM recipe (Cramming): more tokens in equal time, no GLUE-small
difference").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hasten.core.errors import ConfigError, DataError


@dataclass
class EncoderConfig:
    """Shape of the crammed encoder. Defaults are Cramming's (16 x 768, 12 heads, GLU input
    width 3072, vocabulary 32768, LayerNorm eps 1e-12); `intermediate` is the width of the
    fused value+gate projection `Wi`, so ModernBERT's `intermediate_size` is half of it."""

    vocab_size: int = 32768
    hidden: int = 768
    layers: int = 16
    heads: int = 12
    intermediate: int = 3072
    max_len: int = 512
    norm_eps: float = 1e-12
    rope_theta: float = 160_000.0
    init_std: float = 0.02
    pad_id: int = 0
    cls_id: int = 2
    sep_id: int = 3
    mask_id: int = 4
    attention: str = "auto"  # sdpa | matmul | auto (matmul for bf16 on CPU, else SDPA)

    def __post_init__(self) -> None:
        if self.attention not in ("sdpa", "matmul", "auto"):
            raise ConfigError(f"attention must be sdpa, matmul or auto, got {self.attention!r}")
        for name in ("vocab_size", "hidden", "layers", "heads", "intermediate", "max_len"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads or (self.hidden // self.heads) % 2:
            raise ConfigError(f"hidden ({self.hidden}) must be a multiple of heads "
                              f"({self.heads}) with an even head size (rotary)")
        if self.intermediate % 2:
            raise ConfigError(f"intermediate must be even (value and gate halves), "
                              f"got {self.intermediate}")
        for name in ("pad_id", "cls_id", "sep_id", "mask_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ConfigError(f"{name}={getattr(self, name)} is outside the vocabulary "
                                  f"(size {self.vocab_size})")


def _norm(cfg: EncoderConfig) -> nn.LayerNorm:
    return nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps, bias=False)


def rotary_tables(max_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [max_len, head_dim] of rotary positions, rotate-half layout (fp32)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float()
                                / head_dim))
    freqs = torch.arange(max_len).float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Embeddings(nn.Module):
    """Token embedding then a bias-free LayerNorm (no position embedding: rotary)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.norm = _norm(cfg)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.tok_embeddings(input_ids))


class Attention(nn.Module):
    """Fused q/k/v projection, rotary on q and k, SDPA, output projection; no biases."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.hidden // cfg.heads
        self.Wqkv = nn.Linear(cfg.hidden, 3 * cfg.hidden, bias=False)
        self.Wo = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
        self.attention = cfg.attention

    def matmul_attention(self, q: torch.Tensor) -> bool:
        """Explicit matmul-softmax-matmul instead of SDPA? "auto" picks it for bf16 on the
        CPU, where torch's fused CPU kernel is about 4x slower than two bf16 matmuls at
        sequence length 128 (fp32 softmax either way)."""
        if self.attention == "auto":
            return q.device.type == "cpu" and q.dtype == torch.bfloat16
        return self.attention == "matmul"

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        b, s, h = x.shape
        qkv = self.Wqkv(x).view(b, s, 3, self.heads, self.head_dim)
        q, k, v = qkv.transpose(1, 3).unbind(dim=2)  # each [B, heads, S, head_dim]
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        if self.matmul_attention(q):
            scores = torch.matmul(q, k.transpose(-1, -2)) * self.head_dim ** -0.5
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.float().softmax(dim=-1).to(v.dtype)
            out = torch.matmul(probs, v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.Wo(out.transpose(1, 2).reshape(b, s, h))


class GLU(nn.Module):
    """Gated-GELU feed-forward: Wi to value and gate halves, GELU(value) * gate, Wo."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.Wi = nn.Linear(cfg.hidden, cfg.intermediate, bias=False)
        self.Wo = nn.Linear(cfg.intermediate // 2, cfg.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.Wi(x).chunk(2, dim=-1)
        return self.Wo(F.gelu(value) * gate)


class Layer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)); layer 0 skips the first
    norm, as ModernBERT does (its input is already the normed embedding)."""

    def __init__(self, cfg: EncoderConfig, index: int) -> None:
        super().__init__()
        self.attn_norm = nn.Identity() if index == 0 else _norm(cfg)
        self.attn = Attention(cfg)
        self.mlp_norm = _norm(cfg)
        self.mlp = GLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        return x + self.mlp(self.mlp_norm(x))


class Backbone(nn.Module):
    """Embeddings, layers, final norm: ModernBERT's `ModernBertModel` parameters."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.embeddings = Embeddings(cfg)
        self.layers = nn.ModuleList(Layer(cfg, i) for i in range(cfg.layers))
        self.final_norm = _norm(cfg)
        cos, sin = rotary_tables(cfg.max_len, cfg.hidden // cfg.heads, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        s = input_ids.shape[1]
        if s > self.rope_cos.shape[0]:
            raise DataError(f"sequence length {s} exceeds max_len {self.rope_cos.shape[0]}")
        x = self.embeddings(input_ids)
        dev = x.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
        cos, sin = self.rope_cos[:s].to(dtype), self.rope_sin[:s].to(dtype)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.final_norm(x)


class Head(nn.Module):
    """ModernBERT's prediction head: dense (no bias) -> GELU -> LayerNorm."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
        self.norm = _norm(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.dense(x)))


class CrammedEncoder(nn.Module):
    """The crammed BERT for masked-language modelling, laid out as `ModernBertForMaskedLM`
    (`model`, `head`, `decoder` tied to `model.embeddings.tok_embeddings`)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg)
        self.head = Head(cfg)
        self.decoder = nn.Linear(cfg.hidden, cfg.vocab_size, bias=False)
        self.decoder.weight = self.model.embeddings.tok_embeddings.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, init_std) for every matrix (Cramming's init), ones for norms."""
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=self.config.init_std)
            else:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final-normed hidden states [B, S, hidden]."""
        return self.model(input_ids, attention_mask)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of hidden rows [..., hidden] (head then tied decoder)."""
        return self.decoder(self.head(hidden))

    def mlm_logits(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None,
                   attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, S, V] (positions None) or [len(positions), V] at flat positions."""
        hidden = self(input_ids, attention_mask)
        if positions is None:
            return self.logits(hidden)
        return self.logits(hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions))
