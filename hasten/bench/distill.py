"""The distillation suite (`hasten bench distill`): synthetic and coreset training sets at
1, 10 and 50 images per class, each judged by a fresh network trained on it.

Methods of the papers it follows: DC, gradient matching (Zhao, Mopuri & Bilen, ICLR 2021);
DSA, DC with differentiable Siamese augmentation (Zhao & Bilen, ICML 2021); DM, distribution
matching (Zhao & Bilen, WACV 2023); IDM, DM with a queue of training networks and a
cross-entropy term (Zhao, Li, Qin & Yu, CVPR 2023); MTT, matching training trajectories
(Cazenavette et al., CVPR 2022); and the coreset baselines those papers compare with
(random real images, herding, k-center).

Tasks `distill-ipc1`, `distill-ipc10`, `distill-ipc50` (Fashion-MNIST). Each run trains one
fresh ConvNet-3 (instance norm, width 64 by default: the papers use 128) with the papers'
protocol, SGD lr 0.01, momentum 0.9, weight decay 5e-4, lr x0.1 at half, batch 256 (or the
whole set when smaller), 300 epochs of the method's set (DC-BENCH's default; the DSA, DM
and MTT papers use 1000 with DSA augmentation, `eval_dsa` here), and tests it on the
Fashion-MNIST test set. Seeds are fresh networks: the synthetic set is distilled once per
(method, ipc, distillation seed 0) and reused by every seed, as the papers train several
networks on one set; every run is charged the set's full distillation wall time as
`overhead_seconds` (a user distilling once pays it once). hasten's trainer runs the
protocol, so weight decay skips norms and biases, and batches run across epoch ends.

Methods: `random` (the baseline: the papers' reference and DM's and MTT's starting point),
`full-data` (the task's own recipe: all 60,000 images, `full_epochs` epochs, evaluated often,
so the report can say how long full data takes to reach each set's accuracy), `herding`,
`k-center` (on raw pixels), `dm`, `idm` (its network training scaled down, `IDM_CPU`),
`dc` (no augmentation), `dsa` and `mtt` (experts trained
once per process or cache folder and charged to every MTT row).

Rows added under the accuracy (`notes["report_rows"]`): mean and std of the final accuracy
over seeds, distillation seconds and iterations, seconds of training on the set (the
overhead left out), and seconds a fresh network on full data (the `full-data` run of the
same seed and task) took to first reach the row's accuracy.

Synthetic sets are cached in process and, as `.safetensors`, under `runs/distill-cache/`
(the `cache_dir` option), keyed by dataset, method, ipc, budget, width, options and seed:
delete the folder to distil again. Distillation budgets default to 10 minutes of wall clock
per method and ipc; the suite's `distill_budget` option (`hasten bench distill
--distill-budget 20m`, or `dm=5m,mtt=20m`) changes them; `--budget` changes only the
`full-data` run. `iteration_curve` evaluates one distillation run at several budgets
(accuracy vs iterations); `SETTINGS.curve` makes the suite do it too.

Quick mode (`--quick`) uses the embedded 8x8 digits, width 16, 2 iterations per method and
50 evaluation epochs (full data: 30), and no disk cache: a smoke test, not a measurement.

Results: docs/benchmarks.md, "Dataset distillation: beats random subsets, not full-data training
time".
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hasten.bench.harness import Recipe, Suite, register_method, register_suite, register_task
from hasten.bench.vision import CLASSIFICATION_TASKS, _data, accuracy_on, per_example_cross_entropy
from hasten.core.budget import parse_budget, seconds_spec
from hasten.core.config import option
from hasten.core.errors import ConfigError
from hasten.core.target import time_to_target
from hasten.core.trainer import Hook, TrainConfig, TrainState
from hasten.data.vision import VisionData
from hasten.distill.augment import DSA, dsa_strategy
from hasten.distill.base import default_model_fn
from hasten.distill.coreset import herding, k_center, random_subset
from hasten.distill.evaluate import evaluate
from hasten.distill.methods import DistillConfig, distill_with
from hasten.distill.synthetic import SyntheticSet

IPCS = (1, 10, 50)
DISTILLERS = ("dm", "idm", "dc", "dsa", "mtt")
CORESETS = ("random", "herding", "k-center")
# IDM's network training scaled to a CPU (the paper: a queue of 100, a new network every 30
# iterations, 2 networks x 10 steps per iteration; each step costs about a DM iteration here)
IDM_CPU = {"pool": 20, "new_every": 50, "train_nets": 1, "train_steps": 2}
METHOD_NAMES = ("random", "full-data", "herding", "k-center", "dm", "idm", "dc", "dsa",
                "mtt")


@dataclass
class DistillBenchSettings:
    """What the suite distils and how it evaluates; `SETTINGS` (full) and `QUICK`."""

    dataset: str = "fashion-mnist"
    width: int = 64  # ConvNet-3 channels, for distillation and evaluation (papers: 128)
    epochs: int = 300  # evaluation epochs on a synthetic or coreset set
    eval_every: float = 0.2  # five evaluations: each one of the full test set is slow on a CPU
    eval_dsa: bool = False  # DSA augmentation while training on the set (papers: on, 1000 ep)
    full_epochs: float = 1.0  # the full-data reference run
    full_eval_every: float = 0.05
    budgets: dict[str, str] = field(default_factory=lambda: {m: "10m" for m in DISTILLERS})
    options: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "idm": dict(IDM_CPU),
        "mtt": {"num_experts": 2, "train_epochs": 4, "max_start_epoch": 2,
                "expert_epochs": 2}})
    init: str = "real"
    dsa: bool = True  # DSA while distilling with dm and mtt (dc: off, dsa: on)
    batch_real: int = 128
    distill_seed: int = 0
    per_seed: bool = False  # True: distil once per run seed instead of once per suite
    curve: tuple[float, ...] = ()  # fractions of the budget to evaluate (accuracy vs its)
    curve_models: int = 3
    cache_dir: str | None = "runs/distill-cache"


SETTINGS = DistillBenchSettings()
QUICK = DistillBenchSettings(
    dataset="digits", width=16, epochs=50, full_epochs=30, full_eval_every=0.05,
    budgets={m: "2steps" for m in DISTILLERS},
    options={"dc": {"outer_loop": 2, "inner_loop": 1}, "dsa": {"outer_loop": 2, "inner_loop": 1},
             "idm": {"pool": 3, "new_every": 1, "train_nets": 1, "train_steps": 1,
                     "train_batch": 64},
             "mtt": {"num_experts": 1, "train_epochs": 2, "max_start_epoch": 1,
                     "expert_epochs": 1, "syn_steps": 3}},
    batch_real=32, curve_models=1, cache_dir=None)


@dataclass
class DistillOptions:
    """The distill suite's options (`hasten bench distill --distill-budget 20m`, `--set`)."""

    distill_budget: str = option("", "empty: 10 minutes of wall clock per method and ipc "
                                     "(quick: 2 iterations); `20m`, `500steps` or "
                                     "`dm=5m,mtt=20m` changes them")
    cache_dir: str = option("auto", "auto: runs/distill-cache for full runs and no disk "
                                    "cache in quick mode (a smoke test); `none` turns it off")


