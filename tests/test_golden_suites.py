"""Every suite's methods train exactly as they did before the methods became levers: short
steps-budget runs (evaluation off), their work counters and trained weights compared with
`tests/golden/suite_runs.json` (recorded before the change) to 1e-6.

The figures are kept per set of CPU kernels (AVX2, AVX512: they round differently); on a CPU
with neither, each case runs in a process held to the AVX2 kernels. The three SST-2 cases were
recorded again when WordPiece training became deterministic (their vocabulary, so their token
counts, changed; the other 16 cases came out bit-identical under the new code)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from golden.record_suite_runs import AVX2_ONLY, CASES, run_case

import hasten.bench.distill as distill

HERE = Path(__file__).parent
GOLDEN = json.loads((HERE / "golden" / "suite_runs.json").read_text())
KERNELS = torch.backends.cpu.get_cpu_capability()


def _run_on_avx2(name: str) -> dict:
    env = {**os.environ, **AVX2_ONLY, "PYTHONPATH": os.pathsep.join(
        [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(HERE / "golden" / "record_suite_runs.py"),
                          "--case", name], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES])
def test_suite_method_trains_as_recorded(case, one_thread, monkeypatch):
    monkeypatch.setattr(distill, "_sets", {})  # distilled as recorded, not fetched from a test
    name = f"{case[0]}/{case[1]}"
    if KERNELS in GOLDEN:
        want, got = GOLDEN[KERNELS][name], run_case(*case)
    else:
        want, got = GOLDEN["AVX2"][name], _run_on_avx2(name)
    assert got["steps"] == want["steps"]
    for key, value in want["work"].items():
        assert math.isclose(got["work"][key], value, rel_tol=1e-6, abs_tol=1e-6), key
    for key in ("weights_sum", "weights_sq"):
        assert math.isclose(got[key], want[key], rel_tol=1e-6, abs_tol=1e-6), key


def test_the_figures_cover_every_case_on_both_kernel_sets():
    names = {f"{c[0]}/{c[1]}" for c in CASES}
    assert {k: set(v) for k, v in GOLDEN.items()} == {"AVX2": names, "AVX512": names}
