"""The ELECTRA objective for `hasten cram`: the discriminator and its generator built from the
recipe, the loss of `hasten.pretrain.objectives.electra`, the health monitor of
`hasten.pretrain.objectives.electra_monitor`, and the discriminator's HF export.

Paper: Clark et al. 2020 (ICLR), "ELECTRA: Pre-training Text Encoders as Discriminators
Rather Than Generators". Results: docs/benchmarks.md ("ELECTRA: no gain over MLM that
GLUE-small can see").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hasten.core.errors import ConfigError
from hasten.core.trainer import Hook
from hasten.models.electra import build_electra
from hasten.models.encoder import EncoderConfig
from hasten.models.export_hf import export_discriminator
from hasten.pretrain.objectives import LossFn, Vocab
from hasten.pretrain.objectives.electra import make_electra_loss
from hasten.pretrain.objectives.electra_monitor import ElectraMonitor, make_electra_eval
from hasten.pretrain.objectives.recipes import CrammedRecipe


class Electra:
    """The ELECTRA objective for `hasten cram` (`hasten.pretrain.objectives.Objective`).

    Recipe values read: the discriminator's shape (`hidden`, `layers`, `heads`,
    `intermediate`, `max_len`, `norm_eps`, `init_std`), `mask_rate` (set to the paper's 0.15
    for Small and Base over the crammed recipe's 0.25; `--set mask_rate=0.25` is Large's),
    `exact_masking`, `sparse`, and the ELECTRA-only `gen_width_ratio` (1/4), `disc_weight`
    (50), `keep_unchanged` (0.15). `arch` must be "crammed". The held-out loss cram reports
    is the ELECTRA loss (MLM + 50 x discriminator). Optional extras for cram: `make_eval`
    (the monitor's metrics on held-out rows) and `hooks` (an `ElectraMonitor` that warns on
    a degenerate game)."""

    name = "electra"
    recipe_values: dict[str, Any] = {"mask_rate": 0.15}

    def build_model(self, recipe: CrammedRecipe, vocab: Vocab) -> nn.Module:
        if recipe.arch != "crammed":
            raise ConfigError(f"the electra objective needs arch 'crammed', got "
                              f"{recipe.arch!r}")
        cfg = EncoderConfig(
            vocab_size=vocab.size, hidden=recipe.hidden, layers=recipe.layers,
            heads=recipe.heads, intermediate=recipe.intermediate,
            max_len=recipe.max_len, norm_eps=recipe.norm_eps,
            init_std=recipe.init_std, pad_id=vocab.pad, cls_id=vocab.cls, sep_id=vocab.sep,
            mask_id=vocab.mask)
        return build_electra(cfg, recipe.gen_width_ratio)

    def make_loss(self, recipe: CrammedRecipe, vocab: Vocab, seed: int) -> LossFn:
        return make_electra_loss(
            vocab.specials, vocab.mask, rate=recipe.mask_rate,
            keep_unchanged=recipe.keep_unchanged,
            disc_weight=recipe.disc_weight,
            exact=recipe.exact_masking, sparse=recipe.sparse,
            seed=seed)

    def export(self, model: nn.Module, tokenizer: Any, out_dir: str | Path,
               recipe: CrammedRecipe) -> Path:
        return export_discriminator(model, tokenizer, out_dir)

    def make_eval(self, recipe: CrammedRecipe, vocab: Vocab, rows: torch.Tensor,
                  seed: int = 1234) -> Callable[[nn.Module], dict[str, float]]:
        return make_electra_eval(rows, vocab.specials, vocab.mask, rate=recipe.mask_rate,
                                 keep_unchanged=recipe.keep_unchanged,
                                 disc_weight=recipe.disc_weight, seed=seed)

    def hooks(self, recipe: CrammedRecipe) -> list[Hook]:
        return [ElectraMonitor()]


OBJECTIVE = Electra()
