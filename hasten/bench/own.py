"""Your own tasks and your own data, with no edit to hasten.

A task is a function `(seed: int, quick: bool) -> Recipe`. Name it where a task name goes
(`hasten train --task`, `hasten bench SUITE --tasks`):

- `path/to/file.py:make_recipe`: a Python file, loaded by its path;
- `package.module:make_recipe`: a module on the Python path;
- the name of an entry point in the group `hasten.tasks` of an installed package
  (`[project.entry-points."hasten.tasks"] my-task = "my_package.tasks:make_recipe"`).

This is the one place hasten runs code that is not its own: loading the file or module
runs it, and the function runs to build every recipe. Load only code you trust.

Every check happens before any run: a missing file, a module that does not import, no such
function, a function that does not take (seed, quick) or does not return a `Recipe` (it is
called once, quick, to see) give one line naming the problem.

`training_set(path)` reads data hasten wrote (a pruned `data.npz` or its folder, a distilled
`.safetensors` set or its folder, an HF `save_to_disk` folder), and `use_training_set`
puts it in a task's recipe after checking its example shape and classes.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from hasten.bench.harness import TASKS, Recipe, register_task
from hasten.core.errors import ConfigError, DataError
from hasten.distill.synthetic import SyntheticSet
from hasten.select.io import load_prune_input

ENTRY_POINT_GROUP = "hasten.tasks"


def installed_tasks() -> dict[str, str]:
    """Entry points of the `hasten.tasks` group: {name: "module:function"}."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def task_name(spec: str) -> str:
    """The registered task for `spec`: a registered name as it is; an installed entry point,
    or `FILE.py:FUNCTION` / `MODULE:FUNCTION`, loaded, checked and registered under `spec`."""
    if spec in TASKS:
        return spec
    installed = installed_tasks()
    if spec in installed:
        fn = _entry_point(spec)
    elif ":" in spec:
        fn = _load(spec)
    else:
        known = sorted(set(TASKS) | set(installed))
        raise ConfigError(f"unknown task {spec!r}; known: {', '.join(known)} (or your own: "
                          "FILE.py:FUNCTION or MODULE:FUNCTION)")
    _check_task(spec, fn)
    register_task(spec)(fn)
    return spec


def _entry_point(name: str) -> Any:
    (ep,) = [e for e in entry_points(group=ENTRY_POINT_GROUP) if e.name == name]
    try:
        return ep.load()
    except Exception as err:
        raise ConfigError(f"task {name!r} ({ep.value}) does not load: {_line(err)}") from None


def _load(spec: str) -> Any:
    """The function named by `FILE.py:FUNCTION` or `MODULE:FUNCTION`."""
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise ConfigError(f"task {spec!r}: expected FILE.py:FUNCTION or MODULE:FUNCTION")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _load_file(Path(where), spec)
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as err:
            raise ConfigError(f"task {spec!r}: no module {err.name!r}") from None
        except Exception as err:
            raise ConfigError(f"task {spec!r}: {where} does not import: {_line(err)}") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise ConfigError(f"task {spec!r}: {where} has no function {attr!r}")
    if not callable(fn):
        raise ConfigError(f"task {spec!r}: {where}.{attr} is not a function")
    return fn


def _load_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise ConfigError(f"task {spec!r}: file not found: {path}")
    name = f"hasten_own_task_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"task {spec!r}: {path} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses look their module up here while being made
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(name, None)
        raise ConfigError(f"task {spec!r}: {path} does not load: {_line(err)}") from None
    return module


def _check_task(spec: str, fn: Any) -> None:
    """Takes (seed, quick) and returns a Recipe (called once, quick, seed 0)."""
    try:
        inspect.signature(fn).bind(0, True)
    except (TypeError, ValueError):
        raise ConfigError(f"task {spec!r}: the function must take (seed, quick)") from None
    try:
        recipe = fn(0, True)
    except Exception as err:
        raise ConfigError(f"task {spec!r} failed to build a recipe: {_line(err)}") from None
    if not isinstance(recipe, Recipe):
        raise ConfigError(f"task {spec!r} returned {type(recipe).__name__}, not a "
                          "hasten.bench.harness.Recipe")


def _line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


# --- training on data hasten wrote ------------------------------------------------------


def training_set(path: str | Path) -> TensorDataset:
    """(x, y) examples from a file or folder hasten wrote: a `.safetensors` synthetic set (or
    a folder holding `set.safetensors`), a pruned `.npz` (or the folder `hasten prune` wrote),
    `x.npy`/`y.npy`, or an HF `save_to_disk` folder with x/y columns."""
    p = Path(path).expanduser()
    if p.is_dir() and (p / "set.safetensors").is_file():
        p = p / "set.safetensors"
    if p.suffix == ".safetensors":
        return SyntheticSet.load(p).dataset()
    if p.is_dir() and (p / "summary.json").is_file():
        p = _pruned_file(p)

    inp = load_prune_input(p)
    if inp.data is None:
        raise DataError(f"{p}: no (x, y) examples to train on")
    x, y = inp.data.tensors
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return TensorDataset(x.float(), y.long())


def _pruned_file(folder: Path) -> Path:
    """The data file inside a folder `hasten prune` wrote (named in its summary)."""
    where = folder / "summary.json"
    try:
        summary = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{where}: not a readable summary ({' '.join(str(err).split())})"
                        ) from None
    files = summary.get("files") if isinstance(summary, dict) else None
    if not isinstance(files, list):
        raise DataError(f"{where}: no list of files")
    # plain names inside the folder only: a summary never points elsewhere
    data = [f for f in files if isinstance(f, str) and f and Path(f).name == f
            and f not in ("scores.npy", "scores.json", "kept.npy", "summary.json")]
    if not data:
        raise DataError(f"{folder}: its summary names no data file")
    return folder / data[0]


def use_training_set(recipe: Recipe, data: TensorDataset, source: str) -> Recipe:
    """Train `recipe` on `data` instead of its own training set, after checking that the
    examples have the task's shape and the labels its classes."""
    own = recipe.train_data
    x, y = data.tensors
    if len(x) == 0:
        raise DataError(f"{source}: no examples")
    first = own[0]
    want = tuple(first[0].shape) if isinstance(first, (tuple, list)) else None
    if want is not None and tuple(x.shape[1:]) != want:
        raise DataError(f"{source}: examples have shape {tuple(x.shape[1:])}, the task's "
                        f"have {want}")
    if isinstance(own, TensorDataset) and len(own.tensors) > 1:
        classes = int(own.tensors[1].max()) + 1
        if int(y.min()) < 0 or int(y.max()) >= classes:
            raise DataError(f"{source}: labels span [{int(y.min())}, {int(y.max())}], the "
                            f"task has {classes} classes")
    recipe.train_data = data
    recipe.notes.update(train_data=source, train_examples=len(data))
    return recipe
