"""`hasten distill`: distil a dataset into a few images per class, or evaluate a distilled set.

    hasten distill --data fashion-mnist --method dm --ipc 10 --budget 20m --out syn.safetensors
    hasten distill eval syn.safetensors [MORE.safetensors ...] [--models 3] [--epochs 300]
        [--dsa] [--lr 0.01|learned] [--validation N] [--json results.json]

Distillation writes OUT (images, labels and metadata in one safetensors file) and a PNG grid
beside it (OUT with .png). With --checkpoint-dir it checkpoints, and --resume continues.
`eval` trains fresh networks on each set with one protocol (e.g. a run's snapshots, for an
accuracy-vs-iterations curve) and can gather the results, with the command and the machine,
into one JSON file.
Methods: DC, DSA, DM, MTT (see `hasten.distill`); also the coreset baselines random, herding
and k-center, which take no budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hasten.errors import ConfigError

BASELINES = ("random", "herding", "k-center")


def _device(name: str | None) -> str:
    import torch

    if name:
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def _options(pairs: list[str] | None) -> dict[str, Any]:
    """--option KEY=VALUE pairs; values are parsed as JSON when they can be (numbers...)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option needs KEY=VALUE, got {pair!r}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `distill` (and its `eval` action) to the hasten command's subparsers."""
    p = subparsers.add_parser(
        "distill", help="dataset distillation (DC, DSA, DM, MTT) or `distill eval FILE`",
        description="Distil a dataset into a few synthetic images per class "
                    "(`hasten distill --data D --method M --ipc N --budget B --out F`), "
                    "or evaluate one (`hasten distill eval F`).")
    p.add_argument("action", nargs="?", choices=["eval"], help="eval: evaluate FILE...")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="eval: synthetic sets (.safetensors), all of one dataset")
    p.add_argument("--data", help="digits, fashion-mnist, mnist1d (eval: default from FILE)")
    p.add_argument("--method", default="dm",
                   help="dm, idm, dc, dsa, mtt; baselines: random, herding, k-center")
    p.add_argument("--ipc", type=int, default=10, help="images per class")
    p.add_argument("--budget", default="500steps", help="iterations (500steps) or wall clock "
                                                        "(20m) of distillation")
    p.add_argument("--out", help="output file, e.g. syn.safetensors (a .png grid goes beside)")
    p.add_argument("--init", choices=["real", "noise"], default="real")
    p.add_argument("--dsa", action=argparse.BooleanOptionalAction, default=None,
                   help="DSA augmentation (distill: default on for images; eval: default off)")
    p.add_argument("--width", type=int, default=128, help="ConvNet-3 channels")
    p.add_argument("--factor", type=int, default=1,
                   help="multi-formation (IDC): store each image as factor x factor smaller "
                        "ones, so ipc stored images train as ipc*factor^2 (default 1: off)")
    p.add_argument("--batch-real", type=int, default=256, help="real images per class and match")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="method hyperparameter, e.g. lr_img=1, syn_steps=20 (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-dir", help="folder for checkpoints (and MTT experts)")
    p.add_argument("--checkpoint-every", type=int, default=100, help="iterations")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    p.add_argument("--snapshot-every", type=int, default=0, metavar="N",
                   help="also save the set every N iterations into a folder beside OUT "
                        "(syn-snapshots/ for syn.safetensors), for accuracy-vs-iterations curves")
    p.add_argument("--eval", dest="eval_after", action="store_true",
                   help="evaluate the result after distilling")
    p.add_argument("--models", type=int, default=3, help="eval: fresh networks")
    p.add_argument("--epochs", type=int, default=300, help="eval: training epochs")
    p.add_argument("--lr", default="0.01",
                   help="eval: learning rate, or `learned` for the step size MTT learned "
                        "with the set (MTT's own evaluation)")
    p.add_argument("--validation", type=int, default=0, metavar="N",
                   help="eval: score on N training images held out by a seeded draw instead "
                        "of the test set, to choose settings without seeing the test set")
    p.add_argument("--json", metavar="PATH",
                   help="eval: also write every set's result, the protocol, the command and "
                        "the machine to PATH")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_distill)
    return p


