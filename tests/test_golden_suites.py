"""Every suite's methods train exactly as they did before the methods became levers: short
steps-budget runs (evaluation off), their work counters and trained weights compared with
`tests/golden/suite_runs.json` (recorded before the change) to 1e-6."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from golden.record_suite_runs import CASES, run_case

import hasten.bench.distill as distill

GOLDEN = json.loads((Path(__file__).parent / "golden" / "suite_runs.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES])
def test_suite_method_trains_as_recorded(case, one_thread, monkeypatch):
    monkeypatch.setattr(distill, "_sets", {})  # distilled as recorded, not fetched from a test
    want = GOLDEN[f"{case[0]}/{case[1]}"]
    got = run_case(*case)
    assert got["steps"] == want["steps"]
    for key, value in want["work"].items():
        assert math.isclose(got["work"][key], value, rel_tol=1e-6, abs_tol=1e-6), key
    for key in ("weights_sum", "weights_sq"):
        assert math.isclose(got[key], want[key], rel_tol=1e-6, abs_tol=1e-6), key
