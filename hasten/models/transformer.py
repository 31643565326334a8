"""A small pre-norm Transformer encoder-decoder for machine translation, with decoding.

The architecture is Vaswani et al. 2017 ("Attention Is All You Need") with the pre-norm
residual arrangement (LayerNorm before each sub-layer and once at the end of each stack;
Xiong et al. 2020), which trains stably with or without warm-up, as the competence
curriculum of Platanios et al. (NAACL 2019) is compared against both. One embedding matrix
serves source, target and output projection (a joint BPE vocabulary), scaled by sqrt(d_model)
and added to sinusoidal positions. Attention is `F.scaled_dot_product_attention`.

Decoding keeps a per-layer key/value cache, so each new token costs one decoder position:
`greedy_decode` and `beam_search` (length-normalised, GNMT penalty) both run batched.
`translation_loss` is a per-example (per-sentence) label-smoothed cross-entropy that ignores
padding: the trainer's `loss_fn(model, batch) -> [B]`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Cache = list[dict[str, torch.Tensor]]


@dataclass
class TransformerConfig:
    vocab_size: int
    d_model: int = 256
    heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    ff: int = 1024
    dropout: float = 0.1
    max_len: int = 512  # longest sequence the sinusoidal table covers
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2


class Attention(nn.Module):
    """Multi-head attention through SDPA; `kv=None` means self-attention."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        q = self._split(self.q(x))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                           is_causal=causal)
        b, h, n, dh = y.shape
        return self.out(y.transpose(1, 2).reshape(b, n, h * dh))


class FeedForward(nn.Sequential):
    def __init__(self, d: int, ff: int, dropout: float):
        super().__init__(nn.Linear(d, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, d))


