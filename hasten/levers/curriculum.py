"""The competence-based curriculum as a lever.

Paper: Platanios et al. 2019 (NAACL), "Competence-based Curriculum Learning for Neural Machine
Translation"; the sampler and its departures are in `hasten.select.curriculum`. Batches are
drawn uniformly from the examples whose difficulty CDF is below the competence
c(t) = min(1, (t (1 - c0^p) / T + c0^p) ^ (1/p)), with T a fraction of the budget, so the
curriculum scales with any budget; from T on, sampling is uniform.

The difficulty comes from the task (`Recipe.difficulty`) or is given to the lever
(`Curriculum(difficulty=lengths)`) in a loop hasten does not own. Where it is shown:
docs/benchmarks.md, "Curricula for translation".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hasten.core.config import option
from hasten.core.errors import ConfigError
from hasten.core.recipe import Recipe
from hasten.core.sampling import Sampler
from hasten.levers.base import Lever, register_lever
from hasten.select.curriculum import CompetenceSampler


@dataclass
class CurriculumSettings:
    p: float = option(2.0, "the paper's c_sqrt: admits hard examples faster than c_linear")
    c0: float = option(0.01, "the paper's initial competence in every configuration")
    T: float = option(0.5, "uniform sampling from half the budget on (the paper's rule of "
                      "thumb, where the baseline reaches 90% of its best)")


@register_lever
class Curriculum(Lever):
    """Draw batches from the examples the current competence admits."""

    name = "curriculum"
    Settings = CurriculumSettings
    needs = ("difficulty", "example_ids")
    kind = "data"
    role = "order"

    def __init__(self, *, difficulty: Any = None, **settings: Any):
        super().__init__(**settings)
        self.difficulty = difficulty

    def check(self) -> None:
        s = self.settings
        if not 0 < s.T <= 1:
            raise ConfigError(f"curriculum: T is a budget fraction in (0, 1], got {s.T}")
        if s.p <= 0 or not 0 < s.c0 <= 1:
            raise ConfigError(f"curriculum: need p > 0 and c0 in (0, 1], got p={s.p}, "
                              f"c0={s.c0}")

    def refusal(self, recipe: Recipe) -> str | None:
        if self.difficulty is not None:
            return None
        return super().refusal(recipe)

    def sampler(self, upstream: Sampler | None, recipe: Recipe) -> Sampler | None:
        if upstream is not None:
            raise ConfigError(f"curriculum draws the batches itself; it cannot follow "
                              f"{type(upstream).__name__}")
        difficulty = self.difficulty if self.difficulty is not None else recipe.difficulty
        if len(difficulty) != len(recipe.train_data):
            raise ConfigError(f"curriculum: {len(difficulty)} difficulties for "
                              f"{len(recipe.train_data)} training examples")
        s = self.settings
        return CompetenceSampler(difficulty, p=s.p, c0=s.c0, T_fraction=s.T,
                                 seed=recipe.config.seed)
