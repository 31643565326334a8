"""A lever: one speed-up as one object, listed and combined with others in one place.

The model is MosaicML Composer's `algorithms=[...]` (each speed-up an object acting at named
events); hasten's levers also work outside its own trainer (`hasten.levers.loop`, the HF and
Lightning callbacks) and every one of them is keyed to the run's budget.

A lever has
- a `name` and its `Settings` (a dataclass: every default with its reason), written as one
  spec string for the command line and config files: `infobatch:prune=0.3`,
  `sb-topk:keep=0.5,pool=2`; `+` joins levers into one arm (`infobatch+sb-topk`);
- what it needs from a task (`needs`, names from NEEDS) and a one-line refusal naming what is
  missing (`refusal`);
- a `kind`: "step" levers change what a unit of work costs (precision, compile, kernels),
  "data" levers change how much work reaches the target (pruning, selection, curricula);
- a `role` that fixes its place in a list (ROLES, in order): config levers set `TrainConfig`
  fields, a `pool` lever changes the training set once, `order` and `prune` levers draw the
  batches (a sampler), a `select` lever chooses among the drawn rows;
- its events: `configure(config)` and `setup(recipe)` before training (one-off work such as
  training a proxy is charged to `costs`), `sampler(upstream, recipe)` for the data, and
  `hooks()` for each batch and step (`hasten.core.train_state.Hook`: choose and weight
  examples, update state after a step; their `state_dict` rides in checkpoints).

How levers combine is `hasten.levers.compose`. Where it is shown: docs/your-loop.md and
docs/extending.md (a building block; each lever's result is in docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from torch import nn

from hasten.core.checks import check_callable, check_int, check_number, check_values, fail
from hasten.core.config import resolve, to_dict
from hasten.core.errors import ConfigError
from hasten.core.recipe import Recipe
from hasten.core.sampling import Sampler
from hasten.core.train_config import TrainConfig
from hasten.core.train_state import Hook

# what a lever may need from a task, and how a refusal names it
NEEDS: dict[str, str] = {
    "per_example_loss": "a loss that returns one value per example (shape [B])",
    "example_ids": "batches drawn by index from a map-style dataset",
    "difficulty": "a difficulty per training example (Recipe.difficulty)",
    "proxy_model": "a small model to score with (Recipe.proxy_model)",
}
# the place of each role in a lever list, in order
ROLES = ("config", "pool", "order", "prune", "select")


class Lever:
    """The lever protocol, every event a no-op by default. A subclass sets `name`,
    `Settings` (a dataclass of `option` fields, or None), `needs`, `kind` and `role`, and
    overrides the events it acts at."""

    name: ClassVar[str] = ""
    Settings: ClassVar[type | None] = None
    needs: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "step"  # "step" or "data"
    role: ClassVar[str] = "config"  # one of ROLES

    def __init__(self, **settings: Any):
        if self.Settings is None:
            if settings:
                raise ConfigError(f"lever {self.name!r} has no settings, got "
                                  f"{', '.join(sorted(settings))}")
            self.settings: Any = None
        else:
            self.settings = resolve(self.Settings, flags=settings)
        self.check()
        self.costs: dict[str, float] = {"seconds": 0.0, "flops": 0.0}

    def check(self) -> None:
        """Refuse impossible settings (a ConfigError naming the setting)."""

    def spec(self) -> str:
        """The lever as a spec string: its name, then the settings that differ from their
        defaults."""
        if self.settings is None:
            return self.name
        default = to_dict(self.Settings())  # type: ignore[misc]
        changed = {k: v for k, v in to_dict(self.settings).items() if default.get(k) != v}
        if not changed:
            return self.name
        return self.name + ":" + ",".join(f"{k}={_text(v)}" for k, v in changed.items())

    def __repr__(self) -> str:
        return f"<lever {self.spec()}>"

    def refusal(self, recipe: Recipe) -> str | None:
        """Why this lever cannot act on `recipe` (one line), or None."""
        missing = [need for need in self.needs if not has_need(recipe, need)]
        if not missing:
            return None
        return (f"lever {self.name!r} needs {NEEDS[missing[0]]}, which this task does not "
                "declare")

    # -- before training ----------------------------------------------------------------
    def configure(self, config: TrainConfig) -> dict[str, Any]:
        """Set `TrainConfig` fields; returns the fields set (two levers may not set one)."""
        return {}

    def setup(self, recipe: Recipe) -> None:
        """One-off work before training (scoring, a proxy); add its cost to `self.costs`."""

    def sampler(self, upstream: Sampler | None, recipe: Recipe) -> Sampler | None:
        """The sampler batches are drawn from (`upstream`: the one before this lever)."""
        return upstream

    # -- each batch and step ------------------------------------------------------------
    def hooks(self) -> list[Hook]:
        """The hooks that act on each batch and step (their state goes in checkpoints)."""
        return []


def has_need(recipe: Recipe, need: str) -> bool:
    """Whether `recipe` offers `need` (see NEEDS)."""
    if need in ("per_example_loss", "example_ids"):
        return recipe.loss_fn is not None and hasattr(recipe.train_data, "__getitem__")
    if need == "difficulty":
        return recipe.difficulty is not None
    if need == "proxy_model":
        return recipe.proxy_model is not None
    raise ConfigError(f"unknown need {need!r}; known: {', '.join(NEEDS)}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


# -----------------------------------------------------------------------------
# the registry and spec strings

LEVERS: dict[str, type[Lever]] = {}


def register_lever(cls: type[Lever]) -> type[Lever]:
    """Register a lever class under its `name` (a decorator)."""
    if not cls.name or cls.role not in ROLES or cls.kind not in ("step", "data"):
        raise ConfigError(f"{cls.__name__}: a lever needs a name, a role in {ROLES} and a "
                          "kind 'step' or 'data'")
    LEVERS[cls.name] = cls
    return cls


def parse_lever(spec: str) -> Lever:
    """`"infobatch:prune=0.3,anneal=0.9"` -> that lever. Values are read as JSON where they
    parse (numbers, true/false), else as text."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a lever spec is a non-empty string such as 'infobatch:prune=0.3', "
                          f"got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    if name not in LEVERS:
        raise ConfigError(f"unknown lever {name!r}; known: {', '.join(sorted(LEVERS))}")
    settings: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ConfigError(f"lever {spec!r}: settings are KEY=VALUE, got {part!r}")
        settings[key.strip().replace("-", "_")] = _value(value.strip())
    return LEVERS[name](**settings)


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in lowered \
        else number