def parse_distill_budget(text: str) -> dict[str, str]:
    """`"20m"` (every distillation method) or `"dm=5m,mtt=20m"` -> {method: budget}."""
    out: dict[str, str] = {}
    for part in str(text).split(","):
        name, sep, spec = part.strip().rpartition("=")
        names = [name.strip().lower()] if sep else list(DISTILLERS)
        for n in names:
            if n not in DISTILLERS:
                raise ConfigError(f"--distill-budget: unknown method {n!r}; known: "
                                  f"{', '.join(DISTILLERS)}")
        unit, _ = parse_budget(spec.strip())
        if unit not in ("seconds", "steps"):
            raise ConfigError(f"--distill-budget {spec!r}: use wall clock (10m) or "
                              "iterations (500steps)")
        out.update(dict.fromkeys(names, spec.strip()))
    return out


def settings_for(quick: bool, options: DistillOptions | None = None) -> DistillBenchSettings:
    """The settings of a full or quick run with the suite's options applied."""
    s = QUICK if quick else SETTINGS
    o = options or DistillOptions()
    if o.distill_budget:
        s = replace(s, budgets={**s.budgets, **parse_distill_budget(o.distill_budget)})
    if o.cache_dir != "auto":
        s = replace(s, cache_dir=None if o.cache_dir.lower() == "none" else o.cache_dir)
    return s


def is_distill_task(task: str) -> bool:
    """The tasks the set methods apply to."""
    return task in {f"distill-ipc{i}" for i in IPCS}


# -----------------------------------------------------------------------------
# building (or fetching) a set


@dataclass
class BuiltSet:
    """A training set and what building it cost."""

    syn: SyntheticSet
    seconds: float  # distillation (or selection) wall time, experts included
    cached: str | None  # None: built now; "memory" or "disk": fetched
    key: str


