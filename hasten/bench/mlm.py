"""`hasten bench mlm`: Cramming's ablation rows of the pretraining ladder (`hasten.bench.ladder`):
control, crammed, + original data, + original training setup, + original architecture,
+ minimal train mod., + minimal arch. mod. (Geiping & Goldstein 2023; the seed slide's
table), at the ladder's FLOP rungs, with the ladder's rows, folders and reuse.

Evidence: docs/benchmarks.md ("MLM recipe (Cramming): more tokens in equal time, no GLUE-small
difference").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hasten.bench import ladder
from hasten.bench.harness import Suite, register_suite

ROWS = ("control", "crammed", "original-data", "original-setup", "original-arch",
        "minimal-train", "minimal-arch")
TITLE = "hasten bench mlm: Cramming's ablation at FLOP budgets"


def run(args: argparse.Namespace, say: Any) -> tuple[dict[str, Any], Path, str, list[str]]:
    """The suite as `hasten bench mlm` runs it: (results, out dir, title, notes)."""
    options, rows = ladder.options_from_args(args)
    if not getattr(args, "out", None):
        options.out = "runs/bench-mlm"
    results = ladder.run_ladder(options, rows or list(ROWS), say=say)
    return results, Path(options.out), TITLE, []


register_suite(Suite("mlm", tasks=[], methods=list(ROWS), own_rows=run,
                     description="Cramming's ablation rows of the pretraining ladder"))
