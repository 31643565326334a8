"""Pretraining benchmarks: `hasten cram` runs at a shared budget, each scored on GLUE-small.

The mlm and electra suites (`hasten.bench.mlm`, `hasten.bench.electra`) are tables of
*rows*: one `hasten cram` run each (a recipe, an architecture, an objective, a fraction of the
suite's budget), then `hasten glue` on its export. A row is a few cram keyword arguments, so a
new ablation row is one line.

Rows are slow (minutes to hours), so every finished row is kept under `OUT/ROW/` (the cram
folder plus `glue.json`) and reused when the suite runs again with the same settings: a row's
cram summary must match the row's resolved recipe, objective, budget, seed and corpus size, and
its GLUE file the GLUE settings. So an interrupted suite resumes, rows can be run one at a time
on separate cores (`--methods ROW --out SAME_DIR`), and a last full call only assembles the
table. Delete a row's folder to run it again.

Shapes and settings (`PretrainSettings`) default to what one CPU core can train in tens of
minutes: a 4-layer, 256-wide encoder, 8192-token WordPiece vocabulary, 128-token rows, batch
256; GLUE-small fine-tunes every row the same way (`GLUE_DEFAULTS`).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hasten.atomic import atomic_write
from hasten.bench.harness import provenance, scale_budget, split_method
from hasten.errors import ConfigError, DataError

# The encoder every row trains (any recipe key; the row may override).
SHAPE: dict[str, Any] = {"hidden": 256, "layers": 4, "heads": 4, "intermediate": 1024,
                         "batch": 256, "micro_batch": 64}
VOCAB_SIZE = 8192
SEQ_LEN = 128

# One GLUE-small setting for every row, fixed before any row ran. lr 3e-4 is ELECTRA-Small's
# published fine-tuning rate (Clark et al. 2020, Table 7) for this width; Cramming's 4e-5 is for
# BERT-base size and left 375 steps too few to move a small model off chance.
GLUE_DEFAULTS: dict[str, Any] = {"epochs": 3.0, "max_train_examples": 2000, "lr": 3e-4,
                                 "batch": 16, "precision": "bf16"}

QUICK_SHAPE: dict[str, Any] = {"hidden": 32, "layers": 1, "heads": 2, "intermediate": 64,
                               "batch": 16, "micro_batch": 8}
QUICK_FORCE: dict[str, Any] = {"cutoff": None, "precision": "fp32"}  # a tiny vocabulary's
# tokens per character fail any real filter cutoff
QUICK_GLUE: dict[str, Any] = {"epochs": 1.0, "max_train_examples": 16, "max_eval_examples": 32,
                              "lr": 3e-4, "batch": 8, "precision": "fp32"}


@dataclass
class Row:
    """One table row: `hasten.cram.cram` keyword arguments, run at `fraction` of the budget."""

    name: str
    cram: dict[str, Any] = field(default_factory=dict)
    fraction: float = 1.0
    description: str = ""


@dataclass
class PretrainSettings:
    """What every row of a suite shares."""

    corpus: list[str]
    budget: str = "25m"
    shape: dict[str, Any] = field(default_factory=lambda: dict(SHAPE))
    vocab_size: int = VOCAB_SIZE
    seq_len: int = SEQ_LEN
    glue: dict[str, Any] = field(default_factory=lambda: dict(GLUE_DEFAULTS))
    glue_seeds: int = 1
    glue_tasks: str | None = None  # None: all five
    seed: int = 0
    quick: bool = False
    force: dict[str, Any] = field(default_factory=dict)  # recipe values over every row's


def default_corpus() -> list[str]:
    """`$HASTEN_DATA/gutenberg` (the shared Project Gutenberg excerpt)."""
    from hasten.data.vision import data_root

    path = data_root() / "gutenberg"
    if not path.is_dir():
        from hasten.errors import DataError

        raise DataError(f"corpus folder not found: {path} (set HASTEN_DATA)")
    return [str(path)]


def resolve_rows(rows: Mapping[str, Row], names: Sequence[str] | None) -> list[Row]:
    """The rows called `names` (all, in table order, when None); `NAME@F` runs row NAME at
    fraction F of the budget."""
    out = []
    for name in names or list(rows):
        base, fraction = split_method(name)
        if base not in rows:
            raise ConfigError(f"unknown row {base!r}; known: {', '.join(rows)}")
        row = rows[base]
        out.append(Row(name, dict(row.cram), row.fraction * fraction, row.description))
    return out


def settings_from_args(args: argparse.Namespace) -> PretrainSettings:
    """Bench settings from the CLI (`--quick`: tiny model, 3 steps, a few GLUE examples)."""
    corpus = getattr(args, "corpus", None) or default_corpus()
    for path in corpus:  # before any throughput or pretraining work
        if not Path(path).exists():
            raise DataError(f"corpus not found: {path}")
    if args.quick:
        return PretrainSettings(corpus=corpus, budget=args.budget or "3steps",
                                shape=dict(QUICK_SHAPE), vocab_size=300, seq_len=32,
                                glue=dict(QUICK_GLUE), glue_seeds=args.seeds, quick=True,
                                force=dict(QUICK_FORCE))
    return PretrainSettings(corpus=corpus, budget=args.budget or "25m", glue_seeds=args.seeds)


def _cram_kwargs(row: Row, s: PretrainSettings) -> dict[str, Any]:
    kw: dict[str, Any] = {"vocab_size": s.vocab_size, "seq_len": s.seq_len, **s.shape}
    kw.update(row.cram)
    kw.update(s.force)
    return kw


def _expected(row: Row, s: PretrainSettings, budget: str) -> dict[str, Any]:
    """What a finished row's summary.json must say to be reused."""
    from hasten.objectives import get_objective
    from hasten.objectives.mlm import resolve_recipe

    kw = _cram_kwargs(row, s)
    recipe = kw.pop("recipe", "crammed")
    objective = kw.pop("objective", "mlm")
    obj = get_objective(objective)
    r = resolve_recipe(recipe, getattr(obj, "defaults", None),
                       getattr(obj, "recipe_values", None), **kw)
    r = json.loads(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in r.items()}))
    return {"recipe": r, "objective": objective, "budget": budget, "seed": s.seed}


