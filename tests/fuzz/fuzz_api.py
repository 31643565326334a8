"""The public entry points as fuzzing properties: `train`, `Budget`, `budget_lr`, the samplers,
InfoBatch, the selective-backprop functions and hook, `Recipe`, the framework callbacks and
the lever list with its HF and Lightning adapters,
each called with random types and shapes per argument (a few arguments replaced by values
of other types or shapes, the rest valid). A call must return (and the object it made must
draw a batch) or raise one `ConfigError` line; any other exception, `DataError` included,
fails the property: a wrong argument is the caller's configuration, named up front.

A valid `train` call trains one step on eight examples (no folder is written: `out_dir`
stays None); the values a fuzzed argument takes are of a type or shape the entry point
does not take, so a call that gets past the checks with one of them is a hole in them."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from fuzz_props import PropertyFailure, hang_guard, one_line, reader
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core.errors import ConfigError, HastenError

X = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
DATA = TensorDataset(X, (X[:, 0] > 0).long())

# values of every kind: a fuzzed argument takes one that its entry point does not accept
JUNK: list[Any] = [
    None, True, 0, -1, 3, 2.5, math.nan, math.inf, "", "abc", "2s", [], [1, 2], {}, {"a": 1},
    (1, 2), torch.tensor(1.0), torch.ones(3), torch.ones(2, 3), torch.zeros(0), np.ones(3),
    np.ones((2, 2)), object(), TensorDataset(torch.zeros(0, 2)), {"x": X},
]


def _loss(model: nn.Module, batch: Any) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def _evaluate(model: nn.Module) -> dict[str, float]:
    return {"accuracy": 0.0}


def _not(kinds: tuple[type, ...], *more: Any) -> list[Any]:
    """The junk values that are not of `kinds` (and `more` extra wrong values)."""
    return [v for v in JUNK if not isinstance(v, kinds) or isinstance(v, bool)] + list(more)


def _empty_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 0


NOT_CALLABLE = [v for v in JUNK if not callable(v)]
NUMBERS = (int, float)


@st.composite
def calls(draw: Any, entries: dict[str, dict[str, tuple[list[Any], list[Any]]]]
          ) -> tuple[str, dict[str, Any]]:
    """An entry point and its keyword arguments: up to two of them fuzzed (a wrong type or
    shape), the others valid."""
    name = draw(st.sampled_from(sorted(entries)))
    spec = entries[name]
    fuzzed = set(draw(st.lists(st.sampled_from(sorted(spec)), max_size=2)))
    kwargs = {}
    for arg, (valid, wrong) in spec.items():
        pool = wrong if arg in fuzzed and wrong else valid
        kwargs[arg] = draw(st.sampled_from(pool))
    return name, kwargs


def api_outcome(fn: Callable[[], Any]) -> str:
    """"ok", or "error" for one ConfigError line; any other ending is a PropertyFailure."""
    try:
        with hang_guard():
            fn()
        return "ok"
    except ConfigError as err:
        one_line(err)
        return "error"
    except HastenError as err:
        raise PropertyFailure(f"{type(err).__name__} (not a ConfigError): {err}") from None
    except PropertyFailure:
        raise
    except Exception as err:
        raise PropertyFailure(f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
                              ) from err


# --- train ---------------------------------------------------------------------------------

# config fields fuzzed one at a time (never the folder, resuming or compiling: no files,
# no minutes of compilation)
CONFIG_SKIP = {"out_dir", "resume", "compile", "device"}


def _configs() -> list[Any]:
    from hasten.core.trainer import TrainConfig

    base = {"budget": "1steps", "micro_batch": 4, "quiet": True, "tensorboard": False,
            "eval_every": 1.0}
    out = [TrainConfig(**base)]
    for name in TrainConfig.__dataclass_fields__:
        if name in CONFIG_SKIP or name in base:
            continue
        for value in (None, "abc", 2.5, -1, [1, 2], {"a": "b"}, math.nan):
            out.append(TrainConfig(**{**base, name: value}))
    return out


def train_entries() -> dict[str, dict[str, tuple[list[Any], list[Any]]]]:
    from hasten.core.sampling import ShuffledSampler
    from hasten.core.trainer import Hook

    configs = _configs()
    return {"train": {
        "model": ([nn.Linear(2, 2)], _not((nn.Module,), _loss)),
        "train_data": ([DATA], [v for v in JUNK if not isinstance(v, (list, tuple))
                                or isinstance(v, TensorDataset)]),
        "loss_fn": ([_loss], NOT_CALLABLE),
        "config": ([configs[0]], _not(()) + configs[1:]),
        "evaluate": ([None, _evaluate], NOT_CALLABLE),
        "hooks": ([[], (Hook(),)], [v for v in JUNK if not _empty_sequence(v)] + [[object()]]),
        "sampler": ([None, ShuffledSampler(len(DATA))], [v for v in JUNK if v is not None]),
        "tokens_fn": ([None], NOT_CALLABLE),
        "collate_fn": ([None], [v for v in NOT_CALLABLE if v is not None]),
    }}


def _call_train(kwargs: dict[str, Any]) -> None:
    from hasten.core.trainer import train

    train(**kwargs)


# --- budgets and schedules -----------------------------------------------------------------

SPECS = ["90s", "2steps", "1e3ex", "5tok", "1e9flop", ("steps", 2.0)]


def budget_entries() -> dict[str, dict[str, tuple[list[Any], list[Any]]]]:
    from hasten.core.budget import Budget

    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    return {
        "Budget": {"spec": (SPECS, JUNK + ["0.5steps", "-5m", "-5s", "0.5ex", ("x", 1),
                                           ("steps", "2"), ("steps", 2.5)])},
        "budget_lr": {
            "optimizer": ([opt], JUNK),
            "budget": ([Budget("4steps"), Budget("2s")], JUNK + SPECS),
            "schedule": (["cosine", "linear", "one-cycle", "step"], JUNK + ["cos"]),
            "projected": ([True, False], _not((bool,))),
            "warmup": ([0.0, 0.1], [v for v in JUNK if not isinstance(v, NUMBERS)]),
        },
    }


def _call_budget(name: str, kwargs: dict[str, Any]) -> None:
    from hasten.core.budget import Budget
    from hasten.core.schedules import budget_lr

    if name == "Budget":
        Budget(kwargs["spec"])
        return
    scheduler = budget_lr(**kwargs)
    kwargs["budget"].work.steps += 1
    scheduler.optimizer.step()
    scheduler.step()


# --- samplers and InfoBatch ----------------------------------------------------------------


def sampler_entries() -> dict[str, dict[str, tuple[list[Any], list[Any]]]]:
    from hasten.core.budget import Budget
    from hasten.core.sampling import ShuffledSampler
    from hasten.select.curriculum import CompetenceSampler

    sizes = ([8, 100], _not((int,), DATA, 0, -3, 8.0))
    seeds = ([0, 7], _not((int,), 1.5))
    return {
        "ShuffledSampler": {"size": sizes, "seed": seeds, "rank": ([0], JUNK + [1]),
                            "world_size": ([1], JUNK)},
        "CompetenceSampler": {
            "difficulty": ([np.arange(8.0), [3.0, 1.0, 2.0], torch.rand(5)],
                           JUNK + [np.ones((2, 3)), [1.0, math.nan]]),
            "p": ([1.0, 2], _not(NUMBERS, 0, -1.0)), "c0": ([0.01], _not(NUMBERS, 0, 2.0)),
            "T": ([10, None], [v for v in _not(NUMBERS, 0) if v is not None]),
            "seed": seeds, "min_pool": ([None, 0, 2], _not((int,), -1)),
        },
        "CompetenceBatchSampler": {
            "sampler": ([ShuffledSampler(8), CompetenceSampler(np.arange(8.0), T=5)],
                        [v for v in JUNK if not callable(getattr(v, "sample", None))]),
            "batch_size": ([1, 4], _not((int,), 0)),
            "progress": ([Budget("5steps"), lambda: 0.5], NOT_CALLABLE),
            "batches": ([None, 2], _not((int,), 0)),
            "stop_when_spent": ([True, False], _not((bool,))),
        },
        "InfoBatch": {"size": sizes, "ratio": ([0.0, 0.5], _not(NUMBERS, 1.0, -0.5)),
                      "anneal": ([0.875, 1.0], _not(NUMBERS, 1.5)),
                      "rule": (["infobatch", "random-drop", "drop-easiest"], JUNK + ["x"]),
                      "seed": seeds},
    }


def _call_sampler(name: str, kwargs: dict[str, Any]) -> None:
    from hasten.core.sampling import ShuffledSampler
    from hasten.data.batch_sampler import CompetenceBatchSampler
    from hasten.select.curriculum import CompetenceSampler
    from hasten.select.infobatch import InfoBatch

    if name == "CompetenceSampler":
        kwargs = {**kwargs, "T_fraction": None if kwargs["T"] is not None else 0.5}
    cls = {"ShuffledSampler": ShuffledSampler, "CompetenceSampler": CompetenceSampler,
           "CompetenceBatchSampler": CompetenceBatchSampler, "InfoBatch": InfoBatch}[name]
    made = cls(**kwargs)
    if name == "CompetenceBatchSampler":
        next(iter(made), None)
    else:
        made.sample(4, 0.5)


# --- selective backprop --------------------------------------------------------------------


def selection_entries() -> dict[str, dict[str, tuple[list[Any], list[Any]]]]:
    from hasten.steps.selective_backprop import LossHistory

    losses = ([torch.rand(6), torch.tensor([0.5, 0.1]), torch.arange(4)],
              JUNK + [torch.rand(2, 3), torch.tensor(2.0), [0.1, 0.2]])
    return {
        "top_k_mask": {"losses": losses, "keep": ([0.5, 1.0, 0.01], _not(NUMBERS, 0, 1.5))},
        "select_biggest_losers": {
            "losses": losses, "history": ([LossHistory(16)], JUNK),
            "beta": ([3.0, 1], _not(NUMBERS, 0, -1.0)), "p_min": ([0.0, 0.5], _not(NUMBERS, 2)),
            "generator": ([None, torch.Generator().manual_seed(0)],
                          [v for v in JUNK if v is not None]),
        },
        "SelectiveBackprop": {
            "selector": (["sb", "topk"], JUNK), "keep": ([0.5], _not(NUMBERS, 0)),
            "prime": ([0.0, 0.3], _not(NUMBERS, 2)), "staleness": ([0, 3], _not((int,), -1)),
            "scorer": ([None, nn.Linear(2, 2)], [v for v in JUNK if v is not None]),
            "backward_batch": ([None, 8], _not((int,), 0)),
        },
    }


def _call_selection(name: str, kwargs: dict[str, Any]) -> None:
    from hasten.steps import selective_backprop as sb

    getattr(sb, name)(**kwargs)


# --- Recipe and the callbacks --------------------------------------------------------------


def recipe_entries() -> dict[str, dict[str, tuple[list[Any], list[Any]]]]:
    from hasten.core.trainer import TrainConfig

    configs = _configs()
    return {
        "Recipe": {
            "model": ([nn.Linear(2, 2)], _not((nn.Module,))),
            "train_data": ([DATA, None], [v for v in JUNK if v is not None and (
                not isinstance(v, (list, tuple)) or isinstance(v, TensorDataset))]),
            "loss_fn": ([_loss, None], [v for v in NOT_CALLABLE if v is not None]),
            "evaluate": ([_evaluate], [v for v in NOT_CALLABLE if v is not None]),
            "config": ([TrainConfig()], _not(()) + configs[1:]),
            "hooks": ([[]], [v for v in JUNK if not _empty_sequence(v)]),
            "overhead_seconds": ([0.0, 2], _not(NUMBERS, -1.0)),
        },
        "lightning.BudgetCallback": {
            "budget": (["5steps", "10s"], JUNK + ["1e9flop", "0.5steps"]),
            "schedule": (["cosine", None], [v for v in JUNK if v is not None] + ["cos"]),
            "tokens_fn": ([None, len], NOT_CALLABLE),
            "warmup": ([0.1], [v for v in JUNK if not isinstance(v, NUMBERS)]),
        },
        "hf.BudgetCallback": {"budget": (["5steps", "10s"], JUNK + ["1e9flop", "-1s"])},
    }


def _call_recipe(name: str, kwargs: dict[str, Any]) -> None:
    if name == "Recipe":
        from hasten.bench.harness import Recipe

        Recipe(**kwargs)
    elif name == "lightning.BudgetCallback":
        from hasten.integrations.lightning import BudgetCallback

        BudgetCallback(**kwargs)
    else:
        from hasten.integrations.hf import BudgetCallback as HFBudgetCallback

        HFBudgetCallback(**kwargs)


# --- the lever list and its adapters -------------------------------------------------------


def lever_entries() -> dict[str, dict[str, tuple[list[Any], list[Any]]]]:
    fractions = ([None, 0.5], _not(NUMBERS, 0, 1.5, -0.1))
    common = {"levers": ([["sb"], ["infobatch"], "sb-topk:keep=0.25", []],
                         [v for v in JUNK if not _empty_sequence(v)] + ["sb:keep=2", "nope"]),
              "eval_every": fractions, "log_every": fractions,
              "difficulty": ([None, list(range(8))], [v for v in JUNK if v is not None]),
              "proxy_model": ([None, lambda: nn.Linear(2, 2)],
                              [v for v in NOT_CALLABLE if v is not None] + [nn.Linear(2, 2)])}
    return {
        "HastenHFCallback": {"budget": (["5steps", "10s"], JUNK + ["1e9flop", "0.5steps"]),
                             "batch_size": ([None, 4], _not((int,), 0)),
                             "per_example_loss": ([None, _loss],
                                                  [v for v in NOT_CALLABLE if v is not None]),
                             **common},
        "HastenLightningCallback": {"budget": (["5steps", "10s"], JUNK + ["0.5steps"]),
                                    "loss_fn": ([_loss], NOT_CALLABLE),
                                    "batch_size": ([4], _not((int,), 0)), **common},
        "parse_levers": {"levers": common["levers"]},
    }


def _call_lever(name: str, kwargs: dict[str, Any]) -> None:
    if name == "parse_levers":
        from hasten.levers import parse_levers

        parse_levers(kwargs["levers"])
    elif name == "HastenHFCallback":
        from hasten.integrations.hf_levers import HastenHFCallback

        HastenHFCallback(**kwargs)
    else:
        from hasten.integrations.lightning_levers import HastenLightningCallback

        HastenLightningCallback(**kwargs)


# --- the properties ------------------------------------------------------------------------

GROUPS: dict[str, tuple[Callable[[], dict], Callable[..., None]]] = {
    "api-train": (train_entries, lambda name, kwargs: _call_train(kwargs)),
    "api-budget": (budget_entries, _call_budget),
    "api-samplers": (sampler_entries, _call_sampler),
    "api-selective-backprop": (selection_entries, _call_selection),
    "api-recipe-callbacks": (recipe_entries, _call_recipe),
    "api-levers": (lever_entries, _call_lever),
}


def _register(group: str) -> None:
    entries, call = GROUPS[group]

    @reader(group, st.deferred(lambda: calls(entries())))
    def check(tmp: Path, example: tuple[str, dict[str, Any]]) -> str:
        name, kwargs = example
        return api_outcome(lambda: call(name, dict(kwargs)))


for _group in GROUPS:
    _register(_group)
