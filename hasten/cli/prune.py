"""`hasten prune`: score every example, keep a fraction, write the kept data, the scores and a
summary into a folder (atomically). `hasten train --data OUT` then trains on the kept set."""

from __future__ import annotations

import argparse
from typing import Any

from hasten.cli import common
from hasten.core.config import settings_help
from hasten.core.distributed import shutdown
from hasten.select.prune import PruneConfig, prune_with

NAME = "prune"
HELP = "score a dataset, keep a fraction, write it and the scores"
WHAT = {
    "data": "the data to score: a .npz/.npy/.jsonl/.txt file, a folder, an HF save_to_disk "
            "folder or a dataset name (digits, fashion-mnist, mnist1d)",
    "keep": "the fraction of examples kept, in (0, 1]",
    "out": "the folder for the kept data, the scores, kept.npy and summary.json",
    "scorer": "how examples are scored (hasten list scorers)",
    "select": "which examples are kept by their scores (hasten list selectors)",
    "scores": "a scores.npy an earlier run saved, reused instead of scoring",
    "beta": "ccs: the fraction of the hardest examples dropped first",
    "strata": "ccs: the number of score strata",
    "offset": "offset: the fraction of the hardest examples skipped first",
    "balance": "keep each class's share of the data",
    "epochs": "epochs the proxy trains before it scores",
    "runs": "proxies trained and averaged",
    "lr": "the proxy's learning rate",
    "batch_size": "examples per step of the proxy, over all processes",
    "model": "the proxy's architecture: auto, convnet3, cnn1d or mlp",
    "text_unit": "text: what a document is, a line or a paragraph",
    "text_field": "text: the field holding a record's text (HF datasets, JSONL)",
    "dedup": "text: drop duplicate documents first",
    "cutoff": "text: drop documents with tokens >= CUTOFF x characters first",
    "vocab_size": "text: the WordPiece vocabulary's size (tokens)",
    "full_time": "seconds a full-data training takes, for the break-even count",
    "subset_time": "seconds a training on the kept subset takes",
}


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help=HELP, description=__doc__, epilog=settings_help(PruneConfig),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_settings(p, PruneConfig, what=WHAT)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    (c,) = common.settle([PruneConfig], args, NAME)
    common.check_out(c.out, empty=True, overwrite=c.overwrite)
    try:
        s = prune_with(c, progress=common.sayer(c.quiet),
                       record={"command": common.command_text()})
    finally:
        shutdown()
    if not common.is_main_process():
        return 0
    _print_summary(s)
    return 0


def _print_summary(s: dict[str, Any]) -> None:
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
          f"scoring {_cost(s['amortisation'])}{reused}")
    for line in _break_even_lines(s["amortisation"]):
        print(line)
    print(f"wrote {s['output']}: {', '.join(s['files'])}")


def _cost(a: dict[str, Any]) -> str:
    """Scoring's seconds and FLOPs (and the recording alone, for a scorer that records
    inside a training run)."""
    flops = f", {a['scoring_flops']:.3g} FLOPs" if a.get("scoring_flops") else ""
    in_run = (f" ({a['recording_seconds']:.2f}s of it recording EL2N; the rest trains the "
              "epoch a full-data run trains anyway)" if "recording_seconds" in a else "")
    return f"{a['scoring_seconds']:.1f}s{flops}{in_run}"


def _break_even_lines(a: dict[str, Any]) -> list[str]:
    """How many trainings on the kept subset repay the scoring, when the full-data time was
    given (`--set full_time=SECONDS`)."""
    if "full_time" not in a:
        return []
    how = "keep x full_time" if a["subset_time_estimated"] else "as given"
    times = (f"full data {a['full_time']:.1f}s, kept subset {a['subset_time']:.1f}s "
             f"({how}) per training")
    if a["break_even"] is None:
        return [f"break-even: never, the kept subset is not faster; {times}"]
    lines = [f"break-even: {a['break_even']:.2f} trainings on the kept subset repay the "
             f"scoring; {times}"]
    if a.get("break_even_in_run") is not None:
        lines.append(f"break-even inside a full-data run: {a['break_even_in_run']:.2f} "
                     "trainings (only the recording is paid)")
    return lines
