"""The evaluation of `hasten tune`: on four tasks of different kinds, a 20-minute budget on
one core, three arms side by side and, on two of them, an oracle.

  baseline             the task's recipe at the budget
  throughput-autotune  micro-batch and precision chosen by speed alone
                       (`hasten.tuning.throughput`), its measuring time charged
  tuned                `hasten tune` in a tenth of the budget, then the chosen levers for the
                       rest; the tuning's whole wall time charged
  oracle               (fashion-mnist and sst2-small, run apart: `--methods oracle`) the
                       fastest configuration of the lever stack's test phase
                       (`hasten.bench.tune_oracle`), nothing charged for choosing it

Each arm's curve starts when its measuring ends (the charged seconds are added to its curve),
so its time to the baseline's final quality (target margin 0) counts the tuning. Tasks:
`fashion-mnist` (ConvNet-3), `sst2-small` (a small encoder), `mt-en-de` (a small
Transformer), `shakespeare-char` (a character decoder, bits per character). The plan and its
decision rule: benchmarks/plans/tune.md. Where it is shown: docs/tune.md, "How well it
chooses".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

import hasten.bench.charlm  # noqa: F401  (registers the character task)
import hasten.bench.mt  # noqa: F401  (registers the translation tasks)
import hasten.bench.sst2  # noqa: F401  (registers the SST-2 tasks)
import hasten.bench.vision  # noqa: F401  (registers the vision tasks)
from hasten.bench.evidence import plan_line
from hasten.bench.harness import Recipe, Suite, register_method, register_suite
from hasten.bench.tune_oracle import STACK_VERDICTS, apply_oracle
from hasten.bench.tune_verdict import tune_verdict
from hasten.levers import apply_levers
from hasten.tuning.throughput import throughput_autotune
from hasten.tuning.tuner import tune

SHARE = 0.1  # the pilot share of the budget, hasten tune's default
TASKS = ["fashion-mnist", "sst2-small", "mt-en-de", "shakespeare-char"]
REPORT_KEYS = ("verdicts", "costs", "pilots", "refused", "not_piloted")  # of tune.json


def recipe_fingerprint(recipe: Recipe) -> str:
    """The plan's check that a task's recipe is the one it fixed: sha256 of the TrainConfig
    (less the budget, seed and quiet flag the harness sets per run), the model's repr and the
    training-set size, as the task builds them; the first 16 hex digits."""
    cfg = {k: v for k, v in dataclasses.asdict(recipe.config).items()
           if k not in ("budget", "seed", "quiet")}
    text = "\n".join([json.dumps(cfg, sort_keys=True, default=str), repr(recipe.model),
                      str(len(recipe.train_data))])  # type: ignore[arg-type]
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fingerprinted(recipe: Recipe, method: str = "") -> Recipe:
    if "recipe_fingerprint" not in recipe.notes:  # taken before the method changed it
        recipe.notes["recipe_fingerprint"] = recipe_fingerprint(recipe)
    return recipe


def _charged(recipe: Recipe, choices: dict) -> Recipe:
    apply_levers(recipe, choices["levers"])
    recipe.config.budget = choices["train_budget"]
    recipe.overhead_seconds += choices["tune_seconds"]
    recipe.notes["tune"] = {k: v for k, v in choices.items() if k != "measurements"}
    return recipe


@register_method("tuned")
def tuned(recipe: Recipe) -> Recipe:
    """`hasten tune` in a tenth of the budget (charged), then the chosen levers; the tuner's
    evidence (each lever's verdict, step costs, pilot losses, refusals) kept in the run's
    notes as `tune_report`, so a record shows why each lever was kept or not."""
    _fingerprinted(recipe)
    with tempfile.TemporaryDirectory() as out:
        choices = tune(recipe, recipe.config.budget, pilot_share=SHARE,
                       seed=recipe.config.seed, out=out)
        report = json.loads((Path(out) / "tune.json").read_text())
    recipe.notes["tune_report"] = {k: report[k] for k in REPORT_KEYS}
    return _charged(recipe, choices)


@register_method("throughput-autotune")
def throughput(recipe: Recipe) -> Recipe:
    """Micro-batch and precision chosen by speed alone (charged), then trained."""
    _fingerprinted(recipe)
    choices = throughput_autotune(recipe, recipe.config.budget, seed=recipe.config.seed)
    return _charged(recipe, choices)


@register_method("oracle", applies=STACK_VERDICTS.__contains__)
def oracle(recipe: Recipe) -> Recipe:
    """The fastest configuration of the lever stack's test phase on this task
    (`hasten.bench.tune_oracle`), its choosing not charged: the plan's item 3."""
    _fingerprinted(recipe)
    return apply_oracle(recipe, recipe.notes["dataset"])


def plan_verdict(results: dict) -> tuple[int, list[str]]:
    """The record's plan status (planned only when git shows the plan committed before the
    runs), then the plan's rule on the parts the record holds (`hasten.bench.tune_verdict`:
    "incomplete" until all twelve are joined)."""
    _, lines = tune_verdict(results.get("runs") or [])
    return 0, [plan_line(results), *lines]


register_suite(Suite(
    name="tune", tasks=list(TASKS), methods=["baseline", "throughput-autotune", "tuned"],
    margin=0.0, budgets={t: "1200s" for t in TASKS}, quick_budgets={t: "30s" for t in TASKS},
    prepare=_fingerprinted,  # the baseline's recipe as the task built it; the others' before
    verdict=plan_verdict,
    description="hasten tune vs a throughput-only autotune vs the baseline at 20 minutes"))