_sets: dict[str, BuiltSet] = {}
_expert_dirs: dict[str, Path] = {}


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def cache_key(method: str, ipc: int, seed: int, s: DistillBenchSettings) -> str:
    """The name a set is cached under: everything that changes the images."""
    if method in CORESETS:
        return f"{s.dataset}-{method}-ipc{ipc}" + (f"-s{seed}" if method == "random" else "")
    opts = {"options": s.options.get(method, {}), "init": s.init, "batch_real": s.batch_real,
            "dsa": _distill_dsa(method, s), "curve": list(s.curve)}
    if s.curve:
        opts["curve_eval"] = [s.epochs, s.curve_models, s.eval_dsa]
    return (f"{s.dataset}-{method}-ipc{ipc}-{s.budgets[method]}-w{s.width}-s{seed}-"
            f"{_fingerprint(opts)}")


def _distill_dsa(method: str, s: DistillBenchSettings) -> bool:
    return {"dc": False, "dsa": True}.get(method, s.dsa)


def _expert_dir(s: DistillBenchSettings) -> Path:
    """Where MTT's experts live: shared by every ipc (they do not depend on it)."""
    o = s.options.get("mtt", {})
    key = _fingerprint({k: o.get(k) for k in ("num_experts", "train_epochs", "max_start_epoch",
                                                "expert_epochs", "expert_lr", "expert_batch")}
                       | {"dsa": s.dsa, "width": s.width})
    name = f"experts-{s.dataset}-w{s.width}-{key}"
    if s.cache_dir is not None:
        return Path(s.cache_dir) / name
    if name not in _expert_dirs:
        _expert_dirs[name] = Path(tempfile.mkdtemp(prefix="hasten-experts-")) / name
    return _expert_dirs[name]


def _expert_seconds(folder: Path, add: float = 0.0) -> float:
    """Seconds spent training the experts in `folder` (recorded beside them)."""
    path = folder / "experts.json"
    seconds = json.loads(path.read_text())["seconds"] if path.is_file() else 0.0
    if add > 0:
        seconds += add
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"seconds": seconds}))
    return float(seconds)


def _scaled(spec: str, fraction: float) -> str:
    unit, amount = parse_budget(spec)
    if unit == "steps":
        return f"{max(1, round(amount * fraction))}steps"
    return seconds_spec(amount * fraction)


def _distil_chain(method: str, data: VisionData, ipc: int, specs: list[str], seed: int,
                  s: DistillBenchSettings, eval_models: int = 0) -> tuple[SyntheticSet, float,
                                                                         list[dict[str, Any]]]:
    """Distil up to each budget in `specs` in turn (one run, resumed from its checkpoint);
    evaluate each intermediate set with `eval_models` fresh networks (0: none). Returns the
    last set, the distillation seconds charged (experts included) and the curve rows."""
    options = dict(s.options.get(method, {}))
    experts = None
    if method == "mtt":
        experts = _expert_dir(s)
        options.setdefault("expert_dir", str(experts))
    rows: list[dict[str, Any]] = []
    wall, expert_now = 0.0, 0.0
    syn = None
    with tempfile.TemporaryDirectory(prefix="hasten-distill-") as folder:
        for spec in specs:
            start = time.perf_counter()
            config = DistillConfig(method=method, ipc=ipc, budget=spec, init=s.init,
                                   dsa=_distill_dsa(method, s), seed=seed, width=s.width,
                                   batch_real=s.batch_real, checkpoint_dir=folder,
                                   checkpoint_every=0, resume=True, options=options)
            syn = distill_with(data, config, progress=False)
            wall += time.perf_counter() - start
            if syn.meta.get("experts_trained"):
                expert_now += float(syn.meta.get("expert_seconds", 0.0))
            if eval_models:
                r = evaluate(syn, data, models=eval_models, epochs=s.epochs, dsa=s.eval_dsa,
                             width=s.width, seed=seed + 1, device=None)
                rows.append({"budget": spec, "iterations": syn.meta["iterations"],
                             "distill_seconds": wall, "accuracy_mean": r.mean,
                             "accuracy_std": r.std, "models": eval_models,
                             "epochs": s.epochs})
    assert syn is not None
    seconds = wall
    if experts is not None:  # charge the experts' full training time, even when reused
        total = _expert_seconds(experts, add=expert_now)
        seconds = wall - expert_now + total
    return syn, seconds, rows