def parse_levers(specs: str | Sequence[str | Lever]) -> list[Lever]:
    """A lever list from `"a+b:x=1"`, a list of spec strings, or Lever objects."""
    if isinstance(specs, str):
        specs = [s for s in specs.split("+") if s.strip()]
    if not isinstance(specs, Sequence):
        raise ConfigError(f"levers must be a list of levers or spec strings, got "
                          f"{type(specs).__name__}")
    out = []
    for item in specs:
        if isinstance(item, Lever):
            out.append(item)
        elif isinstance(item, str):
            out.extend(parse_lever(s) for s in item.split("+") if s.strip())
        else:
            raise ConfigError(f"a lever is a Lever or a spec string, got "
                              f"{type(item).__name__}")
    return out


def split_specs(text: str) -> list[str]:
    """Split a comma list of method or lever specs, keeping each spec's own `KEY=VALUE`
    settings: `"baseline,infobatch:prune=0.3,anneal=0.9,sb-topk"` -> `["baseline",
    "infobatch:prune=0.3,anneal=0.9", "sb-topk"]`."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        head = part.split("+")[0]
        if out and "=" in head and ":" not in head:
            out[-1] += "," + part
        else:
            out.append(part)
    return out


def settings_of(lever: Lever) -> dict[str, Any]:
    """A lever's settings as a plain dict (for records and choices files)."""
    return {} if lever.settings is None else dataclasses.asdict(lever.settings)


def check_lever_inputs(where: str, *, difficulty: Any = None, proxy_model: Any = None,
                       seed: Any = 0, fractions: dict[str, Any] | None = None) -> None:
    """What a loop's lever adapter is given besides the levers, checked at construction: a
    difficulty per example (a 1-d list, array or tensor of numbers, or None), a proxy
    factory, an integer seed (or None), and budget fractions in (0, 1] (or None); one
    ConfigError naming the argument."""
    if difficulty is not None:
        check_values(where, "difficulty", difficulty, "one difficulty per training example")
    if isinstance(proxy_model, nn.Module):  # callable, but one model, not a maker of them
        fail(where, "proxy_model", proxy_model, "a function () -> a fresh small model (e.g. "
             "lambda: SmallNet()), not a model")
    check_callable(where, "proxy_model", proxy_model, "a function () -> a fresh small model",
                   none=True)
    check_int(where, "seed", seed, none=True)
    for name, value in (fractions or {}).items():
        check_number(where, name, value, 0, 1, low_open=True, none=True)
