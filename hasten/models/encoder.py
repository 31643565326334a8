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

`mlm_loss(model, batch, sparse=...)` is the trainer's per-example loss. `original_bert` builds
HF `BertForMaskedLM` (post-norm, biases, dropout 0.1, full-vocabulary head) for the "original
BERT" baseline, with `bert_mlm_loss` as its loss.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from hasten.atomic import atomic_dir
from hasten.distributed import unwrap_model
from hasten.errors import CheckpointError, ConfigError, DataError
from hasten.text.masking import IGNORE, sparse_positions

if TYPE_CHECKING:
    from tokenizers import Tokenizer


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


def _bucket(n: int, step: int, total: int) -> int:
    return max(1, min(total, -(-n // step) * step))


def mlm_loss(model: CrammedEncoder, batch: dict[str, torch.Tensor],
             sparse: Literal["static", "variable"] | None = "static",
             static_count: int | None = None, bucket: int = 128) -> torch.Tensor:
    """Per-example MLM loss [B] for the trainer, the head run only on predicted rows.

    `batch` holds `input_ids` and `labels` (-100 where nothing is predicted), optionally
    `attention_mask`. `sparse="static"` gathers a fixed number of rows: `static_count`, or the
    batch's predicted count rounded up to a multiple of `bucket` (few distinct shapes); pad rows
    carry target -100. "variable" gathers exactly the predicted rows; None runs the head on
    every position (the dense reference). Example i's value is the sum of its token losses
    times B / (predicted tokens in the batch), so the trainer's mean over examples is the mean
    over predicted tokens. `model` may be wrapped in DDP or `torch.compile`: the encoder runs
    through the wrapper (DDP's forward), the head on the unwrapped module.
    """
    ids, labels = batch["input_ids"], batch["labels"]
    b, s = labels.shape
    hidden = model(ids, batch.get("attention_mask"))
    flat_h = hidden.reshape(b * s, -1)
    if sparse is None:
        pos = torch.arange(b * s, device=labels.device)
        targets = labels.reshape(-1)
        rows = flat_h
    elif sparse in ("static", "variable"):
        count = None
        if sparse == "static":
            count = static_count or _bucket(int((labels != IGNORE).sum()), bucket, b * s)
        pos, targets = sparse_positions(labels, count)
        rows = flat_h.index_select(0, pos)
    else:
        raise ConfigError(f"sparse must be 'static', 'variable' or None, got {sparse!r}")
    logits = unwrap_model(model).logits(rows)
    token_loss = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE, reduction="none")
    per_example = torch.zeros(b, dtype=token_loss.dtype, device=token_loss.device)
    per_example.index_add_(0, torch.div(pos, s, rounding_mode="floor"), token_loss)
    n = (targets != IGNORE).sum().clamp(min=1)
    return per_example * (b / n)


def make_mlm_loss(special_ids: Sequence[int], mask_id: int, vocab_size: int,
                  rate: float = 0.25, sparse: Literal["static", "variable"] | None = "static",
                  exact: bool = True, seed: int = 0,
                  ) -> Callable[[nn.Module, Any], torch.Tensor]:
    """A trainer `loss_fn(model, batch) -> [B]` over raw packed rows: masks each batch on the
    fly (`mask_tokens`, 80/10/10, `exact` count per row so the sparse shape is static) and
    returns `mlm_loss` (our encoder) or `bert_mlm_loss` (an HF model). `batch` is the rows
    tensor, a (rows,) tuple as a TensorDataset gives, or a dict with `input_ids`."""
    from hasten.text.masking import mask_tokens

    gen = torch.Generator().manual_seed(seed)

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        ids = batch["input_ids"] if isinstance(batch, dict) else \
            batch[0] if isinstance(batch, (tuple, list)) else batch
        inputs, labels = mask_tokens(ids, rate, special_ids, mask_id, vocab_size,
                                     generator=gen, exact=exact)
        masked = {"input_ids": inputs, "labels": labels}
        if isinstance(unwrap_model(model), CrammedEncoder):
            return mlm_loss(model, masked, sparse=sparse)
        return bert_mlm_loss(model, masked)

    return loss_fn


def cramming_adamw(model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.01,
                   **kwargs: Any) -> torch.optim.AdamW:
    """Cramming's optimizer: AdamW, betas (0.9, 0.98), eps 1e-12, wd 0.01 off norms/biases."""
    from hasten.trainer import param_groups

    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98),
                             eps=1e-12, **kwargs)


# -----------------------------------------------------------------------------
# HF export


