"""Argument checks for the public entry points, made before any work.

Every entry point a user calls (`train`, `Recipe`, the samplers, InfoBatch, the selective
backprop functions, the framework callbacks) checks the types and shapes of its arguments
first and answers a wrong one with one `ConfigError` line that names the entry point, the
argument, what it got and what it accepts:

    train: train_data must be a dataset (len() and integer indexing, e.g.
    TensorDataset(x, y)), got a dict with keys 'x', 'y'

The HF `TrainingArguments` and Lightning's `Trainer` check their arguments up front the same
way; without it a wrong type fails deep inside a loop (`KeyError: 0` from a dict of tensors,
`TypeError` on `<=` from a dataset passed as a size).

A model folder is checked the same way before it is read (`check_model_folder`): a damaged
weights file is one line, never a deserialisation traceback (safetensors' promise: a damaged
file is an error, never code run).

Where it is shown: no measured result (the checks are tested in tests/core/test_checks.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from hasten.core.errors import CheckpointError, ConfigError

# the methods the trainer calls on a hook (`hasten.core.train_state.Hook` has them all)
HOOK_METHODS = ("on_start", "on_batch", "on_loss", "on_step_end", "on_eval", "state_dict",
                "load_state_dict")
SAMPLER_METHODS = ("sample", "state_dict", "load_state_dict")
DATASET = "a dataset (len() and integer indexing, e.g. TensorDataset(x, y))"


def described(value: Any) -> str:
    """What `value` is, in a few words, for an error line."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"{value!r} ({type(value).__name__})"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {text!r}"
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            return "a 0-d tensor (one number)"
        return f"a {value.dim()}-d tensor of shape {list(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-d array of shape {list(value.shape)}"
    if isinstance(value, Mapping):
        keys = [repr(k)[:20] for k in list(value)[:4]]
        more = ", ..." if len(value) > 4 else ""
        return (f"{_a(type(value).__name__)} with keys {', '.join(keys)}{more}" if keys
                else f"an empty {type(value).__name__}")
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    size = _length(value)
    if size is not None and hasattr(value, "__getitem__"):
        return f"{_a(type(value).__name__)} of {size} examples"
    return _a(type(value).__name__)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _length(value: Any) -> int | None:
    try:
        size = len(value)
    except Exception:  # no len(), or one that fails: not a sized collection
        return None
    return size if isinstance(size, int) else None


def fail(where: str, name: str, value: Any, accepts: str) -> NoReturn:
    """Raise the one-line ConfigError: `where: name must be accepts, got value`."""
    raise ConfigError(f"{where}: {name} must be {accepts}, got {described(value)}")


# --- values --------------------------------------------------------------------------------


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def check_int(where: str, name: str, value: Any, low: int | None = None,
              high: int | None = None, none: bool = False) -> None:
    """An integer in [low, high] (or None when `none`)."""
    if none and value is None:
        return
    ok = is_int(value) and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        bounds = (f" >= {low}" if high is None else f" in [{low}, {high}]") \
            if low is not None else (f" <= {high}" if high is not None else "")
        fail(where, name, value, f"an integer{bounds}" + (" or None" if none else ""))


def check_number(where: str, name: str, value: Any, low: float | None = None,
                 high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False, none: bool = False) -> None:
    """A finite number between `low` and `high` (open ends where asked; or None)."""
    if none and value is None:
        return
    ok = is_number(value) and math.isfinite(float(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if low is not None and high is not None:
            span = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            span = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            span = f" {'<' if high_open else '<='} {high:g}"
        else:
            span = ""
        fail(where, name, value, f"a finite number{span}" + (" or None" if none else ""))


def check_bool(where: str, name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        fail(where, name, value, "True or False")


def check_choice(where: str, name: str, value: Any, choices: typing.Sequence[Any]) -> None:
    if not isinstance(value, (str, type(None))) or value not in choices:
        fail(where, name, value, "one of " + ", ".join(repr(c) for c in choices))


def check_callable(where: str, name: str, value: Any, what: str, none: bool = False) -> None:
    """A function (`what` says which), or None when `none`."""
    if none and value is None:
        return
    if not callable(value) or isinstance(value, type):
        fail(where, name, value, what + (" or None" if none else ""))


def check_module(where: str, name: str, value: Any, none: bool = False) -> None:
    if none and value is None:
        return
    if not isinstance(value, nn.Module):
        fail(where, name, value, "a torch nn.Module" + (" or None" if none else ""))


def check_size(where: str, name: str, value: Any) -> None:
    """A number of examples (an int >= 1); a dataset given instead is named as such."""
    if is_int(value) and value >= 1:
        return
    if _length(value) is not None and not isinstance(value, (str, bytes)):
        fail(where, name, value, "the number of examples, an int >= 1 (pass len(dataset))")
    fail(where, name, value, "the number of examples, an int >= 1")


def check_place(where: str, seed: Any, rank: Any, world_size: Any) -> None:
    """A sampler's seed (an int) and its process's place: 0 <= rank < world_size."""
    check_int(where, "seed", seed)
    check_int(where, "world_size", world_size, low=1)
    check_int(where, "rank", rank, low=0, high=world_size - 1)


def check_values(where: str, name: str, value: Any, what: str = "one number per example",
                 integer: bool = False) -> np.ndarray:
    """A non-empty 1-d list, array or tensor of finite numbers (whole ones when `integer`);
    returns it as a float64 array."""
    accepts = f"{what}: a non-empty 1-d list, array or tensor of finite " + \
        ("whole numbers" if integer else "numbers")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, (list, tuple, np.ndarray)):
        fail(where, name, value, accepts)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        fail(where, name, value, accepts)
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)) or \
            (integer and not np.all(array == np.floor(array))):
        fail(where, name, value, accepts)
    return array


