"""The data-pruning suite: score every example, keep a fraction, train on it, count the cost.

Task `fashion-prune`: Fashion-MNIST (60,000 training images), an MLP (784-256-256-10) trained
20 epochs with AdamW, one-cycle LR, bf16 autocast. A pruned run trains the same 20 epochs over
its subset (the DeepCore protocol: a fixed number of epochs on the coreset), so its training
time shrinks with the keep fraction; the scoring time is charged to it as overhead, so
"relative time" is the real end-to-end cost of reaching the full-data quality.

Methods `SCORER-KEEP` for KEEP in 0.9, 0.7, 0.5, 0.3, 0.1:
  random       a uniform subset (the baseline every pruning paper must beat)
  el2n         keep the highest EL2N, per class; EL2N after 2 epochs, mean of 4 proxies
               (Paul et al. 2021: epoch 20 of 200, averaged over runs)
  forgetting   keep the most forgotten, per class; 10 epochs of dynamics (Toneva et al. 2019)
  aum          keep the lowest area under the margin, per class; 10 epochs (Pleiss et al. 2020)
  prototypes   keep the farthest from their k-means centroid (k = 10), per class; features of
               a 2-epoch proxy (Sorscher et al. 2022)
  ccs          Coverage-centric Coreset Selection on AUM (Zheng et al. 2023): drop the beta
               lowest-AUM fraction, then sample evenly over 50 equal-width AUM strata; beta
               0 / 0 / 0.1 / 0.2 / 0.3 at keep 0.9 / 0.7 / 0.5 / 0.3 / 0.1 (the paper uses
               0.3 at 90% pruning on CIFAR-10; the steps in between are hasten's choice)
  ccs-el2n     CCS's coverage sampling over 50 equal-width strata of the EL2N scores above,
               no cutoff (beta 0). Added after a one-seed exploration of seven selection
               rules at keep 0.5 (seed 0, test accuracy; see docs/benchmarks.md)
Proxies are the task's own model and recipe. Scores are computed once per (scorer, seed)
and reused across keep fractions, but every row is charged the full scoring time (a user
pruning once pays it once).

Static pruning is paid once and repaid over every later training on the kept subset, so the
table has a row "break-even trainings" (`break_even_rows`): the scoring seconds over the time
to target a training on the subset saves (the baseline's median time to target less the
run's own, without its scoring), from the measured times of the record; n/a where the run
or the baseline never reached the target, or the subset was not faster. Also registered,
outside the suite's default runs: `el2n-first-epoch-KEEP`, EL2N recorded during one epoch of
training the task's model (`hasten.select.amortise.first_epoch_el2n`), charged that epoch.

Results: docs/benchmarks.md, "Static pruning: keep 0.5 matches full data but scoring costs more
than it saves".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from hasten.bench.harness import Recipe, Suite, register_method, register_suite, register_task
from hasten.bench.vision import CLASSIFICATION_TASKS, _data, _recipe
from hasten.core.trainer import TrainConfig
from hasten.models.vision import build_model
from hasten.select.amortise import break_even
from hasten.select.per_example import Scores
from hasten.select.scorers import ScoringSpec, score
from hasten.select.selectors import ccs, class_balanced, keep_random

KEEPS = (0.9, 0.7, 0.5, 0.3, 0.1)
CCS_BETA = {0.9: 0.0, 0.7: 0.0, 0.5: 0.1, 0.3: 0.2, 0.1: 0.3}


@dataclass(frozen=True)
class PruneTask:
    """A pruning workload: the model, its recipe, and how each scorer trains its proxies."""

    model: tuple[str, dict[str, Any]]
    epochs: int
    recipe: dict[str, Any]
    scoring: dict[str, tuple[dict[str, Any], dict[str, Any]]]  # scorer -> (spec, options)


PRUNE_TASKS = {
    "fashion-prune": PruneTask(
        model=("mlp", {"hidden": (256, 256)}), epochs=20,
        recipe={"lr": 2e-3, "weight_decay": 0.05, "micro_batch": 256, "precision": "bf16"},
        scoring={"el2n": ({"epochs": 2, "runs": 4}, {}), "forgetting": ({"epochs": 10}, {}),
                 "aum": ({"epochs": 10}, {}), "prototypes": ({"epochs": 2}, {"k": 10}),
                 "el2n-first-epoch": ({"epochs": 1}, {})}),
    # the same protocol with a small ConvNet: 8 epochs, scorers at the same fractions
    "fashion-prune-cnn": PruneTask(
        model=("convnet3", {"width": 32, "depth": 2}), epochs=8,
        recipe={"lr": 2e-3, "weight_decay": 0.05, "micro_batch": 256, "precision": "bf16"},
        scoring={"el2n": ({"epochs": 1, "runs": 2}, {}), "forgetting": ({"epochs": 4}, {}),
                 "aum": ({"epochs": 4}, {}), "prototypes": ({"epochs": 1}, {"k": 10}),
                 "el2n-first-epoch": ({"epochs": 1}, {})}),
}
_cache: dict[tuple[str, str, int, bool], Scores] = {}


def _prune_task(name: str):
    def task(seed: int, quick: bool) -> Recipe:
        t = PRUNE_TASKS[name]
        data = _data("fashion-mnist")
        test = data.test
        if quick:
            test = TensorDataset(*(v[:2000] for v in test.tensors))
        epochs = 2 if quick else t.epochs
        cfg = TrainConfig(budget=f"{epochs * len(data.train)}ex", schedule="one-cycle",
                          schedule_params={"peak_at": 0.2}, eval_every=0.05, **t.recipe)
        model, kw = t.model
        recipe = _recipe(data, test, model, cfg, seed, **kw)
        recipe.notes.update(epochs=epochs, quick=quick, prune_task=name)
        return recipe
    task.__doc__ = f"the full-data baseline of {name} (quick: 2 epochs, 2,000 test images)"
    return task


for _name in PRUNE_TASKS:
    register_task(_name)(_prune_task(_name))
CLASSIFICATION_TASKS.update(PRUNE_TASKS)


def scores_for(scorer: str, seed: int, quick: bool, task: str = "fashion-prune") -> Scores:
    """`task`'s scores by `scorer` for `seed`, computed on first use."""
    key = (task, scorer, seed, quick)
    if key not in _cache:
        t = PRUNE_TASKS[task]
        data = _data("fashion-mnist")
        name, kw = t.model
        fields, options = t.scoring[scorer]
        if quick:
            fields = {**fields, "epochs": 1, "runs": 1}
        spec = ScoringSpec(make_model=lambda: build_model(name, data, **kw), seed=seed,
                           lr=t.recipe["lr"], weight_decay=t.recipe["weight_decay"],
                           batch_size=t.recipe["micro_batch"], precision=t.recipe["precision"],
                           **fields)
        _cache[key] = score(scorer, data.train, spec, **options)
    return _cache[key]


