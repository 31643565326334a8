"""Selective backprop as levers: which drawn examples deserve a backward pass.

Paper: Jiang et al. 2019, "Accelerating Deep Learning by Focusing on the Biggest Losers"
(arXiv 1910.00762); the selectors, the queue and their departures are in
`hasten.steps.selective_backprop`.

  sb         the paper's selector: keep each example with probability percentile ** beta over
             the last losses; full backward batches from a queue; the first `prime` of the
             budget trains on every example
  stale-sb   sb reusing each example's scored loss for `staleness` draws
  sb-topk    draw `pool` x the batch, backpropagate the `keep` fraction with the highest
             losses (airbench-style)
  sb-proxy   draw `pool` x the batch, backpropagate the top 1/`pool` by the losses of a small
             proxy model trained first (max(`epochs` epochs, `min_steps` steps of 256)); its
             training is charged to the run and, with a seconds budget, taken out of it

After pruning levers in a list, selection chooses among the rows they kept, and those rows
keep their pruning weights. Where it is shown: docs/benchmarks.md, "Selective backprop: at half
the FLOPs a trained proxy gains what a smaller batch gains; the paper's scoring forward does not
pay".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from hasten.core.budget import Budget, seconds_spec
from hasten.core.config import option
from hasten.core.errors import ConfigError
from hasten.core.recipe import Recipe
from hasten.core.train_config import TrainConfig
from hasten.core.train_state import Hook
from hasten.core.trainer import train
from hasten.levers.base import Lever, register_lever
from hasten.steps.selective_backprop import SelectiveBackprop


@dataclass
class SbSettings:
    beta: float = option(3.0, "the paper's exponent: keep probability percentile ** 3")
    prime: float = option(0.1, "the first tenth of the budget trains on every example (the "
                          "paper: one epoch)")
    staleness: int = option(0, "0: score every draw (Stale-SB reuses a score)")


@dataclass
class StaleSbSettings:
    beta: float = option(3.0, "the paper's exponent: keep probability percentile ** 3")
    prime: float = option(0.1, "the first tenth of the budget trains on every example")
    staleness: int = option(3, "the paper's Stale-SB: a score serves 3 draws")


@dataclass
class TopkSettings:
    keep: float = option(0.5, "backpropagate the top half of each draw")
    pool: int = option(2, "draw twice the batch, so the backward batch keeps its size")
    prime: float = option(0.1, "the first tenth of the budget trains on every example")


@dataclass
class ProxySettings:
    pool: int = option(2, "draw twice the batch; the proxy's top 1/pool is backpropagated, so "
                       "the backward batch keeps its size")
    epochs: float = option(1.0, "one epoch of proxy training")
    min_steps: int = option(200, "at least 200 proxy steps of 256: a barely trained proxy "
                            "picks a class-biased, frozen half of the data")
    lr: float | None = option(None, "None: the task's learning rate")


class _Selecting(Lever):
    needs: tuple[str, ...] = ("per_example_loss",)
    kind = "data"
    role = "select"
    hook: SelectiveBackprop | None = None

    def hooks(self) -> list[Hook]:
        assert self.hook is not None, "configure() or setup() builds the hook first"
        return [self.hook]


def _check_fraction(lever: Lever, name: str, value: float, low_open: bool = True) -> None:
    if not (0 < value <= 1 if low_open else 0 <= value <= 1):
        raise ConfigError(f"{lever.name}: {name} must be in {'(0' if low_open else '[0'}, 1], "
                          f"got {value}")


@register_lever
class Sb(_Selecting):
    """Selective backprop: keep each example with probability percentile(loss) ** beta."""

    name = "sb"
    Settings = SbSettings

    def check(self) -> None:
        s = self.settings
        if s.beta <= 0 or s.staleness < 0:
            raise ConfigError(f"{self.name}: need beta > 0 and staleness >= 0")
        _check_fraction(self, "prime", s.prime, low_open=False)

    def configure(self, config: TrainConfig) -> dict[str, Any]:
        s = self.settings
        self.hook = SelectiveBackprop("sb", beta=s.beta, prime=s.prime,
                                      staleness=s.staleness, seed=config.seed)
        return {}


@register_lever
class StaleSb(Sb):
    """Selective backprop reusing each example's scored loss for `staleness` draws."""

    name = "stale-sb"
    Settings = StaleSbSettings


@register_lever
class SbTopk(_Selecting):
    """Draw `pool` x the batch, backpropagate the `keep` fraction with the highest losses."""

    name = "sb-topk"
    Settings = TopkSettings

    def check(self) -> None:
        _check_fraction(self, "keep", self.settings.keep)
        _check_fraction(self, "prime", self.settings.prime, low_open=False)
        if self.settings.pool < 1:
            raise ConfigError(f"{self.name}: pool must be >= 1, got {self.settings.pool}")

    def configure(self, config: TrainConfig) -> dict[str, Any]:
        backward = config.micro_batch
        config.micro_batch = self.settings.pool * backward
        self.hook = SelectiveBackprop("topk", keep=self.settings.keep, prime=self.settings.prime,
                                      backward_batch=backward)
        return {}


@register_lever
class SbProxy(_Selecting):
    """sb-topk scored by a small proxy trained first (its cost charged to the run)."""

    name = "sb-proxy"
    Settings = ProxySettings
    needs = ("per_example_loss", "proxy_model")

    def check(self) -> None:
        if self.settings.pool < 1 or self.settings.epochs <= 0 or self.settings.min_steps < 0:
            raise ConfigError(f"{self.name}: need pool >= 1, epochs > 0, min_steps >= 0")

    def setup(self, recipe: Recipe) -> None:
        s, cfg, data = self.settings, recipe.config, recipe.train_data
        assert recipe.proxy_model is not None
        small = recipe.proxy_model()
        examples = max(int(s.epochs * len(data)), s.min_steps * 256)
        proxy_cfg = TrainConfig(budget=f"{examples}ex", lr=s.lr if s.lr is not None else cfg.lr,
                                micro_batch=256, quiet=True, seed=cfg.seed,
                                precision=cfg.precision, tensorboard=False, eval_every=1.0)
        start = time.perf_counter()
        result = train(small, data, recipe.loss_fn, proxy_cfg, collate_fn=recipe.collate_fn)
        seconds = time.perf_counter() - start
        self.costs["seconds"] += seconds
        self.costs["flops"] += result.work["flops"]
        recipe.overhead_seconds += seconds
        recipe.overhead_flops += result.work["flops"]
        budget = Budget(cfg.budget)
        if budget.is_wall_clock:  # the proxy's time comes out of the same wall-clock budget
            cfg.budget = seconds_spec(max(1.0, budget.amount - seconds))
        elif budget.unit == "flops":  # ... and its FLOPs out of a FLOPs budget
            cfg.budget = f"{max(1.0, budget.amount - result.work['flops']):.6g}flop"
        recipe.notes["proxy"] = {"train_seconds": result.train_seconds, "examples": examples,
                                 "flops": result.work["flops"], "pool": s.pool,
                                 "epochs": examples / len(data)}
        backward = cfg.micro_batch
        cfg.micro_batch = s.pool * backward
        self.hook = SelectiveBackprop("topk", keep=1.0 / s.pool, prime=0.0, scorer=small,
                                      backward_batch=backward)
