"""Old import paths of modules that moved, kept working for one release.

`import hasten.trainer` (or `from hasten.trainer import train`) still works: it gives the
module at its new home, `hasten.core.trainer`, with a DeprecationWarning naming that home.
Nothing exists at the old paths; this table and the finder below are the whole mechanism.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

_CORE = ("atomic", "budget", "checkpoint", "config", "distributed", "errors", "flops", "guards",
         "lock", "resume", "runlog", "sampling", "schedules", "stop", "target", "trainer",
         "train_loop", "train_state")

# old module (or package) -> its new home; a package's submodules follow it
MOVED: dict[str, str] = {
    **{f"hasten.{name}": f"hasten.core.{name}" for name in _CORE},
    "hasten.evaluation": "hasten.core.eval_plan",
    "hasten.cram": "hasten.pretrain.cram",
    "hasten.glue": "hasten.pretrain.glue",
    "hasten.objectives": "hasten.pretrain.objectives",
    "hasten.lmeval": "hasten.pretrain.lmeval",
    "hasten.select.scores": "hasten.select.per_example",
    "hasten.select.scoring": "hasten.select.proxy",
}


def new_name(old: str) -> str | None:
    """Where module `old` lives now (None: it did not move)."""
    for before, after in MOVED.items():
        if old == before or old.startswith(before + "."):
            return after + old[len(before):]
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(f"{spec.name} moved to {self.target}; import it from there (the old "
                      "path goes in the next release)", DeprecationWarning, stacklevel=3)
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The module is already loaded under its new name."""


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        new = new_name(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    """Put the finder on `sys.meta_path` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
