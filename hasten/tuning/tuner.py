"""`hasten tune`: choose the levers for one task within a pilot share of its budget.

    choices = tune(task_or_recipe, "20m", pilot_share=0.1, out="runs/tune")
    # then: hasten train --task T --choices runs/tune/choices.json  (the budget left)

The whole wall time of the tuning (set-up, timings, pilots, their scoring) stays within
`pilot_share` x the budget, and is charged to the training that follows: `choices.json` names
the budget left (`train_budget`). In that time, in order:

1. Candidates: the step levers (bf16, the AdamW kernels, channels-last for images, compile when
   the budget is long enough to repay it) and the data levers (InfoBatch, sb-topk, a
   curriculum where the task declares a difficulty, half the micro-batch); a lever the task
   cannot support is refused with its own one-line reason and listed so.
2. Step costs, in at most a third of the share: each step lever timed against the baseline in
   alternation (`ALTERNATIONS` pairs of `STEPS`-step runs), a cost ratio per pair.
3. Pilots in the rest: the baseline at two seeds and each data lever at one, each at two
   lengths L and 2L of training time, L sized so they all fit; scored by validation loss on
   rows held out from the training data (`hasten.tuning.runner`), never the test split.
4. Decisions (`hasten.tuning.decide`): a step lever stays when it is cheaper in every
   alternation's interquartile range; a data lever when its gain at 2L and its gain carried
   along its L -> 2L trend both exceed the baseline's seed spread (the correction for short
   pilots favouring levers that help early). None kept: the baseline.
5. `choices.json` (the lever list), `tune.md` (each lever: what was measured, the decision and
   why, the expected time ratio), `tune.json` (every measurement).

Every measurement is saved as it finishes (`tune-state.json`), so an interrupted tune resumed
with the same settings repeats nothing and ends with the same choices. Where it is shown:
docs/tune.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hasten.core.budget import Budget, seconds_spec
from hasten.core.errors import ConfigError
from hasten.core.recipe import Recipe
from hasten.core.state_file import load_state, save_state
from hasten.levers import check_combination, parse_lever, parse_levers, save_choices
from hasten.tuning.decide import data_verdict, step_verdict
from hasten.tuning.report import write_report
from hasten.tuning.runner import RecipeRunner, recipe_maker

ALTERNATIONS = 3  # baseline / lever pairs per step lever
STEPS = 6  # steps per timed run
STEP_SHARE = 1 / 3  # of the pilot share, at most, for step costs
COMPILE_MIN_SECONDS = 600.0  # below this budget compile cannot repay its compile time here
MIN_PILOT = 0.5  # seconds: a shorter pilot measures start-up more than training


def candidates(recipe: Recipe, budget: Budget, levers: Sequence[str] | None
               ) -> tuple[list[str], list[str], dict[str, str]]:
    """(step levers, data levers, refused: lever -> its reason) for this task."""
    if levers is None:
        step = ["bf16", "adamw:impl=fused", "adamw:impl=foreach", "channels-last"]
        if budget.amount >= COMPILE_MIN_SECONDS:
            step.append("compile")
        half = max(1, recipe.config.micro_batch // 2)
        data = ["infobatch", "sb-topk", "curriculum", f"micro-batch:size={half}"]
    else:
        chosen = parse_levers(list(levers))
        step = [x.spec() for x in chosen if x.kind == "step" and x.name != "micro-batch"]
        data = [x.spec() for x in chosen if x.kind == "data" or x.name == "micro-batch"]
    refused = {}
    for spec in [*step, *data]:
        lever = parse_lever(spec)
        reason = lever.refusal(recipe)
        if lever.name == "channels-last" and not _has_images(recipe):
            reason = "lever 'channels-last' acts on 4-d image batches; this task has none"
        if reason is not None:
            refused[spec] = reason
    return ([s for s in step if s not in refused], [s for s in data if s not in refused],
            refused)


def _has_images(recipe: Recipe) -> bool:
    item = recipe.train_data[0]
    first = item[0] if isinstance(item, (tuple, list)) else item
    return hasattr(first, "dim") and first.dim() == 3


class Tuner:
    """One tuning: its clock, its saved measurements, its progress lines."""

    def __init__(self, runner: Any, budget: Budget, share: float, out: Path | None,
                 clock: Callable[[], float], say: Callable[[str], None], resume: bool):
        self.runner, self.budget, self.out, self.clock, self.say = runner, budget, out, clock, say
        self.allowance = share * budget.amount
        saved = load_state(out, "tune-state") if out is not None and resume else None
        self.done: dict[str, Any] = dict(saved["done"]) if saved else {}
        self.before = float(saved["elapsed"]) if saved else 0.0
        self.started = clock()
        self.durations: dict[str, float] = dict(saved["durations"]) if saved else {}

    def elapsed(self) -> float:
        return self.before + self.clock() - self.started

    def left(self) -> float:
        return self.allowance - self.elapsed()

    def measure(self, key: str, kind: str, run: Callable[[], Any]) -> Any:
        """`run()`'s value, saved under `key` (a resumed tune reads it back)."""
        if key in self.done:
            return self.done[key]
        self.say(f"[tune] {key} ({self.elapsed():.0f} of {self.allowance:.0f} s)")
        t0 = self.clock()
        self.done[key] = run()
        self.durations[kind] = self.clock() - t0
        if self.out is not None:
            save_state({"done": self.done, "elapsed": self.elapsed(),
                        "durations": self.durations}, self.out, "tune-state")
        return self.done[key]

    def overhead(self, kind: str) -> float:
        """Seconds an item of `kind` costs beyond its own training: measured on the last one
        (its duration less its training), else 1.5 x the time one recipe took to build."""
        return self.durations.get(f"{kind}-overhead", 1.5 * self.durations.get("build", 0.0))

    def fits(self, kind: str, training: float, limit: float | None = None) -> bool:
        """Whether one more item of `kind` with `training` seconds of training ends within
        `limit` seconds of tuning (default: the whole allowance)."""
        end = self.elapsed() + self.overhead(kind) + training
        return end <= (self.allowance if limit is None else limit)


