"""Masked-language modelling: the losses and the `hasten cram` objective.

BERT's objective (Devlin et al. 2019): corrupt a fraction of the tokens (80% [MASK], 10% a
random token, 10% unchanged; `hasten.text.masking`) and predict the originals. Cramming
(Geiping & Goldstein 2023) masks 25% and runs the prediction head only on the predicted rows
(sparse token prediction, also Izsak et al. 2021's 24h BERT); BERT masks 15% with a
full-vocabulary head on every position.

- `mlm_loss(model, batch, sparse=...)`: per-example loss [B] of any encoder with
  `forward -> hidden` and `logits(hidden)` (`CrammedEncoder`, `BertEncoder`), the head on the
  predicted rows only ("static": a fixed bucketed count, "variable": exactly those) or on
  every position (None, the dense reference).
- `bert_mlm_loss`: the same for an HF masked-LM model (dense logits).
- `make_mlm_loss`: a trainer loss over raw packed rows that masks each batch on the fly.
- `MaskedLM`: the objective plug-in (`hasten.pretrain.objectives.Objective`) for the three
  architectures of `hasten.pretrain.objectives.recipes.ARCHS`.

Each example's loss is the sum of its token losses times B / (predicted tokens in the
batch), so the trainer's mean over examples is the mean over predicted tokens. Results:
docs/benchmarks.md ("MLM recipe (Cramming): more tokens in equal time, no GLUE-small difference").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from hasten.core.distributed import unwrap_model
from hasten.core.errors import ConfigError
from hasten.models.bert import BertEncoder, BertEncoderConfig, original_bert
from hasten.models.encoder import CrammedEncoder, EncoderConfig
from hasten.models.export_hf import export_model
from hasten.pretrain.objectives import LossFn, Vocab
from hasten.pretrain.objectives.recipes import CrammedRecipe
from hasten.text.masking import IGNORE, mask_tokens, sparse_positions

Sparse = Literal["static", "variable"] | None


def rows_of(batch: Any) -> torch.Tensor:
    """The packed token ids of a trainer batch: a tensor, a (rows,) tuple or {"input_ids"}."""
    if isinstance(batch, Mapping):
        return batch["input_ids"]
    if isinstance(batch, (tuple, list)):
        return batch[0]
    return batch


def _bucket(n: int, step: int, total: int) -> int:
    return max(1, min(total, -(-n // step) * step))


def mlm_loss(model: nn.Module, batch: Mapping[str, torch.Tensor], sparse: Sparse = "static",
             static_count: int | None = None, bucket: int = 128) -> torch.Tensor:
    """Per-example MLM loss [B] for the trainer (see the module docstring).

    `batch` holds `input_ids` and `labels` (-100 where nothing is predicted), optionally
    `attention_mask`. `sparse="static"` gathers `static_count` rows, or the batch's predicted
    count rounded up to a multiple of `bucket` (few distinct shapes); pad rows carry target
    -100. `model` may be wrapped in DDP or `torch.compile`: the encoder runs through the
    wrapper, the head on the unwrapped module.
    """
    ids, labels = batch["input_ids"], batch["labels"]
    b, s = labels.shape
    hidden = model(ids, batch.get("attention_mask"))
    flat_h = hidden.reshape(b * s, -1)
    if sparse is None:
        pos = torch.arange(b * s, device=labels.device)
        targets, rows = labels.reshape(-1), flat_h
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


def bert_mlm_loss(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
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


def is_hf_model(model: nn.Module) -> bool:
    """Whether `model` is a transformers model (dense logits from `model(...).logits`)."""
    return hasattr(unwrap_model(model), "save_pretrained")


def make_mlm_loss(special_ids: Sequence[int], mask_id: int, vocab_size: int,
                  rate: float = 0.25, sparse: Sparse = "static", exact: bool = True,
                  seed: int = 0, rule: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  ) -> Callable[[nn.Module, Any], torch.Tensor]:
    """A trainer `loss_fn(model, batch) -> [B]` over raw packed rows: masks each batch on the
    fly (`mask_tokens`, `rule`, `exact` count per row so the sparse shape is static) with a
    generator seeded by `seed` (kept as `loss_fn.generator`, so a checkpoint can save it) and
    returns `mlm_loss` (our encoders) or `bert_mlm_loss` (an HF model). `batch` is the rows
    tensor, a (rows,) tuple as a TensorDataset gives, or a dict with `input_ids`."""
    gen = torch.Generator().manual_seed(seed)

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        inputs, labels = mask_tokens(rows_of(batch), rate, special_ids, mask_id, vocab_size,
                                     rule=rule, generator=gen, exact=exact)
        masked = {"input_ids": inputs, "labels": labels}
        if is_hf_model(model):
            return bert_mlm_loss(model, masked)
        return mlm_loss(model, masked, sparse=sparse)

    loss_fn.generator = gen  # type: ignore[attr-defined]
    return loss_fn


def build_encoder(recipe: CrammedRecipe, vocab: Vocab) -> nn.Module:
    """The recipe's encoder (`arch`: crammed, bert, bert-prenorm) for the vocabulary."""
    arch = recipe.arch
    if arch == "crammed":
        return CrammedEncoder(EncoderConfig(
            vocab_size=vocab.size, hidden=recipe.hidden, layers=recipe.layers,
            heads=recipe.heads, intermediate=recipe.intermediate,
            max_len=recipe.max_len, norm_eps=recipe.norm_eps,
            init_std=recipe.init_std, pad_id=vocab.pad, cls_id=vocab.cls,
            sep_id=vocab.sep, mask_id=vocab.mask))
    if arch == "bert-prenorm":
        return BertEncoder(BertEncoderConfig(
            vocab_size=vocab.size, hidden=recipe.hidden, layers=recipe.layers,
            heads=recipe.heads, intermediate=recipe.intermediate,
            max_len=recipe.max_len, dropout=recipe.dropout, pre_norm=True,
            pad_id=vocab.pad))
    if arch != "bert":
        raise ConfigError(f"unknown arch {arch!r}")
    model = original_bert(vocab.size, width=recipe.hidden, depth=recipe.layers,
                          heads=recipe.heads, intermediate=recipe.intermediate,
                          max_len=recipe.max_len, dropout=recipe.dropout,
                          pad_id=vocab.pad)
    model.config.cls_token_id, model.config.sep_token_id = vocab.cls, vocab.sep
    return model


class MaskedLM:
    """The MLM objective: BERT's 80/10/10 corruption at `mask_rate`, loss on predicted tokens
    (sparse head for our encoders when the recipe says so, dense for HF BERT)."""

    name = "mlm"
    recipe_values: dict[str, Any] = {}

    def build_model(self, recipe: CrammedRecipe, vocab: Vocab) -> nn.Module:
        return build_encoder(recipe, vocab)

    def make_loss(self, recipe: CrammedRecipe, vocab: Vocab, seed: int) -> LossFn:
        return make_mlm_loss(vocab.specials, vocab.mask, vocab.size, rate=recipe.mask_rate,
                             sparse=recipe.sparse, exact=recipe.exact_masking,
                             seed=seed, rule=tuple(recipe.mask_rule))

    def export(self, model: nn.Module, tokenizer: Any, out_dir: str | Path,
               recipe: CrammedRecipe) -> Path:
        return export_model(model, tokenizer, out_dir)


OBJECTIVE = MaskedLM()
