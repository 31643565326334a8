"""`hasten bench electra`: ELECTRA (Clark et al. 2020) vs the crammed MLM recipe, in the
seed's table form: MLM and ELECTRA at an equal CPU budget, plus ELECTRA at 50%, 25% and 12.5%
of it; columns train FLOPs, trained parameters (ELECTRA's include its generator), wall time,
GLUE-small average and per task. The paper: ELECTRA-Small 79.9 GLUE vs BERT-Small 75.1 at
equal FLOPs, and 74.1 at 6.25% of the training.

Rows share `hasten.bench.pretrain`'s settings and cache, so `--out` shared with
`hasten bench mlm` reuses its `crammed` row.

Evidence: docs/benchmarks.md ("ELECTRA"), from the command there.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hasten.bench.pretrain import Row, resolve_rows, run_pretrain_suite, settings_from_args

ROWS: dict[str, Row] = {r.name: r for r in (
    Row("crammed", {}, description="MLM, crammed recipe"),
    Row("electra", {"objective": "electra"}, description="ELECTRA, same recipe"),
)}
DEFAULT = ("crammed", "electra", "electra@0.5", "electra@0.25", "electra@0.125")
TITLE = "hasten bench electra: ELECTRA vs MLM at an equal CPU budget"


def run(args: argparse.Namespace, say: Any) -> tuple[dict[str, Any], Path, str, list[str]]:
    """The suite as `hasten bench electra` runs it: (results, out dir, title, notes)."""
    rows = resolve_rows(ROWS, args.methods.split(",") if args.methods else DEFAULT)
    out = Path(args.out or "runs/bench-electra")
    results = run_pretrain_suite("electra", rows, settings_from_args(args), out, say)
    return results, out, TITLE, []
