"""Where the suites live: importing these modules registers their suites, tasks and
methods. A new suite module is one more line here (or, outside hasten, your own task named
on the command line: see `hasten.bench.own`)."""

from __future__ import annotations

import importlib

SUITE_MODULES = (
    "hasten.bench.vision",
    "hasten.bench.selective",
    "hasten.bench.prune",
    "hasten.bench.distill",
    "hasten.bench.mt",
    "hasten.bench.dynprune",
    "hasten.bench.sst2",
    "hasten.bench.stack",
    "hasten.bench.ladder",
    "hasten.bench.mlm",
    "hasten.bench.electra",
)


def load_suites() -> None:
    """Import every suite module (each registers once)."""
    for name in SUITE_MODULES:
        importlib.import_module(name)
