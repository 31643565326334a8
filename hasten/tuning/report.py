"""`tune.md` and `tune.json`: what the tuner measured for each lever, its decision and why.

tune.md reads top to bottom: the choice and the budget it leaves, then one row per lever
considered (kind, what was measured, the interval or gain against the noise, the decision,
the expected time ratio), the levers refused or left out and why, and how the choice was
made (the correction for short pilots and its known failure mode). tune.json holds every
measurement and verdict. Where it is shown: docs/tune.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hasten.core.atomic import atomic_write
from hasten.tuning.decide import HORIZON


def _row(spec: str, verdict: dict[str, Any], costs: dict[str, Any]) -> str:
    if spec in costs:
        ratios = costs[spec]["ratios"]
        measured = (f"{len(ratios)} alternations, cost ratio "
                    f"{verdict.get('ratio', float('nan')):.3f}" if ratios else "not timed")
        if costs[spec].get("compile_seconds"):
            measured += f", compile {costs[spec]['compile_seconds']:.1f} s"
        kind = "step"
    else:
        measured = (f"loss {verdict['gain_short']:+.2%} better at L, "
                    f"{verdict['gain_long']:+.2%} at 2L; noise {verdict['noise']:.2%}")
        kind = "data"
    decision = "kept" if verdict["keep"] else "left out"
    return (f"| {spec} | {kind} | {measured} | {decision}: {verdict['why']} | "
            f"{verdict['time_ratio']:.2f} |")


def markdown(choices: dict[str, Any], verdicts: dict[str, Any], costs: dict[str, Any],
             runs: dict[str, Any], refused: dict[str, str], dropped: list[str]) -> str:
    kept = choices["levers"]
    ratio = 1.0
    for spec in kept:
        ratio *= verdicts[spec]["time_ratio"]
    lines = [f"# hasten tune{': ' + choices['task'] if choices.get('task') else ''}", "",
             f"Chosen: {', '.join(f'`{k}`' for k in kept) or 'the baseline (no lever paid)'}.",
             f"Tuning took {choices['tune_seconds']:.1f} s of the {choices['budget']} budget "
             f"(share {choices['pilot_share']:g}); training gets the rest: "
             f"`{choices['train_budget']}`. Expected time ratio of the choice: {ratio:.2f} "
             "(the product of the kept levers' ratios; their combination was not piloted).",
             "", "| lever | kind | measured | decision | expected time ratio |",
             "|---|---|---|---|---|"]
    lines += [_row(spec, v, costs) for spec, v in verdicts.items()]
    for spec, reason in refused.items():
        lines.append(f"| {spec} | - | refused by the task | {reason} | - |")
    for spec in dropped:
        lines.append(f"| {spec} | data | not piloted | left out: no time left in the pilot "
                     "share | - |")
    length = runs.get("length", 0.0)
    lines += ["", "## How the choice was made", "",
              "Step levers: each timed against the baseline in alternating short runs; kept "
              "when the whole interquartile range of its cost ratios is below 1 (and, for "
              "compile, when the time it saves over the training left exceeds its compile "
              "time).",
              f"Data levers: pilots of {length:.1f} s (L) and {2 * length:.1f} s (2L) of "
              "training, scored by the validation loss on rows held out from the training "
              "data (never the test split), at two baseline seeds for the noise. Short pilots "
              "favour levers that help early, so each gain is carried along its L -> 2L trend "
              f"for {HORIZON} more doublings; a lever stays only when that and its gain at 2L "
              "both exceed the baseline's seed spread.",
              "Known failure modes: a lever whose benefit appears only after many doublings of "
              "the pilot length is never kept; two baseline seeds make a small sample, so the "
              "noise floor itself is noisy; levers are judged alone, not together."]
    return "\n".join(lines) + "\n"


def write_report(out: Path, choices: dict[str, Any], verdicts: dict[str, Any],
                 costs: dict[str, Any], runs: dict[str, Any], refused: dict[str, str],
                 dropped: list[str], measurements: dict[str, Any]) -> None:
    """Write tune.md and tune.json into `out`."""
    text = markdown(choices, verdicts, costs, runs, refused, dropped)
    atomic_write(out / "tune.md", lambda fh: fh.write(text.encode()))
    body = {"choices": choices, "verdicts": verdicts, "costs": costs, "pilots": runs,
            "refused": refused, "not_piloted": dropped, "measurements": measurements}
    blob = json.dumps(body, indent=1, default=float) + "\n"
    atomic_write(out / "tune.json", lambda fh: fh.write(blob.encode()))
