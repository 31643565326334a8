"""The cost of a unit of work: a suite's levers and its baseline trained in turn on one core,
a block of optimizer steps each, and each lever's seconds per step over the baseline's,
kept as a record (`hasten.bench.step_cost`).

    taskset -c 0 env OMP_NUM_THREADS=1 python scripts/iteration_cost.py \
        --suite dynprune-work --task fashion-10k --levers infobatch@0.7,random-drop@0.7 \
        --set-for infobatch@0.7,random-drop@0.7 prune_ratio=0.5 --block 10 \
        --plan benchmarks/plans/PLAN.md --out benchmarks/results/iteration-cost-NAME-DATE.json

Every arm is the suite's recipe for the task and method at the suite's budget (its own
options, with `--set-for` changing them for some methods), with evaluation off; a method's
preparation (a proxy's training) happens before the alternation and is kept as its one-off
seconds. Each method runs as `--instances` arms (default 3), each built apart: one process's
step time carries a fixed offset from where its tensors landed in memory, so a method is
the mean over instances (`hasten.bench.step_cost`). Arms run as processes forked from this
one, only one at a time, `--block` steps a turn, their order rotating from round to round,
until only the baseline's instances are left; an arm's first turn (its set-up) is not
compared. Each lever's run in the record: `final` the ratio of the geometric means over
instances of their median seconds per step, lever over baseline, with its 95% Welch
interval between instances (`--instances 1`: the median over cycles of rounds of the
ratio, with its quartiles), both seconds per step and the one-off seconds as report rows.
The load average before and after and the core pinning are kept: the figures are only as
quiet as the core was. The time ratio of a lever is then this ratio times its share of the
baseline's steps, plus its one-off seconds over the baseline's run (both from the quality
record), checked against whole runs (`hasten.bench.step_cost.checked_ratio`).
`--reread RECORD --out NEW` reads an earlier record's blocks again by the current reading
(no training): a new record naming it (`read_again_from`), the measurement's provenance in its
notes; the first stays, as written. `--reread R1 R2 ...`, records of one instance each of the
same methods (where every instance at once would not fit in memory: `--instances 1`, run one
after another on the same core), joins them as instances: record k's arm `NAME` becomes
`NAME#k`, read over instances as above.

Where its results are shown: docs/benchmarks.md, "How a lever is decided".
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hasten.bench import harness  # noqa: E402
from hasten.bench.evidence import plan_stamp  # noqa: E402
from hasten.bench.records import load_record, provenance, write_record  # noqa: E402
from hasten.bench.stack_plan import load_choices  # noqa: E402
from hasten.bench.step_cost import alternate, instance_of, instance_ratio, time_ratio  # noqa: E402
from hasten.bench.suites import load_suites  # noqa: E402
from hasten.core.config import to_dict  # noqa: E402
from hasten.core.errors import ConfigError, run_script  # noqa: E402


def arm_options(suite: Any, method: str, sets: list[tuple[list[str], str]]) -> Any:
    """The suite's options for `method`: its defaults, then each `--set-for` naming it."""
    flags: dict[str, Any] = {}
    for methods, assignment in sets:
        if method in methods:
            key, _, value = assignment.partition("=")
            flags[key] = value
    return harness.suite_options(suite, flags)


