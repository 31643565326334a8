"""Short steps-budget runs of each suite's methods, evaluation off: what the trained weights
(their sum and sum of squares) and the work counters come to. `suite_runs.json` holds the
figures as they were before the methods moved onto the lever list, per set of CPU kernels
torch picks (`torch.backends.cpu.get_cpu_capability()`: AVX2 and AVX512 round differently);
`tests/test_golden_suites.py` runs the same cases and compares to 1e-6. On a CPU whose kernels
have no figures, a case runs in a process held to the AVX2 kernels (`AVX2_ONLY`).

    python tests/golden/record_suite_runs.py tests/golden/suite_runs.json   # (re)record this CPU's
    python tests/golden/record_suite_runs.py --case digits/baseline          # one case, as JSON
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

NO_PROXY = ["schedule", "bf16", "batch", "curriculum", "infobatch"]
PICKS = {"levers": {"schedule": 1, "batch": 0, "curriculum": 1},
         "plain": {"micro_batch": 256, "lr_scale": 1.0, "precision": "fp32"}}
# the environment that holds torch (and oneDNN) to the AVX2 kernels on a newer x86 CPU
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
STACK = {"levers": NO_PROXY, "choices": PICKS}  # the stack suite's options for its cases

# (task, method, steps, TrainConfig overrides, stack options)
CASES: list[tuple[str, str, int, dict[str, Any], dict[str, Any] | None]] = [
    ("digits", "baseline", 16, {}, None), ("mnist1d", "bf16", 16, {}, None),
    ("mnist1d", "for-loop-adamw", 16, {}, None),
    ("fashion-mnist", "channels-last", 4, {"micro_batch": 32}, None),
    ("mnist1d", "sb", 24, {}, None), ("mnist1d", "stale-sb", 24, {}, None),
    ("mnist1d", "topk", 24, {}, None), ("mnist1d", "proxy", 16, {}, None),
    ("digits", "infobatch", 80, {}, None), ("digits", "random-drop", 80, {}, None),
    ("digits", "drop-easiest", 80, {}, None),
    ("fashion-prune", "random-0.5", 8, {}, None), ("distill-ipc1", "dm", 16, {}, None),
    ("mt-en-de", "plain*", 6, {"micro_batch": 16}, None),
    ("mt-en-de", "sr-sqrt", 6, {"micro_batch": 16}, None),
    ("fashion-stack", "stack", 8, {}, STACK), ("sst2-small", "stack", 8, {}, STACK),
    ("sst2-small", "baseline", 16, {}, None), ("sst2-small", "infobatch", 80, {}, None),
]


def fingerprint(model: torch.nn.Module) -> tuple[float, float]:
    values = [p.double() for p in model.state_dict().values() if p.is_floating_point()]
    return float(sum(v.sum() for v in values)), float(sum((v ** 2).sum() for v in values))


def run_case(task: str, method: str, steps: int, overrides: dict[str, Any],
             stack: dict[str, Any] | None) -> dict[str, Any]:
    from hasten.bench.harness import build_recipe, train_recipe
    from hasten.bench.stack import StackOptions
    from hasten.bench.suites import load_suites

    load_suites()
    options = StackOptions(**stack) if stack is not None else None
    recipe = build_recipe(task, method, 0, True, budget=f"{steps}steps", options=options)
    recipe.evaluate = None
    run, model = train_recipe(recipe, task, method, **overrides)
    total, squares = fingerprint(model)
    return {"steps": run["steps"], "work": run["work"], "weights_sum": total,
            "weights_sq": squares}


def run_one(name: str) -> dict[str, Any]:
    """The case called `name` ("task/method"), on one thread."""
    (case,) = [c for c in CASES if f"{c[0]}/{c[1]}" == name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_case(*case)
    finally:
        torch.set_num_threads(threads)


def main(path: str) -> None:
    kernels = torch.backends.cpu.get_cpu_capability()
    out = {}
    for name in (f"{c[0]}/{c[1]}" for c in CASES):
        started = time.perf_counter()
        out[name] = run_one(name)
        print(f"{kernels} {name}: {time.perf_counter() - started:.1f} s", flush=True)
    file = Path(path)
    figures = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
    figures[kernels] = out
    file.write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1] == "--case":
        print(json.dumps(run_one(sys.argv[2])))
    else:
        main(sys.argv[1])
