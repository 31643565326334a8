"""The five small GLUE tasks (Wang et al. 2019, "GLUE: A Multi-Task Benchmark and Analysis
Platform for Natural Language Understanding"): their readers and metrics, shared by GLUE
fine-tuning (`hasten.pretrain.glue`) and the frozen-encoder probes
(`hasten.pretrain.lmeval.probes`).

    task   metric (x100)   labels
    cola   MCC             2 (acceptable / not)
    sst2   accuracy        2
    mrpc   F1 (class 1)    2 (paraphrase = 1)
    stsb   Pearson         regression on [0, 5]
    rte    accuracy        2 (entailment = 0, as GLUE's label list)

The files are GLUE's own `.tsv` as distributed (read with `csv.QUOTE_NONE`; sentences hold
unbalanced quotes), stored under `data_root()/glue`. Departures: none; the metrics are
re-implemented in numpy so scoring needs neither scipy nor sklearn. Results are shown in
docs/benchmarks.md, "MLM recipe (Cramming): more tokens in equal time, no GLUE-small difference".
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hasten.core.errors import ConfigError, DataError
from hasten.core.paths import data_root

# -----------------------------------------------------------------------------
# metrics (scores in [0, 1] or [-1, 1]; reported x100)


def accuracy(pred: Sequence[int], gold: Sequence[int]) -> float:
    p, g = np.asarray(pred), np.asarray(gold)
    return float((p == g).mean()) if len(g) else float("nan")


def f1_binary(pred: Sequence[int], gold: Sequence[int], positive: int = 1) -> float:
    """F1 of the positive class; 0 when it is never predicted nor present."""
    p, g = np.asarray(pred) == positive, np.asarray(gold) == positive
    tp = float((p & g).sum())
    denom = float(p.sum() + g.sum())
    return 2 * tp / denom if denom else 0.0


def mcc(pred: Sequence[int], gold: Sequence[int]) -> float:
    """Matthews correlation of binary labels; 0 when a margin is empty (sklearn's rule)."""
    p, g = np.asarray(pred).astype(bool), np.asarray(gold).astype(bool)
    tp, tn = float((p & g).sum()), float((~p & ~g).sum())
    fp, fn = float((p & ~g).sum()), float((~p & g).sum())
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denom if denom else 0.0


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; 0 when either side is constant."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / denom if denom else 0.0


def ranks(v: Sequence[float]) -> np.ndarray:
    """0-based ranks, ties sharing their average rank."""
    v = np.asarray(v, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    sv = v[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sv)) + 1]  # first index of each run of ties
    ends = np.r_[starts[1:], len(v)] - 1
    r = np.empty(len(v))
    r[order] = np.repeat((starts + ends) / 2.0, ends - starts + 1)
    return r


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman correlation (Pearson of average ranks)."""
    return pearson(ranks(x), ranks(y))


# -----------------------------------------------------------------------------
# tasks


@dataclass(frozen=True)
class Task:
    name: str
    folder: str
    metric: str  # the target metric, reported x100
    num_labels: int  # 1: regression
    pair: bool


TASKS: dict[str, Task] = {
    "cola": Task("cola", "CoLA", "mcc", 2, False),
    "sst2": Task("sst2", "SST-2", "accuracy", 2, False),
    "mrpc": Task("mrpc", "MRPC", "f1", 2, True),
    "stsb": Task("stsb", "STS-B", "pearson", 1, True),
    "rte": Task("rte", "RTE", "accuracy", 2, True),
}


def parse_tasks(tasks: str | Sequence[str] | None) -> list[str]:
    """Task names from "cola,sst2" or a list (case and dashes ignored: "SST-2" = "sst2")."""
    if tasks is None:
        return list(TASKS)
    items = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    names = [t.strip().lower().replace("-", "").replace("_", "") for t in items if t.strip()]
    if not names:
        raise ConfigError("no GLUE task given")
    for t in names:
        if t not in TASKS:
            raise ConfigError(f"unknown GLUE task {t!r}; known: {', '.join(TASKS)}")
    return list(dict.fromkeys(names))


def glue_root() -> Path:
    return data_root() / "glue"


def task_file(task: str, split: str, root: str | Path | None = None) -> Path:
    """The `.tsv` of a task's split ("train" or "dev"); a DataError when it is missing."""
    t = TASKS[parse_tasks([task])[0]]
    path = Path(root or glue_root()) / t.folder / f"{split}.tsv"
    if not path.is_file():
        raise DataError(f"GLUE file not found: {path}")
    return path


def read_task(task: str, split: str, root: str | Path | None = None
              ) -> tuple[list[str], list[str] | None, np.ndarray]:
    """(first texts, second texts or None, labels) of a GLUE split ("train" or "dev").
    Labels are int64 class ids, or float32 scores for STS-B."""
    t = TASKS[parse_tasks([task])[0]]
    path = task_file(task, split, root)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        if t.name == "cola":  # no header: source, label, mark, sentence
            a, b, y = [r[3] for r in rows], None, [int(r[1]) for r in rows]
        elif t.name == "sst2":
            a, b, y = [r[0].strip() for r in rows[1:]], None, [int(r[1]) for r in rows[1:]]
        elif t.name == "mrpc":
            a, b = [r[3] for r in rows[1:]], [r[4] for r in rows[1:]]
            y = [int(r[0]) for r in rows[1:]]
        elif t.name == "stsb":
            a, b = [r[7] for r in rows[1:]], [r[8] for r in rows[1:]]
            y = [float(r[9]) for r in rows[1:]]
        else:  # rte
            a, b = [r[1] for r in rows[1:]], [r[2] for r in rows[1:]]
            y = [0 if r[3] == "entailment" else 1 for r in rows[1:]]
    except (IndexError, ValueError) as e:
        raise DataError(f"{path}: unexpected row format ({e})") from None
    if not y:
        raise DataError(f"{path}: no examples")
    labels = np.asarray(y, dtype=np.float32 if t.num_labels == 1 else np.int64)
    return a, b, labels


def score(task: str, pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """All metrics of a task, x100; the target metric is `TASKS[task].metric`."""
    t = TASKS[task]
    if t.num_labels == 1:
        return {"pearson": 100 * pearson(pred, gold), "spearman": 100 * spearman(pred, gold)}
    out = {"accuracy": 100 * accuracy(pred, gold)}
    if t.name == "cola":
        out["mcc"] = 100 * mcc(pred, gold)
    if t.name == "mrpc":
        out["f1"] = 100 * f1_binary(pred, gold)
    return out
