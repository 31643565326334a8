"""Static data pruning as a lever: score every example once, train on the kept fraction.

Papers: Paul et al. 2021 (EL2N, GraNd), Toneva et al. 2019 (forgetting), Pleiss et al. 2020
(AUM), Sorscher et al. 2022 (prototypes); the scorers and selectors are in `hasten.select`.
The scoring model is a copy of the task's own untrained model, trained by the task's loss,
learning rate and micro-batch for `epochs` (averaged over `runs` copies); its whole cost
(seconds and FLOPs) is charged to the run. The kept rows replace the training set for the
levers after this one (a curriculum's difficulties are kept in step).

Departure from the pruning suite (`hasten.bench.prune`): the budget is the user's, not scaled
to the kept fraction, so at an examples budget the subset is seen more often; the suite's
`SCORER-KEEP` methods keep the papers' fixed-epoch protocol. Where it is shown:
docs/benchmarks.md, "Static pruning: keep 0.5 matches full data but scoring costs more
than it saves".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Subset, TensorDataset

from hasten.core.config import option
from hasten.core.errors import ConfigError
from hasten.core.recipe import Recipe
from hasten.levers.base import Lever, register_lever
from hasten.select import scorers
from hasten.select.proxy import ScoringSpec
from hasten.select.selectors import keep_easiest, keep_hardest, keep_random


@dataclass
class StaticSettings:
    scorer: str = option("el2n", "EL2N early in training: cheap and among the best at keep "
                         "0.5 (Paul et al. 2021)")
    keep: float = option(0.5, "half the data: where scored pruning matches full data in "
                         "the papers")
    epochs: float = option(2.0, "EL2N after an early epoch (the paper: epoch 20 of 200)")
    runs: int = option(1, "one scoring model (the paper averages 10; each costs its epochs)")
    which: str = option("hardest", "keep the hardest examples (the easiest at high keep "
                        "fractions hurt least, Sorscher et al.)", choices=("hardest", "easiest"))


@register_lever
class StaticPrune(Lever):
    """Score once, train on the kept fraction; the scoring is charged to the run."""

    name = "prune"
    Settings = StaticSettings
    needs = ("per_example_loss", "example_ids")
    kind = "data"
    role = "pool"

    def check(self) -> None:
        s = self.settings
        if not 0 < s.keep <= 1:
            raise ConfigError(f"prune: keep must be in (0, 1], got {s.keep}")
        if s.scorer != "random" and s.scorer not in scorers.SCORERS:
            raise ConfigError(f"prune: unknown scorer {s.scorer!r}; known: random, "
                              f"{', '.join(sorted(scorers.SCORERS))}")
        if s.runs < 1 or s.epochs < 0 or s.which not in ("hardest", "easiest"):
            raise ConfigError("prune: need runs >= 1, epochs >= 0, which hardest or easiest")

    def setup(self, recipe: Recipe) -> None:
        s, cfg, data = self.settings, recipe.config, recipe.train_data
        if s.scorer == "random":
            kept = keep_random(len(data), s.keep, seed=cfg.seed)
        else:
            initial = copy.deepcopy(recipe.model)
            spec = ScoringSpec(make_model=lambda: copy.deepcopy(initial), epochs=s.epochs,
                               lr=cfg.lr, batch_size=cfg.micro_batch,
                               weight_decay=cfg.weight_decay, seed=cfg.seed,
                               precision=cfg.precision, runs=s.runs, loss_fn=recipe.loss_fn,
                               collate_fn=recipe.collate_fn)
            found = scorers.score(s.scorer, data, spec)
            kept = (keep_hardest if s.which == "hardest" else keep_easiest)(found, s.keep)
            self.costs["seconds"] += found.seconds
            self.costs["flops"] += float(found.work.get("flops", 0.0))
            recipe.overhead_seconds += found.seconds
            recipe.overhead_flops += float(found.work.get("flops", 0.0))
        kept = np.sort(np.asarray(kept, dtype=np.int64))
        recipe.train_data = _rows(data, kept)
        if recipe.difficulty is not None:
            recipe.difficulty = np.asarray(recipe.difficulty)[kept]
        recipe.notes["static_pruning"] = {"scorer": s.scorer, "keep": s.keep,
                                          "kept": int(len(kept)), "of": len(data),
                                          "seconds": self.costs["seconds"]}


def _rows(data: object, kept: np.ndarray) -> object:
    """The kept rows: a copy for tensors (no per-item gathering), else a torch Subset."""
    if isinstance(data, TensorDataset):
        idx = torch.as_tensor(kept, dtype=torch.long)
        return TensorDataset(*(t[idx] for t in data.tensors))
    return Subset(data, kept.tolist())  # type: ignore[arg-type]