def check_per_example(where: str, name: str, value: Any) -> None:
    """One value per example: a 1-d tensor (a scalar means the loss was averaged)."""
    if isinstance(value, torch.Tensor) and value.dim() == 1 and value.numel() >= 1 \
            and (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
        return
    accepts = "one loss per example, a non-empty 1-d tensor of numbers"
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        accepts += " (compute the loss with reduction='none')"
    fail(where, name, value, accepts)


# --- objects -------------------------------------------------------------------------------


def check_dataset(where: str, name: str, value: Any, none: bool = False) -> int | None:
    """A map-style dataset: len() and integer indexing (a mapping of columns is not one).
    Returns its length."""
    if none and value is None:
        return None
    size = _length(value)
    if isinstance(value, Mapping):
        fail(where, name, value, "a dataset, not a dict of columns (wrap them: "
             "TensorDataset(x, y), or datasets.Dataset.from_dict(columns))")
    if isinstance(value, (torch.Tensor, np.ndarray)):
        fail(where, name, value, "a dataset, not one tensor or array (pair inputs and "
             "targets: TensorDataset(x, y))")
    if size is None or isinstance(value, (str, bytes)) or not hasattr(value, "__getitem__"):
        fail(where, name, value, DATASET)
    return size


def check_sampler(where: str, name: str, value: Any, none: bool = False) -> None:
    """Anything with `sample(n, progress)`, `state_dict()` and `load_state_dict()`."""
    if none and value is None:
        return
    if not all(callable(getattr(value, m, None)) for m in SAMPLER_METHODS):
        fail(where, name, value, "a sampler with sample(n, progress), state_dict() and "
             "load_state_dict() (e.g. ShuffledSampler)" + (" or None" if none else ""))


def check_hooks(where: str, name: str, value: Any) -> None:
    """A list or tuple of hooks, each with every method of `Hook` (subclass it)."""
    if not isinstance(value, (list, tuple)):
        fail(where, name, value, "a list of hooks (subclasses of hasten.core.trainer.Hook)")
    for i, hook in enumerate(value):
        missing = [m for m in HOOK_METHODS if not callable(getattr(hook, m, None))]
        if missing:
            fail(where, f"{name}[{i}]", hook, "a hook (a subclass of hasten.core.trainer."
                 f"Hook; this one lacks {', '.join(missing)})")


def check_fields(where: str, obj: Any) -> None:
    """Every field of the dataclass `obj` holds a value of its annotated type (ints for
    ints, numbers for floats, strings, True/False, None where optional, lists, tables)."""
    try:
        hints = typing.get_type_hints(type(obj))
    except Exception:  # an annotation that cannot be resolved: nothing to check against
        return
    for f in dataclasses.fields(obj):
        value, tp = getattr(obj, f.name), hints.get(f.name, Any)
        accepts = _accepts(value, tp)
        if accepts is not None:
            fail(where, f.name, value, accepts)


def _accepts(value: Any, tp: Any) -> str | None:
    """None when `value` fits the annotation `tp`, else what `tp` accepts, in words."""
    if tp is Any or tp is object:
        return None
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if any(_accepts(value, a) is None for a in args):
            return None
        return " or ".join(_accepts(_Nothing(), a) or "" for a in args)
    if tp is type(None):
        return None if value is None else "None"
    if tp is bool:
        return None if isinstance(value, bool) else "True or False"
    if tp is int:
        return None if is_int(value) else "an integer"
    if tp is float:
        return None if is_number(value) and math.isfinite(value) else "a finite number"
    if tp is str:  # a path counts as one (out_dir=Path(...))
        return None if isinstance(value, (str, os.PathLike)) else "a string"
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        each = [_accepts(_Nothing(), a) or "anything" for a in args]
        words = f"{len(args)} values, " + (f"each {each[0]}" if len(set(each)) == 1
                                            else f"({', '.join(each)})")
        if not isinstance(value, (tuple, list)) or len(value) != len(args):
            return words
        return words if any(_accepts(v, a) for v, a in zip(value, args, strict=True)) else None
    if origin in (tuple, list):
        inner = args[0] if args else Any
        if not isinstance(value, (tuple, list)) or any(_accepts(v, inner) for v in value):
            return "a list" + (f" of values each {_accepts(_Nothing(), inner)}" if args
                               else "")
        return None
    if origin in (dict, Mapping):
        inner = args[1] if len(args) == 2 else Any
        if not isinstance(value, Mapping) or any(_accepts(v, inner) for v in value.values()):
            return "a table (dict)" + (f" of values each {_accepts(_Nothing(), inner)}"
                                       if args else "")
        return None
    if isinstance(origin, type) and origin is not Callable:
        try:
            return None if isinstance(value, origin) else _a(origin.__name__)
        except TypeError:
            return None
    return None


class _Nothing:
    """A value no annotation accepts (to ask an annotation for its words)."""


# --- the trainer ---------------------------------------------------------------------------


def check_train_args(model: Any, train_data: Any, loss_fn: Any, config: Any, evaluate: Any,
                     hooks: Any, sampler: Any, tokens_fn: Any, collate_fn: Any,
                     config_class: type, where: str = "train") -> None:
    """The arguments of `hasten.core.trainer.train` (and of a `Recipe`), checked before any
    work: types and shapes, then the config's fields."""
    check_module(where, "model", model)
    size = check_dataset(where, "train_data", train_data)
    if size == 0:
        fail(where, "train_data", train_data, "a non-empty dataset")
    check_callable(where, "loss_fn", loss_fn, "a function (model, batch) -> one loss per "
                   "example")
    if not isinstance(config, config_class):
        fail(where, "config", config, f"a {config_class.__name__} (e.g. "
             f"{config_class.__name__}(budget='90s'))")
    check_fields(where, config)
    check_callable(where, "evaluate", evaluate, "a function (model) -> {metric: value}",
                   none=True)
    check_hooks(where, "hooks", hooks)
    check_sampler(where, "sampler", sampler, none=True)
    check_callable(where, "tokens_fn", tokens_fn, "a function (batch) -> tokens in it",
                   none=True)
    check_callable(where, "collate_fn", collate_fn, "a function (list of items) -> batch",
                   none=True)


# --- model folders -------------------------------------------------------------------------


def check_model_folder(path: str | Path) -> Path:
    """A model folder (a transformers folder, a `hasten cram` export) that can be read,
    checked before any work: it exists, its JSON files parse and every `.safetensors` file
    has a whole header covering its data (safetensors' own check, no weights loaded). A
    damaged file (garbage, cut short) is one CheckpointError line naming it."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"model folder not found: {folder}")
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: no config.json (not a transformers model folder)")
    for file in sorted(folder.glob("*.json")):
        try:
            json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise CheckpointError(f"{file} is damaged (not JSON: {_one_line(err)}); copy or "
                                  "export the model again") from None
    for file in sorted(folder.glob("*.safetensors")):
        check_weights_file(file)
    return folder


def check_weights_file(path: Path) -> None:
    """A `.safetensors` file whose header reads and covers the file (no tensor is loaded)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            list(f.keys())
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is damaged (garbage or cut short: "
                              f"{_one_line(err)}); copy or export the model again") from None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:160]


