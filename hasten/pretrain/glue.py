"""`hasten glue`: GLUE-small evaluation of a pretrained encoder, Cramming's "sane" rules.

Cramming (Geiping & Goldstein 2022, "Cramming: Training a Language Model on a Single GPU in
One Day") evaluates every crammed model with one global fine-tuning setting for all tasks
(`eval=GLUE_sane`) and reports the median over 5 fine-tuning seeds on the dev sets. This
module does the same for the five small GLUE tasks stored under `shared/data/glue` (tasks,
readers and metrics: `hasten.pretrain.lmeval.glue_tasks`).

Global settings (`GlueSettings`, from Cramming's `GLUE_sane.yaml`): AdamW lr 4e-5, betas
(0.9, 0.98), eps 1e-6, weight decay 0, batch 16, 5 epochs, cosine decay after 10% warmup, max
length 128. The model is `AutoModelForSequenceClassification` on the folder, so any local HF
encoder works, and so do `hasten cram` exports (ModernBERT or BERT): the head is the model
class's own, on the first ([CLS]) token: BERT's pooler (dense + tanh), ModernBERT's head
(dense + GELU + norm; `pooling="mean"` switches ModernBERT to mean pooling). Dropout is the
folder's config (our crammed exports have none; Cramming fine-tunes with 0.1): a departure
from the paper kept on purpose, so the exported model is what is scored.

Tasks run in parallel subprocesses with `jobs > 1` (each with its share of the cores; results
come back as JSON files, nothing is pickled). Results are shown in docs/benchmarks.md,
"MLM recipe (Cramming): more tokens in equal time, no GLUE-small difference".
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console

from hasten.core.atomic import atomic_write
from hasten.core.config import option
from hasten.core.distributed import default_device, resolve_device
from hasten.core.errors import CheckpointError, ConfigError, DataError, HastenError
from hasten.core.schedules import cosine
from hasten.core.trainer import param_groups, precision_context
from hasten.pretrain.lmeval.glue_tasks import (  # noqa: F401 (re-exported: hasten.pretrain.glue's public names)
    TASKS,
    Task,
    accuracy,
    f1_binary,
    glue_root,
    mcc,
    parse_tasks,
    pearson,
    read_task,
    score,
    spearman,
    task_file,
)

# -----------------------------------------------------------------------------
# fine-tuning


@dataclass
class GlueSettings:
    """One setting for every task (Cramming's GLUE_sane.yaml)."""

    lr: float = option(4e-5, "GLUE_sane's one learning rate for every task")
    betas: tuple[float, float] = option((0.9, 0.98), "GLUE_sane's AdamW betas")
    eps: float = option(1e-6, "GLUE_sane's AdamW epsilon")
    weight_decay: float = option(0.0, "GLUE_sane fine-tunes without weight decay")
    batch: int = option(16, "GLUE_sane's batch size")
    epochs: float = option(5.0, "GLUE_sane's 5 epochs per task")
    warmup: float = option(0.1, "fraction of the steps warming up, then cosine decay to 0")
    max_len: int = option(128, "the pretraining row length; few GLUE-small examples exceed it")
    pooling: str = option("cls", "ModernBERT's head on [CLS], as Cramming; BERT always uses its "
                          "[CLS] pooler", choices=("cls", "mean"))
    precision: str = option("fp32", "exact and reproducible; bf16 autocast is faster on a GPU",
                            choices=("fp32", "bf16"))
    max_train_examples: int | None = option(None, "every training example; a number subsamples "
                                            "(a fixed seed) for quick runs")
    max_eval_examples: int | None = option(None, "the whole dev set; a number subsamples")
    eval_batch: int = option(64, "no gradients at evaluation, so a larger batch than training")
    device: str | None = option(None, "cuda when available, else cpu")
    extra: dict[str, Any] = option({}, "free-form notes kept with the settings")

    def validate(self) -> None:
        if self.lr <= 0 or self.batch < 1 or self.epochs <= 0 or self.max_len < 8:
            raise ConfigError("lr, batch, epochs must be positive and max_len >= 8")
        if self.pooling not in ("cls", "mean"):
            raise ConfigError(f"pooling must be cls or mean, got {self.pooling!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16, got {self.precision!r}")
        for name in ("max_train_examples", "max_eval_examples"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")
        if self.device is not None:
            resolve_device(self.device)  # an unknown or missing device: one line, up front


def check_model_dir(model_dir: str | Path) -> Path:
    p = Path(model_dir)
    if not p.is_dir():
        raise CheckpointError(f"model folder not found: {p}")
    if not (p / "config.json").is_file():
        raise CheckpointError(f"{p}: no config.json (not a transformers model folder)")
    return p


def _load(model_dir: Path, task: Task, settings: GlueSettings) -> tuple[Any, Any]:
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(model_dir)
        config = AutoConfig.from_pretrained(model_dir, num_labels=task.num_labels)
        if config.model_type == "modernbert":
            config.classifier_pooling = settings.pooling
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, config=config)
    except (OSError, ValueError, KeyError) as e:
        msg = " ".join(str(e).split())[:200]
        raise CheckpointError(f"{model_dir}: cannot load as a sequence classifier ({msg})"
                              ) from None
    if tok.pad_token_id is None:
        raise CheckpointError(f"{model_dir}: the tokenizer has no pad token")
    return model, tok


def _encode(tok: Any, a: list[str], b: list[str] | None, max_len: int) -> list[dict]:
    enc = tok(a, b, truncation=True, max_length=max_len)
    keys = [k for k in ("input_ids", "token_type_ids") if k in enc]
    return [{k: enc[k][i] for k in keys} for i in range(len(a))]


def _collate(items: list[dict], pad_id: int, device: Any) -> dict[str, Any]:
    n = max(len(it["input_ids"]) for it in items)
    ids = torch.full((len(items), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), n), dtype=torch.long)
    types = torch.zeros((len(items), n), dtype=torch.long) if "token_type_ids" in items[0] \
        else None
    for i, it in enumerate(items):
        k = len(it["input_ids"])
        ids[i, :k] = torch.tensor(it["input_ids"])
        mask[i, :k] = 1
        if types is not None:
            types[i, :k] = torch.tensor(it["token_type_ids"])
    batch = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if types is not None:
        batch["token_type_ids"] = types.to(device)
    return batch