class EncoderLayer(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.attn = Attention(c.d_model, c.heads, c.dropout)
        self.ff = FeedForward(c.d_model, c.ff, c.dropout)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, *self.attn.keys_values(h), mask=mask))
        return x + self.drop(self.ff(self.norm2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(c.d_model) for _ in range(3))
        self.self_attn = Attention(c.d_model, c.heads, c.dropout)
        self.cross_attn = Attention(c.d_model, c.heads, c.dropout)
        self.ff = FeedForward(c.d_model, c.ff, c.dropout)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor,
                cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        h = self.norm1(x)
        k, v = self.self_attn.keys_values(h)
        if cache is None:  # teacher forcing: all positions at once, causally masked
            a = self.self_attn(h, k, v, causal=True)
        else:  # one new position attends to every cached one (no mask needed)
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
            a = self.self_attn(h, k, v)
        x = x + self.drop(a)
        h = self.norm2(x)
        if cache is not None:
            if "mk" not in cache:
                cache["mk"], cache["mv"] = self.cross_attn.keys_values(memory)
            mk, mv = cache["mk"], cache["mv"]
        else:
            mk, mv = self.cross_attn.keys_values(memory)
        x = x + self.drop(self.cross_attn(h, mk, mv, mask=src_mask))
        return x + self.drop(self.ff(self.norm3(x)))


def sinusoids(length: int, d: int) -> torch.Tensor:
    """The fixed sin/cos position table of Vaswani et al. 2017, shape [length, d]."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(length, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return table


class Seq2SeqTransformer(nn.Module):
    """Pre-norm encoder-decoder; `forward(src, tgt_in)` returns logits [B, Lt, vocab]."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        c = self.config = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_id)
        nn.init.normal_(self.embed.weight, std=c.d_model ** -0.5)
        with torch.no_grad():
            self.embed.weight[c.pad_id].zero_()
        self.register_buffer("positions", sinusoids(c.max_len, c.d_model), persistent=False)
        self.drop = nn.Dropout(c.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(c) for _ in range(c.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(c) for _ in range(c.decoder_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)

    def _embed(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        n = ids.shape[1]
        if start + n > self.config.max_len:
            raise ValueError(f"sequence of {start + n} tokens exceeds max_len "
                             f"{self.config.max_len}")
        x = self.embed(ids) * math.sqrt(self.config.d_model)
        return self.drop(x + self.positions[start:start + n].to(x.dtype))

    def src_mask(self, src: torch.Tensor) -> torch.Tensor:
        """Boolean key mask [B, 1, 1, Ls]: True where attention may look (non-padding)."""
        return (src != self.config.pad_id)[:, None, None, :]

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.src_mask(src)
        x = self._embed(src)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.enc_norm(x), mask

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor,
               cache: Cache | None = None, start: int = 0) -> torch.Tensor:
        """Logits for `tgt_in`; with a `cache` (one dict per layer), `tgt_in` holds only the
        positions from `start` on and the cache grows by them."""
        x = self._embed(tgt_in, start)
        for i, layer in enumerate(self.decoder):
            x = layer(x, memory, src_mask, None if cache is None else cache[i])
        return F.linear(self.dec_norm(x), self.embed.weight)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory, mask = self.encode(src)
        return self.decode(tgt_in, memory, mask)


def build_transformer(vocab_size: int, **kw: Any) -> Seq2SeqTransformer:
    return Seq2SeqTransformer(TransformerConfig(vocab_size=vocab_size, **kw))


# -----------------------------------------------------------------------------
# loss


def per_token_loss(logits: torch.Tensor, labels: torch.Tensor, pad_id: int = 0,
                   label_smoothing: float = 0.1) -> torch.Tensor:
    """Label-smoothed cross-entropy of each target position, [B, L]; 0 at padding."""
    b, n, v = logits.shape
    loss = F.cross_entropy(logits.reshape(b * n, v).float(), labels.reshape(b * n),
                           ignore_index=pad_id, label_smoothing=label_smoothing,
                           reduction="none")
    return loss.view(b, n) * (labels != pad_id)


def trim_padding(x: torch.Tensor, pad_id: int) -> torch.Tensor:
    """A right-padded [B, T] batch of token ids cut to its longest row (at least 1 column),
    so padding to a corpus-wide length costs nothing."""
    used = (x != pad_id).any(0)
    width = int(used.nonzero().max()) + 1 if bool(used.any()) else 1
    return x[:, :width]


def translation_loss(label_smoothing: float = 0.1, weighting: str = "sentence"
                     ) -> Callable[[nn.Module, Any], torch.Tensor]:
    """A trainer `loss_fn(model, (src, tgt)) -> [B]`.

    weighting="sentence": each sentence's loss averaged over its own target tokens, so the
    trainer's mean weighs sentences equally. weighting="token": each sentence's summed loss
    times B / (tokens in the batch), so the trainer's mean is the batch's per-token mean
    (the usual NMT objective; long sentences weigh more).
    """
    if weighting not in ("sentence", "token"):
        raise ValueError(f"weighting must be 'sentence' or 'token', got {weighting!r}")

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        raw = getattr(model, "module", model)
        pad = raw.config.pad_id
        src, tgt = trim_padding(batch[0], pad), trim_padding(batch[1], pad)
        logits = model(src, tgt[:, :-1])
        labels = tgt[:, 1:]
        per_tok = per_token_loss(logits, labels, pad, label_smoothing)
        counts = (labels != pad).sum(1).clamp_min(1)
        if weighting == "sentence":
            return per_tok.sum(1) / counts
        return per_tok.sum(1) * (labels.shape[0] / counts.sum())

    return loss_fn


# -----------------------------------------------------------------------------
# decoding


def _max_len(src: torch.Tensor, pad_id: int, max_len: int | None, limit: int) -> int:
    if max_len is None:
        longest = int((src != pad_id).sum(1).max())
        max_len = int(longest * 1.5) + 10
    return max(1, min(max_len, limit - 1))


@torch.no_grad()
def greedy_decode(model: Seq2SeqTransformer, src: torch.Tensor, max_len: int | None = None
                  ) -> list[list[int]]:
    """Most likely next token at each step, batched, until every sentence emitted eos.
    Returns the token ids of each sentence without bos and eos."""
    c = model.config
    src = src[:, : _used(src, c.pad_id)]
    steps = _max_len(src, c.pad_id, max_len, c.max_len)
    memory, mask = model.encode(src)
    b = src.shape[0]
    cache: Cache = [{} for _ in model.decoder]
    token = torch.full((b, 1), c.bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    out: list[torch.Tensor] = []
    for t in range(steps):
        logits = model.decode(token, memory, mask, cache, start=t)[:, -1].float()
        nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, c.pad_id), nxt)
        out.append(nxt)
        done |= nxt == c.eos_id
        if bool(done.all()):
            break
        token = nxt[:, None]
    seqs = torch.stack(out, 1).tolist()
    return [_strip(s, c.eos_id, c.pad_id) for s in seqs]


def _used(x: torch.Tensor, pad_id: int) -> int:
    used = (x != pad_id).any(0)
    return int(used.nonzero().max()) + 1 if bool(used.any()) else 1


def _strip(seq: list[int], eos: int, pad: int) -> list[int]:
    out = []
    for tok in seq:
        if tok == eos or tok == pad:
            break
        out.append(tok)
    return out


def length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT's ((5 + length) / 6) ** alpha (Wu et al. 2016); alpha = 0 ranks by raw log-prob."""
    return ((5.0 + length.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model: Seq2SeqTransformer, src: torch.Tensor, beam: int = 4,
                length_penalty_alpha: float = 0.6, max_len: int | None = None
                ) -> list[list[int]]:
    """Batched beam search with a KV cache.

    Each of the B sentences keeps `beam` hypotheses ranked by summed log-probability; a
    hypothesis that emits eos is frozen (it can only be extended by padding at no cost) and
    keeps its place in the beam. At the end the best hypothesis by score / length_penalty
    (length counts eos) is returned. beam=1 is exactly greedy decoding.
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    c = model.config
    src = src[:, : _used(src, c.pad_id)]
    steps = _max_len(src, c.pad_id, max_len, c.max_len)
    b, k, dev = src.shape[0], beam, src.device
    memory, mask = model.encode(src)
    memory = memory.repeat_interleave(k, 0)
    mask = mask.repeat_interleave(k, 0)
    cache: Cache = [{} for _ in model.decoder]
    scores = torch.full((b, k), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # all beams start identical: keep only the first
    token = torch.full((b * k, 1), c.bos_id, dtype=torch.long, device=dev)
    done = torch.zeros(b * k, dtype=torch.bool, device=dev)
    lengths = torch.zeros(b * k, dtype=torch.long, device=dev)
    history = torch.zeros(b * k, 0, dtype=torch.long, device=dev)
    for t in range(steps):
        logits = model.decode(token, memory, mask, cache, start=t)[:, -1].float()
        logp = logits.log_softmax(-1)
        frozen = torch.full_like(logp, float("-inf"))
        frozen[:, c.pad_id] = 0.0
        logp = torch.where(done[:, None], frozen, logp)
        v = logp.shape[-1]
        cand = (scores.view(b * k, 1) + logp).view(b, k * v)
        scores, flat = cand.topk(k, dim=-1)
        origin = (flat // v) + torch.arange(b, device=dev)[:, None] * k
        origin, nxt = origin.view(-1), (flat % v).view(-1)
        history = torch.cat([history[origin], nxt[:, None]], 1)
        was_done = done[origin]
        lengths = lengths[origin] + (~was_done).long()
        done = was_done | (nxt == c.eos_id)
        for layer_cache in cache:
            layer_cache["k"] = layer_cache["k"][origin]
            layer_cache["v"] = layer_cache["v"][origin]
        if bool(done.all()):
            break
        token = nxt[:, None]
    final = scores.view(-1) / length_penalty(lengths, length_penalty_alpha)
    final = torch.where(done, final, final - 1e4)  # prefer finished hypotheses
    best = final.view(b, k).argmax(-1) + torch.arange(b, device=dev) * k
    seqs = history[best].tolist()
    return [_strip(s, c.eos_id, c.pad_id) for s in seqs]


def decode_batch(model: Seq2SeqTransformer, src: torch.Tensor, beam: int = 1,
                 length_penalty_alpha: float = 0.6, max_len: int | None = None
                 ) -> list[list[int]]:
    """Greedy for beam=1, beam search otherwise."""
    if beam == 1:
        return greedy_decode(model, src, max_len)
    return beam_search(model, src, beam, length_penalty_alpha, max_len)