def hf_config(cfg: EncoderConfig) -> Any:
    """The `transformers.ModernBertConfig` of this encoder: global attention in every layer,
    no biases, no dropout, tied decoder without bias."""
    from transformers import ModernBertConfig

    return ModernBertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden, intermediate_size=cfg.intermediate // 2,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, hidden_activation="gelu",
        max_position_embeddings=cfg.max_len, initializer_range=cfg.init_std,
        norm_eps=cfg.norm_eps, norm_bias=False, pad_token_id=cfg.pad_id,
        bos_token_id=cfg.cls_id, eos_token_id=cfg.sep_id, cls_token_id=cfg.cls_id,
        sep_token_id=cfg.sep_id, attention_bias=False, attention_dropout=0.0,
        global_attn_every_n_layers=1, local_attention=cfg.max_len,
        global_rope_theta=cfg.rope_theta, local_rope_theta=cfg.rope_theta,
        embedding_dropout=0.0, mlp_bias=False, mlp_dropout=0.0, decoder_bias=False,
        classifier_activation="gelu", classifier_bias=False, classifier_dropout=0.0,
        tie_word_embeddings=True, architectures=["ModernBertForMaskedLM"])


def export_hf(model: CrammedEncoder, tokenizer: Tokenizer | None, out_dir: str | Path) -> Path:
    """Write a folder `AutoModelForMaskedLM.from_pretrained` loads with no remote code:
    `config.json` (ModernBERT), `model.safetensors` (fp32, HF names, decoder tied so not
    stored), `hasten_encoder.json` (our config), and the tokenizer files
    (`PreTrainedTokenizerFast`). Written into a temporary sibling and renamed into place."""
    from safetensors.torch import save_file

    cfg = model.config
    hf = hf_config(cfg)
    assert all(t == "full_attention" for t in hf.layer_types)
    state = {k: v.detach().to("cpu", torch.float32).contiguous()
             for k, v in model.state_dict().items() if k != "decoder.weight"}
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        hf.save_pretrained(tmp)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "hasten_encoder.json").write_text(json.dumps(asdict(cfg), indent=1))
        if tokenizer is not None:
            hf_tokenizer(tokenizer, cfg.max_len).save_pretrained(tmp)
    return out


def hf_tokenizer(tokenizer: Tokenizer, max_len: int = 512) -> Any:
    """Wrap a `tokenizers.Tokenizer` from `train_wordpiece` as a `PreTrainedTokenizerFast`."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=max_len,
        model_input_names=["input_ids", "attention_mask"])


def load_encoder(path: str | Path) -> CrammedEncoder:
    """Our encoder back from an `export_hf` folder (safetensors, no pickle)."""
    from safetensors.torch import load_file

    p = Path(path)
    try:
        cfg = EncoderConfig(**json.loads((p / "hasten_encoder.json").read_text()))
        state = load_file(str(p / "model.safetensors"))
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{p}: not an exported hasten encoder ({e})") from None
    model = CrammedEncoder(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "decoder.weight"]
    if missing or unexpected:
        raise CheckpointError(f"{p}: weights do not match the config (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return model


# -----------------------------------------------------------------------------
# the "original BERT" baseline


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


def bert_mlm_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-example MLM loss [B] of an HF masked-LM model (dense logits over every position),
    scaled like `mlm_loss` so the mean over examples is the mean over predicted tokens."""
    labels = batch["labels"]
    b = labels.shape[0]
    logits = model(input_ids=batch["input_ids"],
                   attention_mask=batch.get("attention_mask")).logits
    token_loss = F.cross_entropy(logits.float().flatten(0, 1), labels.reshape(-1),
                                 ignore_index=IGNORE, reduction="none").view(b, -1)
    n = (labels != IGNORE).sum().clamp(min=1)
    return token_loss.sum(dim=1) * (b / n)


def count_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (a tied matrix counts once)."""
    seen = {id(p): p.numel() for p in model.parameters() if p.requires_grad}
    return int(sum(seen.values()))


def flops_per_token(cfg: EncoderConfig, seq_len: int, predicted_fraction: float = 1.0) -> float:
    """Forward FLOPs per token (2 x multiply-adds) of matmuls: layers, attention, head on the
    predicted fraction of rows. Training is about 3x this."""
    h, i = cfg.hidden, cfg.intermediate
    layer = 2 * (3 * h * h + h * h + h * i + (i // 2) * h) + 2 * 2 * seq_len * h
    head = 2 * (h * h + h * cfg.vocab_size) * predicted_fraction
    return float(cfg.layers * layer + head)