def iteration_curve(method: str, ipc: int, checkpoints: list[int | str], *,
                    quick: bool = False, seed: int = 0, models: int | None = None,
                    settings: DistillBenchSettings | None = None,
                    options: DistillOptions | None = None) -> list[dict[str, Any]]:
    """Accuracy vs iterations of one distillation run: distil to each checkpoint (an
    iteration count, or a budget such as "2m") in turn, resuming, and evaluate each set
    with the suite's protocol (or `settings`, e.g. 1000 epochs with DSA on). Rows: budget,
    iterations, distill_seconds, accuracy_mean, accuracy_std, models, epochs."""
    if method not in DISTILLERS:
        raise ConfigError(f"iteration_curve: {method!r} is not one of {', '.join(DISTILLERS)}")
    s = settings or settings_for(quick, options)
    specs = [f"{c}steps" if isinstance(c, int) else str(c) for c in checkpoints]
    _, _, rows = _distil_chain(method, _data(s.dataset), ipc, specs, seed, s,
                               eval_models=models or s.curve_models)
    return rows


def _build(method: str, data: VisionData, ipc: int, seed: int,
           s: DistillBenchSettings) -> tuple[SyntheticSet, float]:
    start = time.perf_counter()
    if method == "random":
        return random_subset(data, ipc, seed=seed), time.perf_counter() - start
    if method == "herding":
        return herding(data, ipc), time.perf_counter() - start
    if method == "k-center":
        return k_center(data, ipc), time.perf_counter() - start
    budget = s.budgets[method]
    fractions = sorted({*(f for f in s.curve if 0 < f < 1), 1.0})
    specs = [_scaled(budget, f) for f in fractions[:-1]] + [budget]
    syn, seconds, rows = _distil_chain(method, data, ipc, specs, seed, s,
                                       eval_models=s.curve_models if s.curve else 0)
    syn.meta["iteration_curve"] = rows
    return syn, seconds


def build_set(method: str, ipc: int, seed: int, quick: bool,
              options: DistillOptions | None = None) -> BuiltSet:
    """The set of `method` at `ipc` for distillation seed `seed`: from the in-process cache,
    else from the disk cache, else built now (and cached in both)."""
    s = settings_for(quick, options)
    key = cache_key(method, ipc, seed, s)
    if key in _sets:
        hit = _sets[key]
        return BuiltSet(hit.syn, hit.seconds, "memory", key)
    path = Path(s.cache_dir) / f"{key}.safetensors" if s.cache_dir is not None else None
    if path is not None and path.is_file():
        syn = SyntheticSet.load(path)
        bench = syn.meta.get("bench", {})
        if bench.get("key") == key:
            _sets[key] = BuiltSet(syn, float(bench["seconds"]), None, key)
            return BuiltSet(syn, float(bench["seconds"]), "disk", key)
    syn, seconds = _build(method, _data(s.dataset), ipc, seed, s)
    syn.meta["bench"] = {"key": key, "seconds": seconds}
    if path is not None:
        syn.save(path)
    built = BuiltSet(syn, seconds, None, key)
    _sets[key] = built
    return built


# -----------------------------------------------------------------------------
# runs, and the rows computed across them


# the rows each run adds under the accuracy, in this order
ROWS = ("mean accuracy (%)", "std accuracy", "distill s", "distill iterations",
        "train s on the set", "full-data s to same accuracy")


def cross_seed_rows(results: dict[str, Any]) -> None:
    """Add the rows that need several runs to every run's notes: mean and std of the final
    accuracy over seeds, training seconds on the set, and the seconds the `full-data` run
    of the same task and seed took to first reach the run's accuracy."""
    runs = [r for r in results["runs"] if is_distill_task(str(r.get("task")))]
    finals: dict[tuple[str, str], list[float]] = {}
    full: dict[tuple[str, int], list[Any]] = {}
    for r in runs:
        if r.get("final") is not None:
            finals.setdefault((r["task"], r["method"]), []).append(float(r["final"]))
        if r["method"] == "full-data":
            full[(r["task"], r["seed"])] = r["curve"]
    for r in runs:
        accs = finals.get((r["task"], r["method"]), [])
        rows = r["notes"].setdefault("report_rows", dict.fromkeys(ROWS))
        rows["mean accuracy (%)"] = float(np.mean(accs)) if accs else None
        rows["std accuracy"] = float(np.std(accs)) if accs else None
        rows["train s on the set"] = (r.get("ledger") or {}).get("train")
        curve = full.get((r["task"], r["seed"]))
        hit = (time_to_target(curve, r["final"])
               if curve and r.get("final") is not None else None)
        rows["full-data s to same accuracy"] = hit.seconds if hit else None


