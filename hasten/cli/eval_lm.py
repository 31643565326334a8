"""`hasten eval-lm MODEL_DIR`: score a masked-LM folder (any transformers masked LM, or what
`hasten cram` exported) with the evaluations that can see small-compute pretraining: BLiMP
zero-shot by pseudo-log-likelihood, linear probes on SST-2 and STS-B, held-out MLM loss
(`hasten.pretrain.lmeval`). `--out DIR` gets eval.json and config.json."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from hasten.cli import common
from hasten.core.checks import check_model_folder
from hasten.core.config import option, settings_help
from hasten.core.distributed import resolve_device
from hasten.pretrain.lmeval.evaluate import EvalLMConfig, check_config, eval_lm

NAME = "eval-lm"
HELP = "score a masked-LM folder: BLiMP, linear probes (SST-2, STS-B), held-out MLM loss"


@dataclass
class EvalLMCommand:
    """`hasten eval-lm`: the settings beside `EvalLMConfig`'s."""

    overwrite: bool = option(False, "a folder holding anything is never replaced unless "
                             "asked", help="write into a non-empty --out folder")
    quiet: bool = option(False, "a line per evaluation unless asked for silence",
                         help="no progress lines")


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       epilog=settings_help(EvalLMConfig) + "\n" +
                       settings_help(EvalLMCommand),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="a transformers masked-LM folder (e.g. hasten cram's "
                                     "model/)")
    common.add_settings(p, EvalLMConfig, EvalLMCommand, skip=("model_dir",),
                        what={"out": "the folder for eval.json and config.json",
                              "seq_len": "tokens per row of the held-out text"})
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    c, cmd = common.settle([EvalLMConfig, EvalLMCommand], args, NAME,
                           fixed={"model_dir": args.model_dir})
    check_config(c)
    if c.device is not None:
        resolve_device(c.device)
    out = common.check_out(c.out, empty=True, overwrite=cmd.overwrite) if c.out else None
    check_model_folder(c.model_dir)
    say = common.sayer(cmd.quiet) or (lambda line: None)
    results = eval_lm(c, say)
    if out is not None and common.is_main_process():
        common.write_settings(out, c, cmd)
    for line in summary_lines(results):
        print(line)
    if out is not None:
        print(f"wrote {out / 'eval.json'}")
    return 0


def summary_lines(results: dict[str, Any]) -> list[str]:
    """One line per metric that ran (and why the others did not)."""
    lines = []
    if results.get("blimp") is not None:
        lo, hi = results["blimp_interval"]
        lines.append(f"blimp        {results['blimp']:6.2f}  (95% interval {lo:.2f} to "
                     f"{hi:.2f})")
    for key, label in (("probe_sst2", "accuracy"), ("probe_stsb", "Spearman")):
        if results.get(key) is not None:
            lines.append(f"{key:12s} {results[key]:6.2f}  ({label} x 100)")
    if results.get("mlm_loss_15") is not None:
        lines.append(f"mlm_loss_15  {results['mlm_loss_15']:6.4f}  (nats per masked token)")
    for key, why in {**results.get("not_run", {}), **results.get("not_applicable", {})}.items():
        lines.append(f"{key:12s} {'n/a':>6s}  ({why})")
    return lines