def check_recipe(recipe: Any, config_class: type) -> None:
    """A `Recipe`'s fields at construction (`train` checks them again when it runs; a method
    may fill the data or the loss later, so those two may still be None here)."""
    where = "Recipe"
    check_module(where, "model", recipe.model)
    check_dataset(where, "train_data", recipe.train_data, none=True)
    check_callable(where, "loss_fn", recipe.loss_fn, "a function (model, batch) -> one loss "
                   "per example", none=True)
    check_callable(where, "evaluate", recipe.evaluate, "a function (model) -> {metric: value}",
                   none=True)
    if not isinstance(recipe.config, config_class):
        fail(where, "config", recipe.config, f"a {config_class.__name__}")
    check_fields(where, recipe.config)
    check_hooks(where, "hooks", recipe.hooks)
    check_sampler(where, "sampler", recipe.sampler, none=True)
    check_callable(where, "tokens_fn", recipe.tokens_fn, "a function (batch) -> tokens in it",
                   none=True)
    check_callable(where, "collate_fn", recipe.collate_fn, "a function (list of items) -> "
                   "batch", none=True)
    check_number(where, "overhead_seconds", recipe.overhead_seconds, 0)
    check_number(where, "overhead_flops", recipe.overhead_flops, 0)
    if not isinstance(recipe.notes, dict):
        fail(where, "notes", recipe.notes, "a dict")