def cmd_distill(args: argparse.Namespace) -> int:
    """Run `hasten distill ...` or `hasten distill eval FILE`; errors are HastenErrors."""
    if args.action == "eval":
        if not args.files:
            raise ConfigError("distill eval needs a FILE (a .safetensors synthetic set)")
        return _cmd_eval(args)
    if args.files:
        raise ConfigError(f"unexpected argument {args.files[0]!r}; did you mean "
                          f"`hasten distill eval {args.files[0]}`?")
    if args.validation or args.json:
        raise ConfigError("--validation and --json belong to `hasten distill eval`")
    if not args.data:
        raise ConfigError("distill needs --data (digits, fashion-mnist, mnist1d)")
    if not args.out:
        raise ConfigError("distill needs --out FILE (e.g. syn.safetensors)")
    from rich.console import Console

    from hasten.data.vision import load_vision
    from hasten.distill import coreset
    from hasten.distill.formation import check_factor
    from hasten.distill.methods import METHODS, distill

    console = Console()
    say = (lambda line: None) if args.quiet else (
        lambda line: console.print(line, highlight=False))
    method = args.method.lower()
    if method not in METHODS and method not in BASELINES:
        raise ConfigError(f"unknown distillation method {args.method!r}; known: "
                          f"{', '.join([*METHODS, *BASELINES])}")
    if args.eval_after:  # a bad --lr should fail now, not after the distillation
        if args.lr == "learned" and method != "mtt":
            raise ConfigError("--lr learned needs --method mtt (only MTT learns a step size)")
        if args.lr != "learned":
            _eval_lr(args.lr, None, "")
    data = load_vision(args.data)
    factor = check_factor(args.factor, tuple(data.input_shape))
    if method in BASELINES:  # ipc * factor^2 real images, packed into ipc per class
        n = args.ipc * factor * factor
        if method == "random":
            syn = coreset.random_subset(data, n, seed=args.seed)
        else:
            syn = (coreset.herding if method == "herding" else coreset.k_center)(data, n)
        syn = coreset.formed(syn, factor)
    else:
        dsa = args.dsa if args.dsa is not None else len(data.input_shape) == 3
        say(f"distilling {data.name} with {method}, ipc {args.ipc}, budget {args.budget}")
        syn = distill(method, data, args.ipc, args.budget, init=args.init, dsa=dsa,
                      seed=args.seed, width=args.width, batch_real=args.batch_real,
                      device=_device(args.device), checkpoint_dir=args.checkpoint_dir,
                      checkpoint_every=args.checkpoint_every, resume=args.resume,
                      snapshot_every=args.snapshot_every, snapshot_dir=_snapshot_dir(args.out),
                      factor=factor,
                      progress=False if args.quiet else (True if sys.stdout.isatty() else say),
                      **_options(args.option))
        m = syn.meta
        say(f"{m['iterations']} iterations in {m['train_seconds']:.1f}s; loss "
            f"{m['loss_first']:.4g} -> {m['loss_last']:.4g}")
    out = syn.save(args.out)
    files = [str(out)]
    if len(syn.input_shape) == 3:
        files.append(str(syn.save_grid_png(out.with_suffix(".png"))))
    formed = f", each holding {factor * factor}" if factor > 1 else ""
    print(f"wrote {len(syn)} images ({syn.ipc} per class{formed}): {', '.join(files)}")
    if args.eval_after:
        _report(syn, data, args, say, args.out, _eval_lr(args.lr, syn, args.out))
    return 0


