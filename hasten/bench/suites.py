"""Where the suites live: importing these modules registers their suites, tasks and
methods. A new suite module is one more line here (or, outside hasten, your own task named
on the command line: see `hasten.bench.own`). A suite whose module imports an optional
package at its top (transformers: seconds of start-up) is loaded only when named, or when
every suite is asked for (`hasten list`)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

SUITE_MODULES = (
    "hasten.bench.vision",
    "hasten.bench.selective",
    "hasten.bench.prune",
    "hasten.bench.distill",
    "hasten.bench.mt",
    "hasten.bench.dynprune",
    "hasten.bench.sst2",
    "hasten.bench.stack",
    "hasten.bench.levers_suite",
    "hasten.bench.charlm",
    "hasten.bench.tune_suite",
    "hasten.bench.chaos",
    "hasten.bench.work_levers",
    "hasten.bench.ladder",
    "hasten.bench.mlm",
    "hasten.bench.electra",
)
# suite name -> its module, imported on demand
OPTIONAL_SUITE_MODULES = {"hf-trainer": "hasten.integrations.hf_bench"}


def load_suites(names: Iterable[str | None] = (), everything: bool = False) -> None:
    """Import every suite module (each registers once), and the optional ones named in
    `names` (all of them with `everything`)."""
    for name in SUITE_MODULES:
        importlib.import_module(name)
    for suite, module in OPTIONAL_SUITE_MODULES.items():
        if everything or suite in names:
            importlib.import_module(module)