def _keep_subset(recipe: Recipe, kept: np.ndarray, scores: Scores | None, rule: str) -> Recipe:
    """Train on rows `kept` for the same epochs; charge the scoring time as overhead."""
    full = recipe.train_data
    x, y = full.tensors
    idx = torch.as_tensor(kept, dtype=torch.long)
    recipe.train_data = TensorDataset(x[idx], y[idx])  # a copy: no per-item Subset gathering
    epochs = recipe.notes["epochs"]
    recipe.config.budget = f"{epochs * len(kept)}ex"
    recipe.overhead_seconds += scores.seconds if scores is not None else 0.0
    recipe.notes.update({
        "kept": len(kept), "keep": len(kept) / len(full), "rule": rule,
        "scoring_seconds": scores.seconds if scores is not None else 0.0,
        "scoring_work": scores.work if scores is not None else {},
        "scorer": scores.name if scores is not None else "random",
        "scoring_settings": scores.meta if scores is not None else {}})
    return recipe


def _pruning_method(scorer: str, keep: float):
    def method(recipe: Recipe) -> Recipe:
        seed, quick = recipe.config.seed, recipe.notes["quick"]
        task = recipe.notes["prune_task"]
        labels = recipe.train_data.tensors[1].numpy()
        if scorer == "random":
            kept = keep_random(len(labels), keep, seed=seed)
            return _keep_subset(recipe, kept, None, "uniform")
        if scorer == "ccs":
            s = scores_for("aum", seed, quick, task)
            beta = CCS_BETA[keep]
            kept = ccs(s, keep, beta=beta, strata=50, seed=seed)
            return _keep_subset(recipe, kept, s, f"ccs on aum, beta {beta}, 50 strata")
        if scorer == "ccs-el2n":
            s = scores_for("el2n", seed, quick, task)
            kept = ccs(s, keep, beta=0.0, strata=50, seed=seed)
            return _keep_subset(recipe, kept, s, "ccs on el2n, beta 0, 50 strata")
        s = scores_for(scorer, seed, quick, task)
        kept = class_balanced(s, labels, keep, which="hardest")
        return _keep_subset(recipe, kept, s, "hardest per class")
    method.__doc__ = f"train on {keep:g} of the data chosen by {scorer}"
    return method


SCORER_NAMES = ("random", "el2n", "forgetting", "aum", "ccs", "ccs-el2n", "prototypes")
for _scorer in (*SCORER_NAMES, "el2n-first-epoch"):
    for _keep in KEEPS:
        register_method(f"{_scorer}-{_keep:g}", applies=PRUNE_TASKS)(
            _pruning_method(_scorer, _keep))

BREAK_EVEN_ROW = "break-even trainings"


def break_even_rows(results: dict[str, Any]) -> None:
    """Add to each run other than its task's baseline the report row "break-even
    trainings": `break_even(scoring seconds, baseline's median time to target, the run's time
    to target less its scoring)`; None where either never reached the target or the subset
    was not faster. Targets must be filled (the harness calls this after `fill_targets`)."""
    runs = results.get("runs") or []
    for task in dict.fromkeys(r.get("task") for r in runs):
        mine = [r for r in runs if r.get("task") == task]
        times = [r["time_to_target"] for r in mine if r.get("method") == r.get("baseline")
                 and r.get("time_to_target") is not None]
        full = statistics.median(times) if times else None
        for run in mine:
            if run.get("method") == run.get("baseline"):
                continue
            value, reached = None, run.get("time_to_target")
            if full is not None and reached is not None:
                scoring = float(run.get("overhead_seconds") or 0.0)
                value = break_even(scoring, full, max(0.0, reached - scoring))
            rows = run.setdefault("notes", {}).setdefault("report_rows", {})
            rows[BREAK_EVEN_ROW] = value if value is not None and math.isfinite(value) else None


register_suite(Suite(
    name="prune", tasks=["fashion-prune"],
    methods=["baseline"] + [f"{s}-{k:g}" for k in KEEPS for s in SCORER_NAMES],
    margin=0.5, after_run=break_even_rows,
    description="data pruning: keep fractions x scorers, scoring time charged"))
