"""The `hasten` command line.

    hasten demo                          quick vision suite on embedded data, table + report
    hasten bench SUITE [--quick] ...     run a suite; write results.json, report.md, curves.png
    hasten train --task T --out DIR ...  one training run (resumable; works under torchrun)

A problem with the user's input prints one line, `hasten: error: ...`, and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from hasten.errors import HastenError


def _suites() -> None:
    """Import the modules that register suites, tasks and methods."""
    import hasten.bench.selective  # noqa: F401
    import hasten.bench.vision  # noqa: F401


def cmd_bench(args: argparse.Namespace, suite: str | None = None) -> int:
    from rich.console import Console

    from hasten.bench.harness import run_suite
    from hasten.bench.report import rich_tables, write_report

    _suites()
    suite = suite or args.suite
    console = Console()
    out = Path(args.out or f"runs/bench-{suite}")
    results = run_suite(
        suite, quick=args.quick, seeds=args.seeds, budget=args.budget,
        tasks=args.tasks.split(",") if args.tasks else None,
        methods=args.methods.split(",") if args.methods else None,
        progress=None if args.quiet else lambda line: console.print(line, highlight=False),
        quiet=args.quiet)
    paths = write_report(results, out)
    if not args.quiet:
        for table in rich_tables(results):
            console.print(table)
    console.print(f"report: {paths['report']}  curves: {paths['curves']}  "
                  f"results: {paths['results']}", highlight=False)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    args.quick, args.seeds, args.budget, args.tasks, args.methods = True, 3, None, None, None
    args.out = args.out or "runs/demo"
    return cmd_bench(args, suite="demo")


def cmd_train(args: argparse.Namespace) -> int:
    from safetensors.torch import save_model

    from hasten.bench.harness import run_one
    from hasten.distributed import shutdown

    _suites()
    overrides: dict[str, Any] = {"out_dir": args.out, "resume": args.resume,
                                 "checkpoint_every": args.checkpoint_every}
    for key in ("micro_batch", "precision", "lr", "device"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.compile:
        overrides["compile"] = True
    try:
        run, model = run_one(args.task, args.method, args.seed, args.quick, args.budget,
                             quiet=args.quiet, **overrides)
    finally:
        shutdown()
    is_main = int(os.environ.get("RANK", "0")) == 0
    if run["stopped"] == "sigterm":
        if is_main:
            print(f"stopped by SIGTERM after {run['steps']} steps; checkpoint saved in "
                  f"{args.out}/checkpoints (continue with --resume)")
        return 0
    if is_main:
        out = Path(args.out)
        tmp = out / ".model.safetensors.tmp"
        save_model(model, str(tmp))
        os.replace(tmp, out / "model.safetensors")
        (out / ".result.json.tmp").write_text(json.dumps(run, indent=1))
        os.replace(out / ".result.json.tmp", out / "result.json")
        print(f"{run['task']} / {run['method']}: {run['metric']} {run['final']:.2f} after "
              f"{run['steps']} steps, {run['train_seconds']:.1f}s train; wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hasten", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="quick vision suite on embedded data (< 5 min on 2 cores)")
    demo.add_argument("--out", help="report folder (default runs/demo)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="run a benchmark suite")
    bench.add_argument("suite", help="suite name, e.g. vision")
    bench.add_argument("--quick", action="store_true", help="short budgets (smoke test)")
    bench.add_argument("--seeds", type=int, default=1, help="seeds per task and method")
    bench.add_argument("--budget", help="override every task's budget, e.g. 90s or 2000steps")
    bench.add_argument("--tasks", help="comma-separated subset of the suite's tasks")
    bench.add_argument("--methods", help="comma-separated methods (the first is the baseline)")
    bench.add_argument("--out", help="output folder (default runs/bench-SUITE)")
    bench.add_argument("--quiet", action="store_true", help="no progress output")
    bench.set_defaults(func=cmd_bench)

    tr = sub.add_parser("train", help="one training run of a registered task")
    tr.add_argument("--task", required=True, help="e.g. digits, mnist1d, fashion-mnist")
    tr.add_argument("--method", default="baseline")
    tr.add_argument("--out", required=True, help="folder for checkpoints, logs and weights")
    tr.add_argument("--budget", help="e.g. 90s, 20m, 500steps, 1e5ex (default: the task's)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--quick", action="store_true", help="the task's quick recipe")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints")
    tr.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints")
    tr.add_argument("--micro-batch", type=int, help="examples per micro-batch per rank")
    tr.add_argument("--precision", choices=["fp32", "bf16"])
    tr.add_argument("--lr", type=float)
    tr.add_argument("--compile", action="store_true", help="torch.compile the model")
    tr.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HastenError as err:
        print(f"hasten: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("hasten: interrupted", file=sys.stderr)
        return 130
