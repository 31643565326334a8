"""The runner of pretraining suites: one pretraining row at a time, kept on disk, written in
the harness's record layout so `hasten report` and `hasten.bench.report` read it.

A pretraining row does not fit the harness's one `train()` call: it needs a prepared corpus,
its own model per row (an architecture is part of the row), an evaluation after training
that costs more than training a small rung (BLiMP, probes), and it takes minutes to hours.
So each row is run (`hasten.bench.ladder.run_row`) into its own folder
`OUT/<task>/<method>-seed<N>/`: training checkpoints in `train/` (an interrupted row
resumes), then `record.json`, one run in the harness layout (task, method, seed, metric,
final, metrics, work, curve, ledger, notes, plus `rung_flops`). A finished row whose key
(its settings, hashed) matches is reused, so rows can be split over cores (`--methods ROW`
in separate processes, the same `--out`), and a last call only assembles `results.json`.

`evaluate_checkpoint(model, tokenizer, heldout)` is the one place a row's evaluation is made:
the held-out MLM loss at 15% with fixed masks (`mlm_loss_15`) here; BLiMP and the linear
probes come from `hasten.pretrain.lmeval` through `lmeval_scores` (PLL-word-l2r BLiMP on pairs whose
words the corpus holds; probes on frozen mean-pooled features).
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Group
from torch import nn

from hasten.bench.harness import provenance
from hasten.bench.report import fill_targets, rich_tables, write_report
from hasten.core.atomic import atomic_write
from hasten.core.config import resolve
from hasten.core.trainer import precision_context
from hasten.models.electra import ElectraModel
from hasten.pretrain.lmeval import EvalLMConfig, evaluate_lm, wrap_lm
from hasten.pretrain.lmeval.evaluate import read_inputs
from hasten.text.masking import IGNORE, mask_tokens

RECORD = "record.json"
FORMAT = 2  # bump when a row's meaning changes, so old records are not reused
METRICS = ("blimp", "probe_sst2", "probe_stsb", "mlm_loss_15")


def row_key(settings: Mapping[str, Any]) -> str:
    """A short hash of everything a row's result depends on."""
    text = json.dumps([FORMAT, settings], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_record(folder: Path, key: str) -> dict[str, Any] | None:
    """The finished record in `folder` when its key matches, else None."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("key") == key else None


def write_record(folder: Path, record: Mapping[str, Any]) -> Path:
    path = folder / RECORD
    text = json.dumps(_json_safe(record), indent=1, allow_nan=False)
    atomic_write(path, lambda fh: fh.write(text.encode()))
    return path


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.integer, np.floating)):
        return _json_safe(obj.item())
    return obj


# -----------------------------------------------------------------------------
# evaluation


def masked_logits(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits [P, V] at the positions `labels` predicts (row-major), for any of
    hasten's MLM models: our encoders run their head on those rows only, an HF model on
    every position (then picked)."""
    flat = (labels.reshape(-1) != IGNORE).nonzero().flatten()
    if hasattr(model, "mlm_logits"):
        return model.mlm_logits(ids, flat)
    logits = model(input_ids=ids).logits
    return logits.reshape(-1, logits.shape[-1]).index_select(0, flat)


def order_heldout(heldout: np.ndarray | torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Every held-out row, in one fixed shuffled order (a permutation drawn from `seed`), so
    the first N rows are a spread-out sample whatever N, and a smaller N is a prefix of a
    larger one."""
    rows = torch.as_tensor(np.asarray(heldout), dtype=torch.long)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    return rows[order]


def heldout_loss_grid(model: nn.Module, rows: torch.Tensor, vocab_size: int, *,
                      row_counts: Sequence[int], mask_seeds: Sequence[int],
                      rate: float = 0.15, batch: int = 32, precision: str = "bf16",
                      ) -> dict[str, dict[str, float]]:
    """Held-out MLM cross-entropy (mean over masked tokens) at BERT's 15% (80/10/10) on the
    first N of `rows` for every N in `row_counts` (at most all of them) and every masking
    seed in `mask_seeds`: `{str(N): {str(seed): loss}}`. The masks of a seed are drawn once,
    batch by batch over the first max(N) rows, so every model sees the same masks and a
    smaller N is a prefix of a larger one; eval mode, no gradients."""
    if len(rows) == 0:
        return {}
    top = min(len(rows), max(row_counts))
    rows = rows[:top]
    specials = list(range(5))  # [PAD] [UNK] [CLS] [SEP] [MASK] of the CRAM tokenizer
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    grid: dict[str, dict[str, float]] = {str(min(n, top)): {} for n in row_counts}
    with torch.no_grad(), precision_context(precision, device):
        for seed in mask_seeds:
            g = torch.Generator().manual_seed(int(seed))
            sums, counts = torch.zeros(top, dtype=torch.float64), torch.zeros(top)
            for i in range(0, top, batch):
                inputs, labels = mask_tokens(rows[i:i + batch], rate, specials, 4, vocab_size,
                                             generator=g)
                logits = masked_logits(model, inputs.to(device), labels).float()
                targets = labels.reshape(-1)[labels.reshape(-1) != IGNORE].to(device)
                token = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
                owner = (labels != IGNORE).nonzero()[:, 0] + i
                sums.index_add_(0, owner, token.double().cpu())
                counts.index_add_(0, owner, torch.ones(len(owner)))
            for n in grid:
                grid[n][str(seed)] = float(sums[:int(n)].sum() / counts[:int(n)].sum().clamp(min=1))
    model.train(was)
    return grid


_INPUTS: dict[str, Any] = {}  # BLiMP pairs and word filters read once per process


def lmeval_scores(model: nn.Module, tokenizer: Any, settings: Mapping[str, Any]
                  ) -> dict[str, Any]:
    """BLiMP (overall %, PLL-word-l2r) and the SST-2 / STS-B linear probes of `model` from
    `hasten.pretrain.lmeval` (`settings` are `EvalLMConfig` fields; the MLM loss is the
    ladder's own, on its held-out books). Returns the metrics and the details a bootstrap
    needs (per-pair correctness, the BLiMP interval, pair counts, seconds)."""
    config = resolve(EvalLMConfig, flags={"evals": ["blimp", "probes"], **settings})
    key = json.dumps([config.blimp_pairs, config.blimp_full, config.vocab_corpus,
                      config.blimp_dir], default=str)
    if key not in _INPUTS:
        _INPUTS[key] = read_inputs(config)
    device = next(model.parameters()).device
    lm = wrap_lm(model, tokenizer, device=device, precision=config.precision)
    res = evaluate_lm(lm, config, inputs=_INPUTS[key])
    keep = ("blimp", "probe_sst2", "probe_stsb", "probe_stsb_pearson", "blimp_interval",
            "blimp_by_paradigm", "blimp_pairs", "items", "seconds", "not_applicable")
    return {k: res[k] for k in keep if k in res}


def evaluate_checkpoint(model: nn.Module, tokenizer: Any, heldout: torch.Tensor, *,
                        rows: int = 4096, mask_seeds: Sequence[int] = (1234,),
                        grid_rows: Sequence[int] = (), precision: str = "bf16",
                        lmeval: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ladder's metrics of a model: `mlm_loss_15`, the held-out MLM loss at 15% with
    fixed masks, averaged over `mask_seeds`, on the first `rows` of `heldout` (rows in the
    order of `order_heldout`; None for ELECTRA, whose discriminator has no MLM head), and
    `blimp`, `probe_sst2`, `probe_stsb` from `lmeval_scores` (ELECTRA: of its
    discriminator). `lmeval` passes settings to it. The evaluation's details (BLiMP
    intervals, the loss at each of `grid_rows` x `mask_seeds` as `mlm_loss_grid`) come back
    under `details`, apart from the numbers."""
    out: dict[str, Any] = dict.fromkeys(METRICS)
    is_electra = isinstance(model, ElectraModel)
    grid: dict[str, dict[str, float]] = {}
    if not is_electra:
        grid = heldout_loss_grid(model, heldout, tokenizer.get_vocab_size(),
                                 row_counts=sorted({*grid_rows, rows}), mask_seeds=mask_seeds,
                                 precision=precision)
        at = grid.get(str(min(rows, len(heldout))), {})
        out["mlm_loss_15"] = float(np.mean(list(at.values()))) if at else None
    target = model.discriminator if is_electra else model
    details = lmeval_scores(target, tokenizer, lmeval or {})
    for k in METRICS:
        if details.get(k) is not None:
            out[k] = float(details.pop(k))
    out["details"] = {**details, "mlm_loss_grid": grid} if grid else details
    return out


# -----------------------------------------------------------------------------
# records and results


def make_record(*, task: str, method: str, seed: int, metric: str, metrics: Mapping[str, Any],
                result: Any | None, key: str, notes: Mapping[str, Any],
                extra: Mapping[str, Any]) -> dict[str, Any]:
    """One run in the harness's layout. `result` is the trainer's `RunResult` (None for a
    row that does not train); the curve is the run's one end point of `metric`, since the
    metric is measured after training (the training loss curve is in `notes`)."""
    final = metrics.get(metric)
    work = dict(result.work) if result is not None else {"steps": 0, "flops": 0.0,
                                                          "tokens": 0}
    ledger = dict(result.ledger) if result is not None else {"train": 0.0}
    seconds = float(ledger.get("train", 0.0))
    report_rows = {k: v for k, v in metrics.items() if k != metric}
    return {
        "task": task, "method": method, "seed": seed, "metric": metric,
        "higher_is_better": metric != "mlm_loss_15", "final": final,
        "metrics": dict(metrics), "train_seconds": seconds, "work": work,
        "curve": [[seconds, work, final]] if final is not None else [],
        "ledger": ledger, "steps": work.get("steps", 0),
        "stopped": result.stopped if result is not None else "not trained",
        "budget": extra.get("budget"), "overhead_seconds": 0.0, "overhead_flops": 0.0,
        "notes": {**notes, "report_rows": report_rows}, "key": key,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra,
    }


def assemble(suite: str, records: Sequence[Mapping[str, Any]], *, baseline: str,
             options: Mapping[str, Any], methods: Sequence[str],
             command: str | None = None) -> dict[str, Any]:
    """The suite's results dict (harness layout, targets filled) from finished records."""
    runs = [{**r, "baseline": baseline} for r in records]
    results = {"suite": suite, **provenance(command), "quick": False,
               "seeds": len({r["seed"] for r in runs}), "first_seed": 0, "margin": 0.0,
               "suite_methods": list(methods), "options": dict(options), "runs": runs}
    return fill_targets(results, margins={r["task"]: 0.0 for r in runs})


def write_results(results: Mapping[str, Any], out_dir: Path, title: str = "",
                  notes: Sequence[str] = ()) -> dict[str, Path]:
    """results.json, report.md and curves.png (`hasten.bench.report.write_report`)."""
    return write_report(results, out_dir)


def rich_table(results: Mapping[str, Any], title: str = "") -> Any:
    """The report's tables as one `rich` group, for a terminal."""
    return Group(*rich_tables(results))


def finished_records(out_dir: Path) -> list[dict[str, Any]]:
    """Every record.json under `out_dir` (rows finished by any process), in path order."""
    found = []
    for path in sorted(out_dir.glob(f"*/*/{RECORD}")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def say_nothing(line: str) -> None:
    return None


Say = Callable[[str], None]
