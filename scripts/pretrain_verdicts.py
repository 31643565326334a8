"""Print the pretraining plan's verdicts (benchmarks/plans/pretrain-verdicts.md) from committed
ladder records, as the results page's markdown tables.

    python scripts/pretrain_verdicts.py benchmarks/results/pretrain-verdicts-part*.json \
        --loss-rows 4096

`--loss-rows` is the held-out row count part 1 fixed (the loss is the mean over the plan's
three mask seeds at that count, read from each record's `mlm_loss_grid`); without it the
plan's rule picks it from the records (`choose_loss_rows`) and says so. The statistics are
`hasten.bench.ladder_verdicts`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import mean

from hasten.bench import ladder_verdicts as lv
from hasten.bench.report import merge_results
from hasten.core.atomic import read_json
from hasten.core.errors import run_script


def _fmt(values: list[float], digits: int = 3) -> str:
    if not values:
        return "–"
    return f"{mean(values):.{digits}f}" + ("" if len(values) == 3 else f" ({len(values)} seeds)")


def noise_floor_table(runs: list[dict], how: dict, floors: dict[str, float]) -> list[str]:
    """Part 1: control and crammed at the smallest rung, each metric's floor, the loss's
    spread over the mask seeds."""
    lines = ["| metric | control (3 seeds) | crammed (3 seeds) | crammed seeds | floor |",
             "|---|---|---|---|---|"]
    for metric in lv.LOWER_IS_BETTER:
        values = lv.values_by_row(runs, metric, **(how if metric == "mlm_loss_15" else {}))
        small = min((g for g, row in values if row == "crammed"), default=None)
        if small is None:
            continue
        crammed = values.get((small, "crammed"), [])
        lines.append(f"| {metric} | {_fmt(values.get((small, 'control'), []))} | "
                     f"{_fmt(crammed)} | {', '.join(f'{v:.3f}' for v in crammed)} | "
                     f"{floors[metric]:.3f} |")
    return lines


def verdict_table(runs: list[dict], how: dict, floors: dict[str, float]) -> list[str]:
    """One line per row and rung: loss, BLiMP and SST-2 probe, the gap to crammed with its
    interval, the verdict, the trend, the seed's direction."""
    side = {m: lv.values_by_row(runs, m) for m in ("blimp", "probe_sst2")}
    loss = lv.values_by_row(runs, "mlm_loss_15", **how)
    lines = ["| row | rung | held-out loss | BLiMP | SST-2 probe | d vs crammed [95%] | "
             "verdict | gap with compute | the seed |", "|---|---|---|---|---|---|---|---|---|"]
    found = {(v["row"], v["rung"]): v
             for v in lv.verdicts(runs, floor_value=floors["mlm_loss_15"], **how)}
    for rung, row in sorted(loss, key=lambda k: (k[0], list(loss).index(k))):
        v = found.get((row, rung))
        gap = (f"{v['d']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]" if v else "")
        lines.append(f"| {row} | {rung:.0e} | {_fmt(loss[(rung, row)])} | "
                     f"{_fmt(side['blimp'].get((rung, row), []), 2)} | "
                     f"{_fmt(side['probe_sst2'].get((rung, row), []), 2)} | {gap} | "
                     f"{v['verdict'] if v else ''} | {v.get('trend', '') if v else ''} | "
                     f"{lv.SEED_DIRECTION.get(row, '')} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="ladder results files")
    ap.add_argument("--loss-rows", type=int, default=None,
                    help="held-out rows of the decision loss (fixed by part 1; default: "
                         "the plan's rule on these records)")
    ap.add_argument("--mask-seeds", type=int, nargs="*", default=None,
                    help="mask seeds of the decision loss (default: every one recorded)")
    args = ap.parse_args(argv)
    parts = [read_json(Path(f), "ladder results file") for f in args.files]
    results = parts[0] if len(parts) == 1 else merge_results(parts)
    runs = results["runs"]
    rows = args.loss_rows
    if rows is None:
        choice = lv.choose_loss_rows(runs)
        rows = choice["rows"]
        print("held-out rows by the plan's rule: " + ", ".join(
            f"{n}: floor {c['floor']:.4f}, largest mask spread {c['spread']:.4f}"
            for n, c in choice["by_rows"].items()) + f" -> {rows}\n")
    how = {"loss_rows": rows, "mask_seeds": args.mask_seeds}
    floors = {m: lv.floors(runs, [m], **(how if m == "mlm_loss_15" else {}))[m]
              for m in lv.LOWER_IS_BETTER}
    print("\n".join(noise_floor_table(runs, how, floors)))
    print()
    gate = lv.electra_gate(runs, floors)
    for probe, g in gate.items():
        print(f"- {probe}: crammed {g['crammed']:.2f} vs control {g['control']:.2f}, "
              f"d {g['d']:+.2f} [{g['low']:+.2f}, {g['high']:+.2f}], floor {g['floor']:.2f}: "
              + ("clears" if g["clears"] else "does not clear"))
    print()
    print("\n".join(verdict_table(runs, how, floors)))
    print()
    print("\n".join(lv.report_lines(results)[:1]))
    return 0


if __name__ == "__main__":
    run_script(main)