def step_costs(t: Tuner, step: list[str]) -> dict[str, dict[str, Any]]:
    """Alternating timed runs of each step lever against the baseline, while a third of the
    allowance lasts."""
    limit = STEP_SHARE * t.allowance
    out: dict[str, dict[str, Any]] = {}
    for spec in step:
        ratios, compiled = [], 0.0
        for a in range(ALTERNATIONS):
            keys = (f"cost:baseline:{spec}:{a}", f"cost:{spec}:{a}")
            guess = 2 * STEPS * t.durations.get("step", 0.0)
            if not (keys[1] in t.done or t.fits("cost", guess, limit)):
                break
            base = _timed_run(t, keys[0], [])
            mine = _timed_run(t, keys[1], [spec])
            ratios.append(mine["per_step"] / base["per_step"])
            compiled = max(compiled, mine.get("compile", 0.0))
        out[spec] = {"ratios": ratios, "compile_seconds": compiled}
    return out


def _timed_run(t: Tuner, key: str, levers: list[str]) -> dict[str, float]:
    started = t.clock()
    fresh = key not in t.done
    cost = t.measure(key, "cost", lambda: t.runner.step_cost(levers, STEPS))
    if fresh:
        trained = STEPS * cost["per_step"] + cost.get("compile", 0.0)
        t.durations["cost-overhead"] = max(0.0, t.clock() - started - trained)
        t.durations["step"] = cost["per_step"]
    return cost


def pilot_length(t: Tuner, items: int) -> float:
    """L such that `items` pilots at L and at 2L (each with its overhead) fit."""
    return (t.left() - items * 2 * t.overhead("pilot")) / (3 * items)


def _pilot(t: Tuner, key: str, levers: list[str], seconds: float, seed: int) -> float | None:
    """One pilot's validation loss, or None when it no longer fits in the allowance."""
    if key not in t.done and not t.fits("pilot", seconds):
        return None
    started = t.clock()
    fresh = key not in t.done
    loss = t.measure(key, "pilot", lambda: t.runner.pilot(levers, seconds, seed))
    if fresh:
        t.durations["pilot-overhead"] = max(0.0, t.clock() - started - seconds)
    return loss