def _reusable(summary_file: Path, expected: Mapping[str, Any]) -> bool:
    try:
        summary = json.loads(summary_file.read_text())
    except (OSError, ValueError):
        return False
    return all(summary.get(k) == v for k, v in expected.items())


def _glue_settings(s: PretrainSettings) -> dict[str, Any]:
    return {**_per_seed_settings(s), "seeds": s.glue_seeds,
            "aggregate": "median over fine-tuning seeds per task, mean over tasks"}


def run_row(row: Row, s: PretrainSettings, out_dir: Path,
            say: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Pretrain and GLUE-score one row into `out_dir / row.name` (reusing what is there)."""
    from hasten.cram import cram

    budget = scale_budget(s.budget, row.fraction) if row.fraction != 1.0 else s.budget
    folder = out_dir / row.name
    expected = _expected(row, s, budget)
    if _reusable(folder / "summary.json", expected):
        say(f"{row.name}: reusing the pretraining in {folder}")
        summary = json.loads((folder / "summary.json").read_text())
    else:
        say(f"{row.name}: pretraining for {budget} ...")
        kw = _cram_kwargs(row, s)
        summary = cram(s.corpus, budget, folder, seed=s.seed, quiet=True, overwrite=True, **kw)
    glue = glue_scores(folder, s, say=lambda line: say(f"{row.name}: {line}"))
    line = row_line(row, budget, summary, glue)
    say(f"{row.name}: GLUE-small average {line['glue_average']:.2f}")
    return line


def _per_seed_settings(s: PretrainSettings) -> dict[str, Any]:
    return {**s.glue, "tasks": s.glue_tasks}


def glue_scores(folder: Path, s: PretrainSettings,
                say: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """GLUE-small of `folder/model` over seeds 0 .. glue_seeds - 1: each seed's scores are
    kept in `folder/glue-seedN.json` and reused while the settings match, so raising `--seeds`
    only fine-tunes the new seeds. Median over seeds per task, mean over tasks."""
    from hasten.glue import evaluate_glue

    want = _per_seed_settings(s)
    per_seed = []
    for seed in range(s.glue_seeds):
        path = folder / f"glue-seed{seed}.json"
        try:
            res = json.loads(path.read_text())
            ok = res.get("bench_settings") == want
        except (OSError, ValueError):
            ok = False
        if ok:
            say(f"reusing its GLUE scores (seed {seed})")
        else:
            say(f"GLUE-small, fine-tuning seed {seed} ...")
            res = evaluate_glue(folder / "model", tasks=s.glue_tasks, seeds=1, first_seed=seed,
                                **s.glue)
            res["bench_settings"] = want
            atomic_write(path, lambda fh, r=res: fh.write(json.dumps(r, indent=1).encode()))
        per_seed.append(res)
    tasks = list(per_seed[0]["scores"])
    runs = {t: [r["scores"][t] for r in per_seed] for t in tasks}
    scores = {t: statistics.median(v) for t, v in runs.items()}
    return {"scores": scores, "average": sum(scores.values()) / len(scores), "runs": runs,
            "seconds": sum(r.get("seconds", 0.0) for r in per_seed)}


def row_line(row: Row, budget: str, summary: Mapping[str, Any],
             glue: Mapping[str, Any]) -> dict[str, Any]:
    """The results entry of one row."""
    work = summary.get("work", {})
    return {
        "row": row.name, "description": row.description, "fraction": row.fraction,
        "budget": budget, "objective": summary.get("objective"), "arch": summary.get("arch"),
        "recipe": summary.get("recipe", {}).get("name"), "parameters": summary.get("parameters"),
        "steps": summary.get("steps"), "tokens": work.get("tokens"), "flops": work.get("flops"),
        "train_seconds": summary.get("ledger", {}).get("train"),
        "heldout_loss": summary.get("heldout_loss"),
        "heldout_metrics": summary.get("heldout_metrics"),
        "corpus": summary.get("corpus"),
        "glue": dict(glue["scores"]), "glue_average": glue["average"],
        "glue_seeds": dict(glue["runs"]), "glue_seconds": glue["seconds"],
    }


def run_pretrain_suite(suite: str, rows: Sequence[Row], s: PretrainSettings, out_dir: Path,
                       say: Callable[[str], None] = lambda line: None,
                       extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every row in turn; the results dict the report and the JSON are made from."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    lines = [run_row(row, s, out_dir, say) for row in rows]
    return {
        "suite": suite, **provenance(created=started),
        "quick": s.quick, "budget": s.budget, "corpus": s.corpus, "shape": s.shape,
        "vocab_size": s.vocab_size, "seq_len": s.seq_len, "seed": s.seed,
        "glue_settings": _glue_settings(s), "rows": lines, **(extra or {}),
    }


# -----------------------------------------------------------------------------
# report


GLUE_ORDER = ("cola", "sst2", "mrpc", "stsb", "rte")


def _fmt(x: Any, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def table_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the suite's table (one line per row)."""
    tasks = [t for t in GLUE_ORDER if any(t in r["glue"] for r in results["rows"])]
    head = ["row", "budget", "trained params", "train FLOPs", "tokens", "train s", "held-out loss",
            "GLUE avg", *tasks]
    cells = []
    for r in results["rows"]:
        params = _fmt(r["parameters"] / 1e6, ".2f") + "M" if r["parameters"] else "n/a"
        cells.append([r["row"], r["budget"], params, _fmt(r["flops"], ".2e"),
                      _fmt(r["tokens"], ",d"), _fmt(r["train_seconds"], ".0f"),
                      _fmt(r["heldout_loss"], ".3f"), _fmt(r["glue_average"]),
                      *[_fmt(r["glue"].get(t)) for t in tasks]])
    return head, cells


def markdown(results: Mapping[str, Any], title: str, notes: Sequence[str] = ()) -> str:
    head, cells = table_rows(results)
    out = [f"# {title}", "", f"`{results['command']}`, {results['created']}, "
           f"{results['machine']}", ""]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(c) + " |" for c in cells]
    out += ["", *notes]
    return "\n".join(out) + "\n"


def rich_table(results: Mapping[str, Any], title: str) -> Any:
    from rich.table import Table

    head, cells = table_rows(results)
    table = Table(title=title)
    for h in head:
        table.add_column(h, justify="left" if h == "row" else "right")
    for c in cells:
        table.add_row(*c)
    return table


def write_results(results: Mapping[str, Any], out_dir: Path, title: str,
                  notes: Sequence[str] = ()) -> dict[str, Path]:
    """results.json and report.md under `out_dir`."""
    paths = {"results": out_dir / "results.json", "report": out_dir / "report.md"}
    atomic_write(paths["results"],
                 lambda fh: fh.write(json.dumps(results, indent=1).encode()))
    atomic_write(paths["report"],
                 lambda fh: fh.write(markdown(results, title, notes).encode()))
    return paths
