"""Dynamic data pruning as levers: InfoBatch and its two controls.

Paper: Qin et al. 2024 (ICLR), "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data
Pruning"; the rule, its departures and its DDP handling are in `hasten.select.infobatch`.

  infobatch      each epoch, prune below-mean-loss examples with probability `prune`, rescale
                 the kept ones by 1 / (1 - prune); full data from `anneal` of the budget on
  random-drop    as many examples dropped uniformly at random, no rescaling
  drop-easiest   as many of the lowest-loss examples dropped, no rescaling

Each draws the epochs (a sampler) and records the losses the training forward gives anyway
(a hook); nothing is scored twice. After a curriculum in a lever list, the curriculum draws
until its length T and the pruning takes over from there (`PhasedSampler`), on the scores its
hook recorded meanwhile. Where it is shown: docs/benchmarks.md, "Dynamic data pruning:
drop-easiest pays at 0.7 of the examples; InfoBatch beats training less, its loss undecided".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hasten.core.config import option
from hasten.core.errors import ConfigError
from hasten.core.recipe import Recipe
from hasten.core.sampling import Sampler
from hasten.core.train_state import Hook
from hasten.levers.base import Lever, register_lever
from hasten.select.curriculum import CompetenceSampler
from hasten.select.infobatch import InfoBatch, InfoBatchHook


@dataclass
class PruneSettings:
    prune: float = option(0.5, "InfoBatch's r, the paper's default")
    anneal: float = option(0.875, "InfoBatch's delta, the paper's default: full data for the "
                           "last eighth of the budget")


class PhasedSampler:
    """`first` until budget progress `at`, then `second` (a curriculum, then pruning)."""

    def __init__(self, first: Any, second: Any, at: float):
        self.first, self.second, self.at = first, second, at

    def sample(self, n: int, progress: float = 0.0) -> list[int]:
        return (self.first if progress < self.at else self.second).sample(n, progress)

    def state_dict(self) -> dict[str, Any]:
        return {"first": self.first.state_dict(), "second": self.second.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.first.load_state_dict(state["first"])
        self.second.load_state_dict(state["second"])


class _Pruning(Lever):
    """The three rules share everything but the rule's name."""

    Settings = PruneSettings
    needs = ("per_example_loss", "example_ids")
    kind = "data"
    role = "prune"
    rule = "infobatch"
    pruner: InfoBatch | None = None  # built by sampler()
    notes: dict[str, Any] | None = None  # the recipe's notes, for the pruning statistics

    def check(self) -> None:
        s = self.settings
        if not 0.0 <= s.prune < 1.0:
            raise ConfigError(f"{self.name}: prune must be in [0, 1), got {s.prune}")
        if not 0.0 <= s.anneal <= 1.0:
            raise ConfigError(f"{self.name}: anneal must be a budget fraction in [0, 1], got "
                              f"{s.anneal}")

    def sampler(self, upstream: Sampler | None, recipe: Recipe) -> Sampler | None:
        self.pruner = InfoBatch(len(recipe.train_data), ratio=self.settings.prune,
                                anneal=self.settings.anneal, rule=self.rule,
                                seed=recipe.config.seed)
        self.notes = recipe.notes
        recipe.notes["pruning"] = self.pruner.stats()
        if upstream is None:
            return self.pruner
        if isinstance(upstream, CompetenceSampler) and upstream.T_fraction is not None:
            return PhasedSampler(upstream, self.pruner, upstream.T_fraction)
        raise ConfigError(f"{self.name} draws its own epochs: it follows only a curriculum "
                          f"with T as a budget fraction, not {type(upstream).__name__}")

    def hooks(self) -> list[Hook]:
        assert self.pruner is not None, "sampler() builds the pruner first"
        return [InfoBatchHook(self.pruner, notes=self.notes)]


@register_lever
class InfoBatchLever(_Pruning):
    """InfoBatch: prune below-mean losses with probability r, rescale the rest, anneal."""

    name = "infobatch"
    rule = "infobatch"


@register_lever
class RandomDrop(_Pruning):
    """The control: as many examples as InfoBatch prunes, dropped at random, no rescaling."""

    name = "random-drop"
    rule = "random-drop"


@register_lever
class DropEasiest(_Pruning):
    """As many examples as InfoBatch prunes, the lowest losses, no rescaling."""

    name = "drop-easiest"
    rule = "drop-easiest"