def build_arms(args: argparse.Namespace, suite: Any, methods: list[str],
               sets: list[tuple[list[str], str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each arm's training (a function of the timing hook) and what its method prepared;
    with `--instances` N > 1, N arms a method (`METHOD#I`), each built apart, the methods
    taking turns in the building so that no method's instances share a stretch of heap."""
    arms, info = {}, {}
    choices = load_choices(args.choices) if args.choices else None  # read once
    budget = None if args.quick else suite.budgets.get(args.task)
    for i in range(args.instances):
        for method in methods:
            options = arm_options(suite, method, sets)
            if choices is not None:  # a stack's settings, chosen on its validation twin
                if not hasattr(options, "choices"):
                    raise ConfigError(f"--choices: suite {args.suite} has no choices to set")
                options = dataclasses.replace(options, choices=choices)
            recipe = harness.build_recipe(args.task, method, args.seed, args.quick, budget,
                                          True, options)
            recipe.evaluate = None  # timing only
            info.setdefault(method, {
                "one_off_seconds": recipe.overhead_seconds, "budget": recipe.config.budget,
                "micro_batch": recipe.config.micro_batch,
                "options": to_dict(options) if options is not None else {}})

            def train_with(hook: Any, recipe: Any = recipe, method: str = method) -> None:
                harness.train_recipe(recipe, args.task, method, hooks=[hook])
            arms[f"{method}#{i}" if args.instances > 1 else method] = train_with
    return arms, info


def lever_run(args: argparse.Namespace, blocks: Any, lever: str, info: dict[str, Any]
              ) -> dict[str, Any]:
    """A lever's row of the record: its step cost over the baseline's and how sure."""
    if args.instances > 1:
        r = instance_ratio(blocks, lever, args.baseline)
        low, high = r["step_cost_interval"]
        spread = {"step cost ratio, 95% low": low, "step cost ratio, 95% high": high,
                  "instances": r["instances"][0]}
    else:
        r = time_ratio(blocks, lever, args.baseline)
        low, high = r["step_cost_iqr"]
        spread = {"step cost ratio, lower quartile": low, "step cost ratio, upper quartile": high,
                  "rounds": r["rounds"], "cycles": r["cycles"]}
    per = r["seconds_per_step"]
    return {"task": args.task, "method": lever, "seed": args.seed, "baseline": args.baseline,
            "metric": "step cost ratio", "higher_is_better": False,
            "final": r["step_cost_ratio"], "train_seconds": None, "work": {}, "curve": None,
            "notes": {"report_rows": {
                **spread, "ms per step": 1000 * per[lever],
                "baseline ms per step": 1000 * per[args.baseline],
                "one-off seconds": info[lever]["one_off_seconds"]},
                "interval": [low, high], "arm": info[lever]}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite")
    ap.add_argument("--task")
    ap.add_argument("--baseline", default="baseline")
    ap.add_argument("--levers", help="comma-separated methods")
    ap.add_argument("--set-for", nargs=2, action="append", default=[],
                    metavar=("METHODS", "KEY=VALUE"), help="a suite option for some methods")
    ap.add_argument("--choices", help="a stack's choices.json (`hasten bench stack --tune-only`)")
    ap.add_argument("--block", type=int, default=10, help="optimizer steps a turn")
    ap.add_argument("--instances", type=int, default=3,
                    help="processes a method, each built apart (`hasten.bench.step_cost`: one "
                         "instance measures where its tensors landed); 1: the quartiles of "
                         "one instance's rounds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="the tasks' quick versions (a test)")
    ap.add_argument("--plan", help="the plan file these runs follow")
    ap.add_argument("--notes", default="")
    ap.add_argument("--reread", type=Path, nargs="+", metavar="RECORD",
                    help="read an earlier record's blocks again (no training): a new record "
                         "naming it; the first stays. Several records of one instance each: "
                         "joined as the instances of their methods")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.out.exists():
        ap.error(f"{args.out} exists: records are never replaced")
    if args.reread:
        return reread(args)
    if not (args.suite and args.task and args.levers):
        ap.error("--suite, --task and --levers are required (or --reread RECORD)")
    load_suites([args.suite])
    suite = harness.lookup("suite", harness.SUITES, args.suite)
    levers = args.levers.split(",")
    if args.instances < 1 or any("#" in m for m in [args.baseline, *levers]):
        raise ConfigError("--instances must be >= 1 and a method's name has no '#'")
    sets = [(m.split(","), kv) for m, kv in args.set_for]
    stamp = plan_stamp(args.plan) if args.plan else None
    arms, info = build_arms(args, suite, [args.baseline, *levers], sets)
    load_before = os.getloadavg()
    blocks = alternate(arms, args.block, group=instance_of)
    load_after = os.getloadavg()
    runs = [lever_run(args, blocks, lever, info) for lever in levers]
    record = {**header(),
              "notes": {"text": args.notes, "block_steps": args.block,
                        "instances": args.instances,
                        "baseline": {"method": args.baseline, **info[args.baseline]},
                        "load_average_before": load_before, "load_average_after": load_after,
                        **({"plan": stamp} if stamp else {})},
              "blocks": {k: [list(b) for b in v] for k, v in blocks.items()}, "runs": runs}
    return finish(record, args.out)


def header() -> dict[str, Any]:
    """A record's provenance, its command as this script was called."""
    return {**provenance(program="python scripts/iteration_cost.py"),
            "suite": "iteration-cost", "status": "complete"}


def finish(record: dict[str, Any], out: Path) -> int:
    write_record(record, out)
    for run in record["runs"]:
        low, high = run["notes"]["interval"]
        print(f"{run['method']}: step cost x{run['final']:.3f} [{low:.3f}, {high:.3f}]")
    print(f"wrote {out}")
    return 0


def reread(args: argparse.Namespace) -> int:
    """Earlier records' blocks read again by this script's reading: a new record naming them
    in `read_again_from`, each measurement's own provenance kept in its notes. One record is
    read as it was measured; several (one instance each, the same methods) as instances."""
    olds = [load_record(path) for path in args.reread]
    for path, old in zip(args.reread, olds, strict=True):
        if not old.get("blocks") or not old.get("runs"):
            raise ConfigError(f"--reread: {path} holds no blocks to read")
    one = len(olds) == 1

    def each(values: list[Any]) -> Any:  # one record's value as it was, several as a list
        return values[0] if one else values

    notes = dict(olds[0].get("notes") or {})
    blocks = ({k: [tuple(b) for b in v] for k, v in olds[0]["blocks"].items()} if one
              else _joined_blocks(args.reread, olds))
    instances = int(notes.get("instances") or 1) if one else len(olds)
    first = olds[0]["runs"][0]
    ns = argparse.Namespace(instances=instances, task=first["task"], seed=first["seed"],
                            baseline=first["baseline"])
    info = {r["method"]: r["notes"]["arm"] for r in olds[0]["runs"]}
    runs = [lever_run(ns, blocks, r["method"], info) for r in olds[0]["runs"]]
    record = {**header(), "read_again_from": each([p.name for p in args.reread]),
              "notes": {**notes, "instances": instances, "text": args.notes,
                        "measured": each([{k: old.get(k) for k in
                                           ("created", "code", "command", "pinning", "machine")}
                                          for old in olds]),
                        "measured_text": each([(old.get("notes") or {}).get("text", "")
                                               for old in olds])},
              "blocks": blocks, "runs": runs}  # write_record writes the tuples as lists
    return finish(record, args.out)


def _joined_blocks(paths: list[Path], olds: list[dict[str, Any]]
                   ) -> dict[str, list[tuple[int, float]]]:
    """Records of one instance each joined as instances: record k's arm NAME as NAME#k."""
    def shape(old: dict[str, Any]) -> tuple[Any, ...]:
        runs = old["runs"]
        return (sorted(old["blocks"]), [(r["task"], r["method"], r["baseline"]) for r in runs],
                (old.get("notes") or {}).get("block_steps"))
    for path, old in zip(paths, olds, strict=True):
        if int((old.get("notes") or {}).get("instances") or 1) != 1:
            raise ConfigError(f"--reread: {path} has several instances already; only records "
                              "of one instance each are joined")
        if shape(old) != shape(olds[0]):
            raise ConfigError(f"--reread: {path} measured other methods, task or block than "
                              f"{paths[0]}; only records of the same arms are joined")
    return {f"{name}#{k}": [tuple(b) for b in blocks]
            for k, old in enumerate(olds) for name, blocks in old["blocks"].items()}


if __name__ == "__main__":
    run_script(main)
