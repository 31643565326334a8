"""A small causal Transformer decoder for character-level language modelling.

Model: nanoGPT's (Karpathy) GPT-2 layout, written anew: token and learned position
embeddings, pre-norm blocks of causal self-attention (`scaled_dot_product_attention`,
`is_causal=True`) and a GELU MLP, a final LayerNorm, the output head tied to the token
embedding. Departures: no dropout and no bias in the linear layers (small, short runs);
sizes default to a CPU-sized model (4 layers, width 128, 4 heads, 128-character context).
Where it is shown: the character-level task of `hasten.bench.charlm` (docs/tune.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hasten.core.config import option


@dataclass(frozen=True)
class DecoderConfig:
    vocab_size: int = option(65, "Tiny Shakespeare's character set")
    block: int = option(128, "128 characters of context: a few lines of verse")
    layers: int = option(4, "small enough to train for minutes on one CPU core")
    width: int = option(128, "small enough to train for minutes on one CPU core")
    heads: int = option(4, "32 dimensions a head")


class Block(nn.Module):
    def __init__(self, c: DecoderConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(c.width), nn.LayerNorm(c.width)
        self.qkv = nn.Linear(c.width, 3 * c.width, bias=False)
        self.proj = nn.Linear(c.width, c.width, bias=False)
        self.mlp = nn.Sequential(nn.Linear(c.width, 4 * c.width, bias=False), nn.GELU(),
                                 nn.Linear(4 * c.width, c.width, bias=False))
        self.heads = c.heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(w, dim=2)
        q, k, v = (z.view(b, t, self.heads, w // self.heads).transpose(1, 2) for z in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, t, w))
        return x + self.mlp(self.norm2(x))


class Decoder(nn.Module):
    """Logits [B, T, vocab] for characters [B, T] (T <= block)."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(config.vocab_size, config.width)
        self.positions = nn.Embedding(config.block, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.width)
        self.apply(_init)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.tokens(ids) + self.positions(torch.arange(t, device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.tokens.weight.T  # the head tied to the embedding


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)


def per_sequence_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean next-character cross-entropy (nats) of each window: batch = (windows [B, T+1],)."""
    (windows,) = batch
    logits = model(windows[:, :-1])
    targets = windows[:, 1:]
    per_char = F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none")
    return per_char.mean(1)