def _subset(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def finetune(model_dir: str | Path, task: str, seed: int, settings: GlueSettings,
             data_dir: str | Path | None = None) -> dict[str, Any]:
    """Fine-tune the folder's model on one task with one seed; dev-set metrics (x100)."""
    t = TASKS[task]
    settings.validate()
    path = check_model_dir(model_dir)
    a, b, y = read_task(task, "train", data_dir)
    da, db, dy = read_task(task, "dev", data_dir)
    keep = _subset(len(y), settings.max_train_examples)
    a, b, y = [a[i] for i in keep], None if b is None else [b[i] for i in keep], y[keep]
    keep = _subset(len(dy), settings.max_eval_examples)
    da, db, dy = [da[i] for i in keep], None if db is None else [db[i] for i in keep], dy[keep]
    t0 = time.perf_counter()
    torch.manual_seed(seed)  # the new head's initialisation
    model, tok = _load(path, t, settings)

    device = torch.device(settings.device or default_device())
    model.to(device)
    max_len = min(settings.max_len, int(getattr(tok, "model_max_length", 10**9) or 10**9),
                  int(getattr(model.config, "max_position_embeddings", 10**9)))
    train_items, dev_items = _encode(tok, a, b, max_len), _encode(tok, da, db, max_len)
    labels = torch.from_numpy(y)
    opt = torch.optim.AdamW(param_groups(model, settings.weight_decay), lr=settings.lr,
                            betas=tuple(settings.betas), eps=settings.eps)
    per_epoch = math.ceil(len(train_items) / settings.batch)
    total = max(1, math.ceil(settings.epochs * per_epoch))
    autocast = precision_context(settings.precision, device)
    gen = torch.Generator().manual_seed(seed)
    step, losses = 0, []
    model.train()
    while step < total:
        perm = torch.randperm(len(train_items), generator=gen).tolist()
        for start in range(0, len(perm), settings.batch):
            if step >= total:
                break
            idx = perm[start:start + settings.batch]
            batch = _collate([train_items[i] for i in idx], tok.pad_token_id, device)
            target = labels[idx].to(device)
            for g in opt.param_groups:
                g["lr"] = settings.lr * cosine(step / total, warmup=settings.warmup)
            with autocast:
                logits = model(**batch).logits.float()
            loss = (F.mse_loss(logits.squeeze(-1), target) if t.num_labels == 1
                    else F.cross_entropy(logits, target))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
    model.eval()
    order = np.argsort([len(it["input_ids"]) for it in dev_items], kind="stable")
    preds = np.empty(len(dev_items), dtype=np.float64)
    with torch.no_grad(), autocast:
        for start in range(0, len(order), settings.eval_batch):
            idx = order[start:start + settings.eval_batch]
            logits = model(**_collate([dev_items[i] for i in idx], tok.pad_token_id,
                                      device)).logits.float().cpu()
            preds[idx] = (logits.squeeze(-1) if t.num_labels == 1
                          else logits.argmax(-1)).numpy()
    if not np.all(np.isfinite(preds)):
        raise DataError(f"{task}: non-finite predictions (the fine-tuning diverged)")
    metrics = score(task, preds if t.num_labels == 1 else preds.astype(np.int64), dy)
    return {"task": task, "seed": seed, "metric": t.metric, "score": metrics[t.metric],
            "metrics": metrics, "steps": total, "train_examples": len(train_items),
            "eval_examples": len(dev_items),
            "final_train_loss": float(np.mean(losses[-10:])) if losses else None,
            "seconds": round(time.perf_counter() - t0, 3)}


def run_task(model_dir: str | Path, task: str, seeds: Sequence[int], settings: GlueSettings,
             data_dir: str | Path | None = None) -> dict[str, Any]:
    """Fine-tune one task with every seed; the median of the target metric and all runs."""
    runs = [finetune(model_dir, task, s, settings, data_dir) for s in seeds]
    scores = [r["score"] for r in runs]
    metrics = {k: float(np.median([r["metrics"][k] for r in runs])) for k in runs[0]["metrics"]}
    return {"metric": TASKS[task].metric, "score": float(np.median(scores)),
            "scores": scores, "median_metrics": metrics, "runs": runs}


# -----------------------------------------------------------------------------
# all tasks, optionally in parallel processes


def _worker(spec_file: str, out_file: str) -> int:
    """Subprocess entry: run one task from a JSON spec, write the JSON result."""
    spec = json.loads(Path(spec_file).read_text())
    settings = GlueSettings(**{**spec["settings"], "betas": tuple(spec["settings"]["betas"])})
    try:
        result = run_task(spec["model_dir"], spec["task"], spec["seeds"], settings,
                          spec["data_dir"])
    except HastenError as err:
        print(f"hasten: error: {err}", file=sys.stderr)
        return err.exit_code
    atomic_write(out_file, lambda fh: fh.write(json.dumps(result).encode()))
    return 0


def _run_parallel(model_dir: Path, tasks: list[str], seeds: list[int], settings: GlueSettings,
                  data_dir: str | Path | None, jobs: int,
                  say: Callable[[str], None]) -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                          os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    results: dict[str, Any] = {}
    running: dict[str, tuple[subprocess.Popen, Path, Any]] = {}
    pending = list(tasks)

    def start(task: str, tmp: Path) -> None:
        spec, out = tmp / f"{task}.spec.json", tmp / f"{task}.json"
        spec.write_text(json.dumps({"model_dir": str(model_dir), "task": task, "seeds": seeds,
                                    "settings": asdict(settings),
                                    "data_dir": None if data_dir is None else str(data_dir)}))
        log = open(tmp / f"{task}.stderr", "w+")
        proc = subprocess.Popen([sys.executable, "-m", "hasten.pretrain.glue", "worker", str(spec),
                                 str(out)], env=env, stdout=subprocess.DEVNULL, stderr=log)
        running[task] = (proc, out, log)

    def finish(task: str) -> None:
        proc, out, log = running.pop(task)
        log.seek(0)
        err = log.read()
        log.close()
        if proc.returncode != 0 or not out.is_file():
            lines = [ln for ln in err.strip().splitlines() if ln.strip()]
            last = lines[-1] if lines else f"exit code {proc.returncode}"
            if last.startswith("hasten: error: "):
                raise ConfigError(last[len("hasten: error: "):])
            raise RuntimeError(f"glue worker for {task} failed: {last}")
        results[task] = json.loads(out.read_text())
        say(_line(task, results[task]))

    with tempfile.TemporaryDirectory(prefix="hasten-glue-") as tmp:
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    start(pending.pop(0), Path(tmp))
                time.sleep(0.05)
                for task in [t for t, (p, _, _) in running.items() if p.poll() is not None]:
                    finish(task)
        finally:  # an error or Ctrl-C: stop the other workers
            for proc, _, log in running.values():
                proc.kill()
                proc.wait()
                log.close()
    return results


def _line(task: str, res: dict[str, Any]) -> str:
    seeds = ", ".join(f"{s:.1f}" for s in res["scores"])
    return f"{task:5s} {res['metric']:8s} {res['score']:6.2f}  (seeds: {seeds})"


def evaluate_glue(model_dir: str | Path, tasks: str | Sequence[str] | None = None,
                  seeds: int = 5, epochs: float = 5.0, max_train_examples: int | None = None,
                  jobs: int = 1, out: str | Path | None = None,
                  data_dir: str | Path | None = None, quiet: bool = True,
                  first_seed: int = 0, **settings: Any) -> dict[str, Any]:
    """Fine-tune and score `model_dir` on GLUE-small; median over `seeds` per task (seeds
    `first_seed`, `first_seed + 1`, ...).

    Returns {"tasks": {task: {metric, score, scores, ...}}, "average": mean of the task
    scores, "settings": ...} and writes it to `out` (JSON) if given. `settings` are other
    `GlueSettings` fields (lr, batch, max_eval_examples, precision, pooling, device, ...).
    """
    names = parse_tasks(tasks)
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    unknown = sorted(set(settings) - set(GlueSettings.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"unknown GLUE setting(s): {', '.join(unknown)}")
    cfg = GlueSettings(epochs=epochs, max_train_examples=max_train_examples, **settings)
    cfg.validate()
    path = check_model_dir(model_dir)
    for t in names:  # fail before any fine-tuning if a file is missing
        for split in ("train", "dev"):
            task_file(t, split, data_dir)
    if quiet:
        say: Callable[[str], None] = lambda line: None
    else:
        console = Console(stderr=True)
        say = lambda line: console.print(f"[bold magenta]glue[/] {line}", highlight=False)
    if first_seed < 0:
        raise ConfigError(f"first_seed must be >= 0, got {first_seed}")
    seed_list = list(range(first_seed, first_seed + seeds))
    t0 = time.perf_counter()
    jobs = min(jobs, len(names))
    if jobs == 1:
        results = {}
        for t in names:
            results[t] = run_task(path, t, seed_list, cfg, data_dir)
            say(_line(t, results[t]))
    else:
        results = _run_parallel(path, names, seed_list, cfg, data_dir, jobs, say)
    results = {t: results[t] for t in names}
    average = float(np.mean([r["score"] for r in results.values()]))
    summary = {
        "model": str(path), "tasks": results, "average": average,
        "scores": {t: r["score"] for t, r in results.items()},
        "settings": {**asdict(cfg), "seeds": seeds, "jobs": jobs,
                     "aggregate": "median over seeds, mean over tasks"},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    say(f"average {average:.2f} over {len(names)} task(s)")
    if out is not None:
        atomic_write(out, lambda fh: fh.write(json.dumps(summary, indent=1).encode()))
    return summary


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "worker":
        raise SystemExit(_worker(sys.argv[2], sys.argv[3]))
    print("usage: python -m hasten.pretrain.glue worker SPEC.json OUT.json (use `hasten glue`)",
          file=sys.stderr)
    raise SystemExit(2)