class _Augment(Hook):
    """DSA-augments the batches of training on a set (`eval_dsa`)."""

    def __init__(self, seed: int, dsa: DSA) -> None:
        self.dsa = dsa
        self.generator = torch.Generator().manual_seed(seed)

    def on_batch(self, state: TrainState, batch: Any) -> Any:
        x, y = batch
        return self.dsa(x, generator=self.generator), y


def _protocol(examples: int, epochs: float, eval_every: float) -> TrainConfig:
    """The papers' evaluation training: SGD 0.01, momentum 0.9, wd 5e-4, x0.1 at half."""
    return TrainConfig(budget=f"{max(1, int(epochs * examples))}ex", lr=0.01, optimizer="sgd",
                       momentum=0.9, weight_decay=5e-4, schedule="step",
                       micro_batch=min(256, examples), eval_every=eval_every,
                       precision="fp32")


def _distill_task(ipc: int):
    def task(seed: int, quick: bool, *, options: DistillOptions | None = None) -> Recipe:
        s = settings_for(quick, options)
        data = _data(s.dataset)
        torch.manual_seed(seed)
        model = default_model_fn(tuple(data.input_shape), data.num_classes, s.width)()
        cfg = _protocol(len(data.train), s.full_epochs, s.full_eval_every)
        notes = {"dataset": data.name, "model": "convnet3", "width": s.width, "ipc": ipc,
                 "quick": quick, "task": f"distill-ipc{ipc}", "train_examples": len(data.train),
                 "test_examples": len(data.test), "epochs": s.full_epochs,
                 "eval_dsa": s.eval_dsa}
        return Recipe(model=model, train_data=data.train, loss_fn=per_example_cross_entropy,
                      evaluate=accuracy_on(data.test), config=cfg, notes=notes)
    task.__doc__ = (f"Fashion-MNIST at {ipc} image(s) per class; the task's own recipe is the "
                    "full-data reference (quick: digits)")
    return task


for _ipc in IPCS:
    register_task(f"distill-ipc{_ipc}")(_distill_task(_ipc))
CLASSIFICATION_TASKS.update(f"distill-ipc{i}" for i in IPCS)


@register_method("full-data", applies=is_distill_task)
def full_data(recipe: Recipe) -> Recipe:
    """All training images, `full_epochs` epochs of the protocol, evaluated often."""
    recipe.notes.update(method="full-data", set_size=len(recipe.train_data),
                        report_rows=dict.fromkeys(ROWS))
    return recipe


def _set_method(name: str):
    def method(recipe: Recipe) -> Recipe:
        notes, quick = recipe.notes, recipe.notes["quick"]
        s = settings_for(quick, recipe.options)
        seed = recipe.config.seed if s.per_seed else s.distill_seed
        built = build_set(name, notes["ipc"], seed, quick, recipe.options)
        syn = built.syn
        recipe.train_data = syn.dataset()  # decoded, should the set use multi-formation
        # the protocol sets the budget, batch and eval cadence; seed, quiet, ... stay
        protocol = _protocol(len(recipe.train_data), s.epochs, s.eval_every)
        cfg = recipe.config
        cfg.budget, cfg.micro_batch = protocol.budget, protocol.micro_batch
        cfg.eval_every = protocol.eval_every
        recipe.overhead_seconds += built.seconds
        notes.update({
            "method": name, "set_size": len(recipe.train_data),
            "set_shape": list(syn.images.shape),
            "distill_seed": seed, "distill_seconds": built.seconds, "cached": built.cached,
            "cache_key": built.key, "epochs": s.epochs,
            "iterations": syn.meta.get("iterations"),
            "distill_budget": s.budgets.get(name) if name in DISTILLERS else None,
            "distill_options": s.options.get(name, {}) if name in DISTILLERS else None,
            "iteration_curve": syn.meta.get("iteration_curve", [])})
        if s.eval_dsa:
            recipe.hooks.append(_Augment(recipe.config.seed, DSA(dsa_strategy(notes["dataset"]))))
        rows = notes.setdefault("report_rows", dict.fromkeys(ROWS))
        rows["distill s"] = built.seconds
        rows["distill iterations"] = syn.meta.get("iterations")
        return recipe
    method.__doc__ = f"train on the {name} set of the task's ipc (its build time charged)"
    return method


for _name in (*CORESETS, *DISTILLERS):
    register_method(_name, applies=is_distill_task)(_set_method(_name))


register_suite(Suite(
    name="distill", tasks=[f"distill-ipc{i}" for i in IPCS], methods=list(METHOD_NAMES),
    margin=0.5, options=DistillOptions, after_run=cross_seed_rows,
    description="dataset distillation vs coresets at ipc 1/10/50; distillation time charged"))
