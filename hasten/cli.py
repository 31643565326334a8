"""The `hasten` command line.

    hasten demo                          quick vision suite on embedded data, table + report
    hasten bench SUITE [--quick] ...     run a suite; write results.json, report.md, curves.png
    hasten train --task T --out DIR ...  one training run (resumable; works under torchrun)
    hasten prune --data D --scorer S --keep F --out DIR   score examples, keep a subset

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
    import hasten.bench.mt  # noqa: F401
    import hasten.bench.prune  # noqa: F401
    import hasten.bench.selective  # noqa: F401
    import hasten.bench.vision  # noqa: F401


def cmd_bench(args: argparse.Namespace, suite: str | None = None) -> int:
    from rich.console import Console

    from hasten.bench.harness import run_suite
    from hasten.bench.report import rich_tables, write_report

    _suites()
    suite = suite or args.suite
    tasks = args.tasks.split(",") if args.tasks else None
    if getattr(args, "pair", None):  # the mt suite's language pair, e.g. fr-en
        from hasten.bench.mt import pair_task

        tasks = [pair_task(args.pair)]
    console = Console()
    out = Path(args.out or f"runs/bench-{suite}")
    results = run_suite(
        suite, quick=args.quick, seeds=args.seeds, budget=args.budget, tasks=tasks,
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


def cmd_prune(args: argparse.Namespace) -> int:
    from rich.console import Console

    from hasten.distributed import shutdown
    from hasten.select.prune import prune

    is_main = int(os.environ.get("RANK", "0")) == 0
    console = Console()
    say = None if args.quiet or not is_main else (
        lambda line: console.print(line, highlight=False))
    try:
        summary = prune(
            args.data, args.scorer, args.keep, args.select, out=args.out, scores=args.scores,
            beta=args.beta, offset=args.offset, strata=args.strata, balance=args.balance,
            epochs=args.epochs, runs=args.runs, lr=args.lr, batch_size=args.batch_size,
            model=args.model, seed=args.seed, device=args.device, precision=args.precision,
            text_unit=args.text_unit, text_field=args.text_field, dedup=args.dedup,
            cutoff=args.cutoff, vocab_size=args.vocab_size, overwrite=args.overwrite,
            quiet=args.quiet, progress=say)
    finally:
        shutdown()
    if is_main:
        s = summary
        reused = f" (reused from {s['scores_reused']})" if s["scores_reused"] else ""
        pre = s["prefilter"]
        pre_line = (f"; {pre['documents'] - pre['remaining']} dropped by "
                    f"{' and '.join(k for k in ('dedup', 'cutoff') if k in pre)} first"
                    if pre and ("dedup" in pre or "cutoff" in pre) else "")
        print(f"{s['input']['source']}: {s['before']} -> {s['after']} examples "
              f"({100 * s['keep_fraction']:.1f}% kept{pre_line})")
        sel = dict(s["selection"])
        method = sel.pop("method")
        how = (f"{sel['which']}, class-balanced" if method == "class_balanced" else
               ", ".join([method] + [f"{k} {v}" for k, v in sel.items()]))
        print(f"scorer {s['scorer']} (higher = {s['direction']}), select {how}; "
              f"scoring {s['scoring_seconds']:.1f}s{reused}")
        print(f"wrote {s['output']}: {', '.join(s['files'])}")
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
    bench.add_argument("--pair", help="mt: the Multi30k language pair, e.g. en-de or fr-en "
                                      "(runs task mt-PAIR)")
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

    pr = sub.add_parser("prune", help="score a dataset, keep a fraction, write it and the scores")
    pr.add_argument("--data", required=True,
                    help="a .npz/.npy/.jsonl/.txt file, a folder, or a dataset name "
                         "(digits, fashion-mnist, mnist1d)")
    pr.add_argument("--scorer", help="random, loss, el2n, grand, entropy, margin, prototypes, "
                                     "forgetting, aum; text: tokens-per-char, length, rarity")
    pr.add_argument("--keep", type=float, required=True, help="fraction kept, in (0, 1]")
    pr.add_argument("--select", help="hardest, easiest, random, ccs, offset, balanced "
                                     "(default: hardest; easiest for tokens-per-char)")
    pr.add_argument("--beta", type=float, help="ccs: fraction of the hardest dropped first")
    pr.add_argument("--strata", type=int, help="ccs: score strata (default 50)")
    pr.add_argument("--offset", type=float, help="offset: fraction of the hardest skipped")
    pr.add_argument("--balance", action="store_true",
                    help="class-balanced hardest/easiest (classes keep their proportions)")
    pr.add_argument("--scores", help="reuse saved scores (scores.npy + scores.json) instead "
                                     "of scoring")
    pr.add_argument("--epochs", type=float, default=1.0, help="proxy training epochs")
    pr.add_argument("--runs", type=int, default=1, help="proxies averaged")
    pr.add_argument("--lr", type=float, default=1e-3, help="proxy learning rate")
    pr.add_argument("--batch-size", type=int, default=128, help="proxy global batch")
    pr.add_argument("--model", default="auto",
                    help="proxy: auto (convnet3 for images, cnn1d for signals, mlp for "
                         "features), mlp, cnn1d, convnet3")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    pr.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    pr.add_argument("--text-unit", choices=["line", "paragraph"], default="line",
                    help="text files: one document per line or per paragraph")
    pr.add_argument("--text-field", default="text", help="JSONL / HF field holding the text")
    pr.add_argument("--dedup", action="store_true",
                    help="text: drop exact and near duplicates before scoring")
    pr.add_argument("--cutoff", type=float,
                    help="text: Cramming filter, keep iff tokens < CUTOFF * chars (e.g. 0.3)")
    pr.add_argument("--vocab-size", type=int, default=8192, help="text: tokenizer vocabulary")
    pr.add_argument("--out", required=True, help="output folder")
    pr.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    pr.add_argument("--quiet", action="store_true", help="no progress output")
    pr.set_defaults(func=cmd_prune)
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