def _snapshot_dir(out: str) -> str:
    """syn.safetensors -> syn-snapshots (beside it)."""
    path = Path(out)
    return str(path.with_name(f"{path.stem}-snapshots"))


def _cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    from hasten.data.vision import holdout_split, load_vision
    from hasten.distill.synthetic import SyntheticSet

    # read every set (and check the options) before hours of training start
    sets = [SyntheticSet.load(f) for f in args.files]
    lrs = [_eval_lr(args.lr, syn, path) for path, syn in zip(args.files, sets, strict=True)]
    for path, syn in zip(args.files, sets, strict=True):
        if not args.data and not syn.meta.get("dataset"):
            raise ConfigError(f"{path} does not name its dataset; pass --data")
    names = {args.data} if args.data else {s.meta["dataset"] for s in sets}
    if len(names) != 1:
        raise ConfigError(f"the sets name different datasets ({', '.join(sorted(names))}); "
                          "evaluate them separately")
    data = load_vision(names.pop())
    if args.validation:
        data = holdout_split(data, args.validation)
    console = Console()
    say = (lambda line: None) if args.quiet else (
        lambda line: console.print(line, highlight=False))
    start, rows = time.time(), []
    for path, syn, lr in zip(args.files, sets, lrs, strict=True):
        rows.append(_report(syn, data, args, say, path, lr))
    if args.json:
        _write_json(args, data.name, rows, time.time() - start)
    return 0


def _eval_lr(lr: str, syn: Any, path: str) -> float:
    """--lr as a number, or the step size an MTT set learned (`learned`)."""
    if lr == "learned":
        if syn.meta.get("syn_lr") is None:
            raise ConfigError(f"{path}: --lr learned needs an MTT set (it has no learned "
                              "step size)")
        return float(syn.meta["syn_lr"])
    try:
        value = float(lr)
    except ValueError:
        raise ConfigError(f"--lr must be a number or 'learned', got {lr!r}") from None
    if not value > 0:
        raise ConfigError(f"--lr must be > 0, got {lr}")
    return value


def _report(syn: Any, data: Any, args: argparse.Namespace, say: Any, path: str,
            lr: float) -> dict:
    """Evaluate one set by the protocol in `args` (at `lr`); print a summary and a JSON line."""
    from hasten.distill.evaluate import evaluate

    result = evaluate(syn, data, models=args.models, epochs=args.epochs, dsa=bool(args.dsa),
                      lr=lr, width=args.width, seed=args.seed,
                      device=_device(args.device), progress=say)
    formed = f" (factor {syn.factor})" if syn.factor > 1 else ""
    print(f"{syn.method} ipc {syn.ipc}{formed} on {data.name}: {result}")
    row = {"file": str(path), "method": syn.method, "ipc": syn.ipc, "factor": syn.factor,
           "iterations": syn.meta.get("iterations"),
           "distill_seconds": syn.meta.get("train_seconds"),
           "syn_lr": syn.meta.get("syn_lr"), **result.as_dict()}
    print(json.dumps(row), flush=True)
    return row


def _write_json(args: argparse.Namespace, scored_on: str, rows: list[dict],
                seconds: float) -> None:
    from hasten.atomic import atomic_write
    from hasten.bench.harness import provenance

    record = {**provenance(),
              "protocol": {"epochs": args.epochs, "dsa": bool(args.dsa), "width": args.width,
                           "models": args.models, "seed": args.seed, "lr": args.lr,
                           "scored_on": scored_on,
                           "optimizer": "SGD momentum 0.9, wd 5e-4, lr x0.1 at half"},
              "seconds": seconds, "rows": rows}
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(args.json, lambda fh: fh.write(text.encode()))
    print(f"wrote {args.json}")


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m hasten.distill.cli ...`) until hasten/cli.py wires it."""
    from hasten.errors import HastenError

    parser = argparse.ArgumentParser(prog="hasten")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except HastenError as err:
        print(f"hasten: error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    raise SystemExit(main())

