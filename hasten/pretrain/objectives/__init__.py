"""Pretraining objectives for `hasten cram`: what the model is, what it learns, how it leaves.

`hasten.pretrain.cram.cram` owns everything an objective does not care about: reading and filtering
the corpus, the WordPiece tokenizer, packing, the held-out split, the trainer under the budget,
the loss plot and the summary (the Cramming pipeline, Geiping & Goldstein 2022, and the
budget bookkeeping of 24h BERT, Izsak et al. 2021). An objective supplies three things:

    class MyObjective:
        name = "electra"
        recipe_values = {"mask_rate": 0.15}               # optional: its own recipe values
        def build_model(self, recipe, vocab) -> nn.Module: ...
        def make_loss(self, recipe, vocab, seed) -> LossFn: ...
        def export(self, model, tokenizer, out_dir, recipe) -> Path: ...

- `recipe` is the resolved recipe: a frozen dataclass (`hasten.pretrain.objectives.recipes.
  CrammedRecipe` or a recipe derived from it) with the objective's `recipe_values` replacing
  the named recipe's (ELECTRA masks 15%, not the crammed 25%) and the user's changes applied
  last. Read the fields you need (`recipe.hidden`, `recipe.mask_rate`), ignore the rest.
- `vocab` is a `Vocab` (size and the ids of [PAD] [UNK] [CLS] [SEP] [MASK]).
- `make_loss(...)(model, batch) -> [B]` is the trainer's per-example loss (`hasten.core.trainer`).
  `batch` is a 1-tuple `(rows,)` of packed token ids, int64 [B, seq_len], [CLS] first. The
  loss does its own corruption (masking, replaced-token sampling) from a generator seeded with
  `seed`. `cram` calls it a second time with a fixed seed, under `torch.no_grad()` and
  `model.eval()`, to compute the held-out loss; so the loss must also work in eval mode.
- `export(...)` writes a folder that `transformers.AutoModel*.from_pretrained` loads without
  remote code, tokenizer included (`hasten.text.tokenizer.hf_tokenizer` wraps ours), and
  returns its path (`hasten.models.export_hf.export_model` picks the format). `hasten glue`
  fine-tunes whatever that folder holds.

Optional extras `cram` uses when present:
- `make_eval(recipe, vocab, rows, seed) -> evaluate(model) -> {name: float}`: more held-out
  metrics on the held-out `rows`, logged next to `heldout_loss` (which they cannot replace);
- `hooks(recipe) -> list[hasten.core.trainer.Hook]`: extra trainer hooks (e.g. a health monitor).

Register an objective by giving its module a module-level `OBJECTIVE` (an instance) and adding
the module to `KNOWN` (or calling `register`); `get_objective(name)` imports it lazily, so an
objective with heavy imports costs nothing until it is used.
Results: docs/benchmarks.md ("MLM recipe (Cramming): more tokens in equal time, no GLUE-small
difference").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from hasten.core.errors import ConfigError
from hasten.text.tokenizer import special_ids

LossFn = Callable[[nn.Module, Any], torch.Tensor]

# name -> module defining OBJECTIVE; imported on first use
KNOWN: dict[str, str] = {
    "mlm": "hasten.pretrain.objectives.mlm",
    "electra": "hasten.pretrain.objectives.electra_objective",
}
_REGISTERED: dict[str, Objective] = {}


@dataclass(frozen=True)
class Vocab:
    """Vocabulary size and special-token ids of the run's tokenizer."""

    size: int
    pad: int
    unk: int
    cls: int
    sep: int
    mask: int

    @property
    def specials(self) -> list[int]:
        """Ids never masked nor used as random replacements."""
        return [self.pad, self.unk, self.cls, self.sep, self.mask]

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> Vocab:
        ids = special_ids(tokenizer)
        return cls(size=tokenizer.get_vocab_size(), **ids)


@runtime_checkable
class Objective(Protocol):
    """What `hasten.pretrain.cram.cram` needs from a pretraining objective (see the module docs)."""

    name: str

    def build_model(self, recipe: Any, vocab: Vocab) -> nn.Module: ...

    def make_loss(self, recipe: Any, vocab: Vocab, seed: int) -> LossFn: ...

    def export(self, model: nn.Module, tokenizer: Any, out_dir: str | Path,
               recipe: Any) -> Path: ...


def register(objective: Objective) -> None:
    """Make `objective` available under `objective.name` (overrides a known module)."""
    if not isinstance(objective, Objective):
        raise ConfigError(f"{objective!r} lacks build_model/make_loss/export")
    _REGISTERED[objective.name] = objective


def get_objective(name: str) -> Objective:
    """The objective called `name`; ConfigError naming the known ones if there is none."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in KNOWN:
        raise ConfigError(f"unknown objective {name!r}; known: {', '.join(available())}")
    try:
        module = importlib.import_module(KNOWN[name])
    except ModuleNotFoundError as err:
        if err.name == KNOWN[name]:
            raise ConfigError(f"objective {name!r} is not available yet ({KNOWN[name]} "
                              "is missing)") from None
        raise
    objective = getattr(module, "OBJECTIVE", None)
    if objective is None or not isinstance(objective, Objective):
        raise ConfigError(f"{KNOWN[name]} defines no OBJECTIVE with build_model, make_loss "
                          "and export")
    _REGISTERED[name] = objective
    return objective


def available() -> list[str]:
    """Names of the known and registered objectives."""
    return sorted(set(KNOWN) | set(_REGISTERED))