def pilots(t: Tuner, data: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Pilots of the baseline (two seeds) and each data lever (one) at L and 2L; the levers
    left out for want of time."""
    base_seeds = (0, 1)
    chosen = list(data)
    if "pilot-overhead" not in t.durations and chosen:  # one tiny pilot: what a pilot's
        _pilot(t, "pilot:probe", [], MIN_PILOT, 0)     # set-up and scoring cost here
    length = t.done.get("pilot-length") or pilot_length(t, len(base_seeds) + len(chosen))
    while chosen and length < MIN_PILOT and "pilot-length" not in t.done:
        chosen.pop()  # the last candidate is the least likely to pay
        length = pilot_length(t, len(base_seeds) + len(chosen))
    if length < MIN_PILOT:
        return {"length": 0.0, "baseline": None, "levers": {}}, list(data)
    t.done["pilot-length"] = length
    base: dict[str, list[float]] = {"short": [], "long": []}
    for which, scale in (("short", 1), ("long", 2)):
        for seed in base_seeds:
            loss = _pilot(t, f"pilot:baseline:{which}:{seed}", [], scale * length, seed)
            if loss is None:
                return {"length": length, "baseline": None, "levers": {}}, list(data)
            base[which].append(loss)
    runs: dict[str, Any] = {"length": length, "baseline": base, "levers": {}}
    for spec in chosen:
        short = _pilot(t, f"pilot:{spec}:short", [spec], length, 0)
        long = (_pilot(t, f"pilot:{spec}:long", [spec], 2 * length, 0) if short is not None
                else None)
        if short is None or long is None:
            break
        runs["levers"][spec] = {"short": short, "long": long}
    return runs, [d for d in data if d not in runs["levers"]]


def decide(costs: dict[str, Any], runs: dict[str, Any], train_seconds: float
           ) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The kept levers (step levers first, data levers in role order) and every verdict."""
    verdicts: dict[str, dict[str, Any]] = {}
    for spec, c in costs.items():
        verdicts[spec] = (step_verdict(c["ratios"], c["compile_seconds"], train_seconds)
                          if c["ratios"] else {"keep": False, "why": "not timed: out of time",
                                               "time_ratio": 1.0})
    if runs.get("baseline") is not None:
        base = runs["baseline"]
        for spec, r in runs["levers"].items():
            verdicts[spec] = data_verdict(base["short"], base["long"], r["short"], r["long"])
    kept_step = [s for s in costs if verdicts[s]["keep"]]
    kept_step = _one_per_name(kept_step, verdicts)
    kept_data = [s for s in runs.get("levers", {}) if verdicts[s]["keep"]]
    return kept_step + _in_role_order(kept_data), verdicts


def _one_per_name(specs: list[str], verdicts: dict[str, Any]) -> list[str]:
    """Of two settings of one lever (the AdamW kernels), the cheaper."""
    best: dict[str, str] = {}
    for spec in specs:
        name = parse_lever(spec).name
        if name not in best or verdicts[spec]["time_ratio"] < verdicts[best[name]]["time_ratio"]:
            best[name] = spec
    return [s for s in specs if best[parse_lever(s).name] == s]


def _in_role_order(specs: list[str]) -> list[str]:
    from_roles = {"config": 0, "pool": 1, "order": 2, "prune": 3, "select": 4}
    return sorted(specs, key=lambda s: from_roles[parse_lever(s).role])


def tune(target: Any, budget: str | Budget, *, levers: Sequence[str] | None = None,
         pilot_share: float = 0.1, out: str | Path | None = None, quick: bool = False,
         seed: int = 0, resume: bool = False, runner: Any = None,
         clock: Callable[[], float] = time.monotonic,
         say: Callable[[str], None] = lambda line: None, task: str = "") -> dict[str, Any]:
    """Choose levers for `target` (a task function or a Recipe); see the module docstring.
    Returns the choices (also written to `out` when given)."""
    budget = budget if isinstance(budget, Budget) else Budget(budget)
    if not budget.is_wall_clock:
        raise ConfigError(f"hasten tune shares a wall-clock budget with its pilots: give "
                          f"seconds, minutes or hours, not {budget.spec}")
    if not 0 < pilot_share < 1:
        raise ConfigError(f"pilot_share must be in (0, 1), got {pilot_share}")
    make = recipe_maker(target, quick)
    outdir = Path(out) if out is not None else None
    t = Tuner(runner or RecipeRunner(make, seed), budget, pilot_share, outdir, clock, say,
              resume)
    started = clock()
    recipe = make(seed)
    t.durations.setdefault("build", clock() - started)
    step, data, refused = candidates(recipe, budget, levers)
    costs = step_costs(t, step)
    runs, dropped = pilots(t, data)
    train_seconds = budget.amount - t.allowance
    kept, verdicts = decide(costs, runs, train_seconds)
    check_combination(parse_levers(kept))
    spent = t.elapsed()
    choices = {"levers": kept, "budget": budget.spec, "tune_seconds": round(spent, 3),
               "train_budget": seconds_spec(max(1.0, budget.amount - spent)), "task": task,
               "pilot_share": pilot_share}
    if outdir is not None:
        save_choices(choices, outdir / "choices.json")
        write_report(outdir, choices, verdicts, costs, runs, refused, dropped, t.done)
    say(f"[tune] chose {', '.join(kept) or 'the baseline (no lever paid)'} in {spent:.0f} s")
    return choices
