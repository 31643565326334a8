"""`hasten bench electra`: ELECTRA (Clark et al. 2020) against the crammed MLM recipe at equal
training FLOPs (generator included) and at a quarter of them, with the untrained control:
the ELECTRA rows of the pretraining ladder (`hasten.bench.ladder`). The paper: ELECTRA-Small
79.9 GLUE vs BERT-Small 75.1 at equal FLOPs, 74.1 at 6.25% of its training.

Evidence: docs/benchmarks.md ("ELECTRA: no gain over MLM that GLUE-small can see").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hasten.bench import ladder
from hasten.bench.harness import Suite, register_suite

ROWS = ("control", "crammed", "electra", "electra@0.5", "electra@0.25")
TITLE = "hasten bench electra: ELECTRA vs MLM at equal FLOPs"


def run(args: argparse.Namespace, say: Any) -> tuple[dict[str, Any], Path, str, list[str]]:
    """The suite as `hasten bench electra` runs it: (results, out dir, title, notes)."""
    options, rows = ladder.options_from_args(args)
    if not getattr(args, "out", None):
        options.out = "runs/bench-electra"
    results = ladder.run_ladder(options, rows or list(ROWS), say=say)
    return results, Path(options.out), TITLE, []


register_suite(Suite("electra", tasks=[], methods=list(ROWS), own_rows=run,
                     description="ELECTRA against MLM at equal FLOPs: the ladder's ELECTRA rows"))
