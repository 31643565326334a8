"""The `hasten` command line.

    hasten demo                          quick vision suite on embedded data, table + report
    hasten bench SUITE [--quick] ...     run a suite; write results.json, report.md, curves.png
    hasten train --task T --out DIR ...  one training run (resumable; works under torchrun)
    hasten prune --data D --scorer S --keep F --out DIR   score examples, keep a subset
    hasten distill --data D --method dm --ipc 10 --budget 20m --out syn.safetensors
    hasten distill eval syn.safetensors   evaluate a distilled set (fresh ConvNet-3s)
    hasten cram --corpus PATH... --budget 30m --out DIR   budgeted BERT pretraining + export
    hasten glue MODEL_DIR                 GLUE-small fine-tuning (CoLA, SST-2, MRPC, STS-B, RTE)

A problem with the user's input prints one line, `hasten: error: ...`, and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from hasten.errors import HastenError


def _suites() -> None:
    """Import the modules that register suites, tasks and methods."""
    import hasten.bench.distill  # noqa: F401
    import hasten.bench.mt  # noqa: F401
    import hasten.bench.prune  # noqa: F401
    import hasten.bench.selective  # noqa: F401
    import hasten.bench.vision  # noqa: F401


# Suites that are tables of pretraining runs scored on GLUE, not tasks x methods x seeds:
# module with run(args, say) -> (results, out_dir, title, notes).
PRETRAIN_SUITES = {"mlm": "hasten.bench.mlm", "electra": "hasten.bench.electra"}


def cmd_bench_pretrain(args: argparse.Namespace, suite: str) -> int:
    import importlib

    from rich.console import Console

    from hasten.bench.pretrain import rich_table, write_results
    from hasten.errors import ConfigError

    if args.tasks or getattr(args, "pair", None) or getattr(args, "distill_budget", None) \
            or getattr(args, "first_seed", 0) or getattr(args, "baseline", None):
        raise ConfigError(f"bench {suite}: --tasks, --pair, --distill-budget, --first-seed "
                          "and --baseline do not apply (rows are chosen with --methods)")
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    console = Console(stderr=True)
    say = (lambda line: None) if args.quiet else \
        (lambda line: console.print(f"[bold cyan]bench {suite}[/] {line}", highlight=False))
    module = importlib.import_module(PRETRAIN_SUITES[suite])
    results, out, title, notes = module.run(args, say)
    paths = write_results(results, out, title, notes)
    if not args.quiet:
        Console().print(rich_table(results, title))
    print(f"report: {paths['report']}  results: {paths['results']}")
    return 0


def cmd_bench(args: argparse.Namespace, suite: str | None = None) -> int:
    from rich.console import Console

    from hasten.bench.harness import run_suite
    from hasten.bench.report import rich_tables, write_report

    suite = suite or args.suite
    if suite in PRETRAIN_SUITES:
        return cmd_bench_pretrain(args, suite)
    _suites()
    from hasten.bench.harness import SUITES
    from hasten.errors import ConfigError

    if suite not in SUITES:
        raise ConfigError(f"unknown suite {suite!r}; known: "
                          f"{', '.join(sorted(set(SUITES) | set(PRETRAIN_SUITES)))}")
    if getattr(args, "corpus", None):
        raise ConfigError(f"bench {suite}: --corpus applies to the mlm and electra suites")
    if getattr(args, "distill_budget", None):
        from hasten.bench.distill import set_distill_budget

        set_distill_budget(args.distill_budget)
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
        quiet=args.quiet, first_seed=getattr(args, "first_seed", 0),
        baseline=getattr(args, "baseline", None))
    paths = write_report(results, out)
    if not args.quiet:
        for table in rich_tables(results):
            console.print(table)
    console.print(f"report: {paths['report']}  curves: {paths['curves']}  "
                  f"results: {paths['results']}", highlight=False)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from hasten.bench.report import load_results, merge_results, write_report

    results = merge_results([load_results(p) for p in args.results])
    paths = write_report(results, args.out)
    print(f"report: {paths['report']}  results: {paths['results']}")
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
        return 128 + signal.SIGTERM  # 143, as a killed process: the run did not finish
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


def _recipe_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE of `--set`; VALUE parsed as JSON (numbers, null, lists), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _cutoff(text: str) -> float | None:
    if text.lower() in ("none", "off", "no"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def cmd_cram(args: argparse.Namespace) -> int:
    from hasten.config import resolve
    from hasten.cram import CramConfig, cram

    flags = {k: getattr(args, k) for k in ("corpus", "budget", "out", "recipe", "arch",
                                           "objective", "vocab_size", "seq_len", "seed",
                                           "device", "overwrite", "quiet")
             if getattr(args, k) is not None}
    cut = getattr(args, "cutoff", "recipe")
    if cut != "recipe":
        flags.update(filter=cut is not None, **({"cutoff": cut} if cut is not None else {}))
    if args.dedup:
        flags["dedup"] = True
    s = cram(resolve(CramConfig, sets=list(args.set or []), flags=flags))
    if s["stopped"] != "budget":
        return 130 if s["stopped"] == "sigint" else 143
    loss = s["heldout_loss"]
    print(f"{s['recipe']['name']} / {s['arch']} / {s['objective']}: {s['steps']} steps, "
          f"{s['work']['tokens']:,} tokens, held-out loss "
          f"{'n/a' if loss is None else f'{loss:.3f}'}; wrote {args.out}")
    return 0


def cmd_glue(args: argparse.Namespace) -> int:
    from hasten.glue import evaluate_glue

    settings = {k: getattr(args, k) for k in ("lr", "batch", "precision", "pooling", "device",
                                              "max_eval_examples")
                if getattr(args, k) is not None}
    s = evaluate_glue(args.model_dir, tasks=args.tasks, seeds=args.seeds, epochs=args.epochs,
                      max_train_examples=args.max_train_examples, jobs=args.jobs, out=args.out,
                      quiet=args.quiet, **settings)
    for task, r in s["tasks"].items():
        print(f"{task:5s} {r['metric']:8s} {r['score']:6.2f}")
    print(f"average        {s['average']:6.2f}  (median of {args.seeds} seed(s) per task)"
          + (f"; wrote {args.out}" if args.out else ""))
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
    bench.add_argument("--seeds", type=int, default=1,
                       help="seeds per task and method (mlm, electra: GLUE fine-tuning seeds)")
    bench.add_argument("--first-seed", type=int, default=0,
                       help="first seed (run seeds FIRST..FIRST+SEEDS-1; join the pieces with "
                            "`hasten report`)")
    bench.add_argument("--budget", help="override every task's budget, e.g. 90s or 2000steps")
    bench.add_argument("--tasks", help="comma-separated subset of the suite's tasks")
    bench.add_argument("--pair", help="mt: the Multi30k language pair, e.g. en-de or fr-en "
                                      "(runs task mt-PAIR)")
    bench.add_argument("--methods", help="comma-separated methods (the first is the baseline; "
                                         "mlm, electra: rows, e.g. crammed,electra@0.5)")
    bench.add_argument("--baseline", help="the baseline method when it is not the first of "
                                          "--methods (a part run on another core holds it; "
                                          "join the parts with `hasten report`)")
    bench.add_argument("--distill-budget", help="distill: distillation budget per method, e.g. "
                                                "20m, 500steps or dm=5m,mtt=20m")
    bench.add_argument("--corpus", nargs="+", help="mlm, electra: text files or folders "
                                                   "(default $HASTEN_DATA/gutenberg)")
    bench.add_argument("--out", help="output folder (default runs/bench-SUITE)")
    bench.add_argument("--quiet", action="store_true", help="no progress output")
    bench.set_defaults(func=cmd_bench)

    rp = sub.add_parser("report", help="join bench result files run in pieces (seeds split "
                                       "across cores or machines) and rewrite the report")
    rp.add_argument("results", nargs="+", help="results.json files of the same suite")
    rp.add_argument("--out", required=True, help="folder for the joined results and report")
    rp.set_defaults(func=cmd_report)

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

    from hasten.distill.cli import add_parser as add_distill_parser
    add_distill_parser(sub)

    cr = sub.add_parser("cram", help="pretrain a BERT-style encoder from text under a budget "
                                     "(Cramming recipe)")
    cr.add_argument("--corpus", nargs="+", required=True,
                    help="UTF-8 text files or folders of .txt files")
    cr.add_argument("--budget", required=True, help="e.g. 30m, 24h, 3e9tok, 2000steps")
    cr.add_argument("--out", required=True, help="output folder (model/, loss.png, "
                                                 "summary.json, train/)")
    cr.add_argument("--recipe", choices=["crammed", "original"], default="crammed")
    cr.add_argument("--arch", choices=["crammed", "bert"],
                    help="model (default: the recipe's; original -> bert)")
    cr.add_argument("--objective", default="mlm", help="pretraining objective (mlm)")
    cr.add_argument("--vocab-size", type=int, help="WordPiece vocabulary (default 32768)")
    cr.add_argument("--seq-len", type=int, help="tokens per row (default 128)")
    cr.add_argument("--cutoff", type=_cutoff, default=argparse.SUPPRESS,
                    help="Cramming filter: keep iff tokens < CUTOFF * chars; 'none' to skip")
    cr.add_argument("--dedup", action="store_true", help="exact + MinHash near dedup first")
    cr.add_argument("--set", type=_recipe_value, action="append", metavar="KEY=VALUE",
                    help="override a recipe value, e.g. --set hidden=256 --set lr=5e-4")
    cr.add_argument("--seed", type=int, default=0)
    cr.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    cr.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    cr.add_argument("--quiet", action="store_true", help="no progress output")
    cr.set_defaults(func=cmd_cram)

    gl = sub.add_parser("glue", help="fine-tune and score a model folder on GLUE-small "
                                     "(CoLA, SST-2, MRPC, STS-B, RTE)")
    gl.add_argument("model_dir", help="a transformers model folder (e.g. hasten cram's model/)")
    gl.add_argument("--tasks", help="comma-separated subset of cola,sst2,mrpc,stsb,rte")
    gl.add_argument("--seeds", type=int, default=5, help="fine-tuning seeds (median reported)")
    gl.add_argument("--epochs", type=float, default=5.0)
    gl.add_argument("--max-train-examples", type=int, help="subsample each training set")
    gl.add_argument("--max-eval-examples", type=int, help="subsample each dev set")
    gl.add_argument("--jobs", type=int, default=1, help="tasks fine-tuned in parallel")
    gl.add_argument("--lr", type=float, help="default 4e-5 (Cramming GLUE_sane)")
    gl.add_argument("--batch", type=int, help="default 16")
    gl.add_argument("--precision", choices=["fp32", "bf16"])
    gl.add_argument("--pooling", choices=["cls", "mean"], help="ModernBERT pooling (cls)")
    gl.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    gl.add_argument("--out", help="write the results JSON here")
    gl.add_argument("--quiet", action="store_true", help="no progress output")
    gl.set_defaults(func=cmd_glue)
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
