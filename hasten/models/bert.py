"""The original BERT architecture (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding"), as the baselines of Cramming's ablation need it.

- `original_bert` builds HF `BertForMaskedLM` (post-norm, biases, learned positions, dropout
  0.1, head transform and a full-vocabulary decoder with bias): the "+ original arch." row.
- `BertEncoder` is the same network written out here with one switch, `pre_norm`. With
  `pre_norm=False` it computes exactly what HF BERT computes (same parameters, same outputs;
  the tests load HF weights into it). With `pre_norm=True` every block normalises the input of
  its sub-layer instead of the residual sum (`x + f(LN(x))`, Xiong et al. 2020, "On Layer
  Normalization in the Transformer Architecture"), and a final LayerNorm follows the last
  block, as pre-norm transformers have: the "+ minimal arch. mod." row of Cramming's ablation
  (Geiping & Goldstein 2023), whose only architecture change is that layer norm position.

Attention is `F.scaled_dot_product_attention` (dropout on the probabilities in training, as
HF BERT's eager attention). Token types exist (2, as BERT) but packed rows use type 0 only.
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
class BertEncoderConfig:
    """Shape of a BERT encoder; defaults are BERT-base's (Devlin et al. 2019)."""

    vocab_size: int = 30522
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    intermediate: int = 3072
    max_len: int = 512
    dropout: float = 0.1
    norm_eps: float = 1e-12
    init_std: float = 0.02
    pre_norm: bool = False
    pad_id: int = 0
    type_vocab: int = 2

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ConfigError(f"hidden ({self.hidden}) must be a multiple of heads "
                              f"({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


def original_bert(vocab: int, width: int = 768, depth: int = 12, heads: int = 12,
                  intermediate: int | None = None, max_len: int = 512,
                  dropout: float = 0.1, pad_id: int = 0) -> nn.Module:
    """HF `BertForMaskedLM` from a `BertConfig` (Devlin et al. 2019): post-norm, biases,
    learned positions, dropout 0.1, head transform and full-vocabulary decoder with bias."""
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(vocab_size=vocab, hidden_size=width, num_hidden_layers=depth,
                     num_attention_heads=heads, intermediate_size=intermediate or 4 * width,
                     hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                     max_position_embeddings=max_len, pad_token_id=pad_id, type_vocab_size=2)
    return BertForMaskedLM(cfg)


class BertLayer(nn.Module):
    """Self-attention and feed-forward sub-layers, each with dropout, a residual and a
    LayerNorm: after the sum (post-norm) or on the sub-layer's input (pre-norm)."""

    def __init__(self, cfg: BertEncoderConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.heads, self.pre_norm, self.p = cfg.heads, cfg.pre_norm, cfg.dropout
        self.qkv = nn.Linear(h, 3 * h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=cfg.norm_eps)
        self.ffn_in = nn.Linear(h, cfg.intermediate)
        self.ffn_out = nn.Linear(cfg.intermediate, h)
        self.ffn_norm = nn.LayerNorm(h, eps=cfg.norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, s, h = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, h // self.heads).transpose(1, 3).unbind(2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.p if self.training else 0.0)
        return self.drop(self.attn_out(out.transpose(1, 2).reshape(b, s, h)))

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.ffn_out(F.gelu(self.ffn_in(x))))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.attention(self.attn_norm(x), mask)
            return x + self.ffn(self.ffn_norm(x))
        x = self.attn_norm(x + self.attention(x, mask))
        return self.ffn_norm(x + self.ffn(x))


class BertEncoder(nn.Module):
    """BERT for masked-language modelling: `forward` gives the final hidden states, `logits`
    the vocabulary logits of hidden rows (head transform, then the decoder tied to the token
    embedding, with its own bias), `mlm_logits` both (the `CrammedEncoder` interface)."""

    def __init__(self, cfg: BertEncoderConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.config = cfg
        self.word = nn.Embedding(cfg.vocab_size, h, padding_idx=cfg.pad_id)
        self.position = nn.Embedding(cfg.max_len, h)
        self.token_type = nn.Embedding(cfg.type_vocab, h)
        self.embed_norm = nn.LayerNorm(h, eps=cfg.norm_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(h, eps=cfg.norm_eps) if cfg.pre_norm else nn.Identity()
        self.head_dense = nn.Linear(h, h)
        self.head_norm = nn.LayerNorm(h, eps=cfg.norm_eps)
        self.decoder = nn.Linear(h, cfg.vocab_size)
        self.decoder.weight = self.word.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT's init: normal(0, 0.02) weights, zero biases, unit norms, zero pad row."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=self.config.init_std)
            if isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.word.weight[self.config.pad_id].zero_()

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        s = input_ids.shape[1]
        if s > self.config.max_len:
            raise DataError(f"sequence length {s} exceeds max_len {self.config.max_len}")
        pos = torch.arange(s, device=input_ids.device)
        x = self.word(input_ids) + self.position(pos)[None] + self.token_type.weight[0]
        x = self.drop(self.embed_norm(x))
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        return self.final_norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.head_norm(F.gelu(self.head_dense(hidden))))

    def mlm_logits(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None,
                   attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self(input_ids, attention_mask)
        if positions is None:
            return self.logits(hidden)
        return self.logits(hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions))


def from_hf_bert_state(hf_state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """The state dict of a post-norm `BertEncoder` holding an HF `BertForMaskedLM`'s weights
    (q, k and v fused into `qkv`)."""
    e, out = "bert.embeddings.", {}
    for ours, theirs in (("word.weight", "word_embeddings.weight"),
                         ("position.weight", "position_embeddings.weight"),
                         ("token_type.weight", "token_type_embeddings.weight"),
                         ("embed_norm.weight", "LayerNorm.weight"),
                         ("embed_norm.bias", "LayerNorm.bias")):
        out[ours] = hf_state[e + theirs]
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"layers.{i}.qkv.{kind}"] = torch.cat(
                [hf_state[f"{p}attention.self.{n}.{kind}"] for n in ("query", "key", "value")])
            for ours, theirs in (("attn_out", "attention.output.dense"),
                                 ("attn_norm", "attention.output.LayerNorm"),
                                 ("ffn_in", "intermediate.dense"), ("ffn_out", "output.dense"),
                                 ("ffn_norm", "output.LayerNorm")):
                out[f"layers.{i}.{ours}.{kind}"] = hf_state[f"{p}{theirs}.{kind}"]
    c = "cls.predictions."
    for ours, theirs in (("head_dense", "transform.dense"), ("head_norm", "transform.LayerNorm")):
        for kind in ("weight", "bias"):
            out[f"{ours}.{kind}"] = hf_state[f"{c}{theirs}.{kind}"]
    out["decoder.weight"] = out["word.weight"]
    out["decoder.bias"] = hf_state[c + "bias"]
    return out
