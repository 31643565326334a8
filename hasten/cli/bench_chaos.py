"""`hasten bench chaos`: kill a training run at random moments (some inside a checkpoint
write), resume it each time, and check it ends bit-identical to an uninterrupted run
(`hasten.bench.chaos`; `--ranks 2`: a DDP pair where one rank dies). `--out` gets the record
(`result.json`, read by `hasten report`) and `config.json`. Exit 0 when every kill and
resume worked and the result is bit-identical, else 1."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hasten.bench import chaos
from hasten.bench.chaos import ChaosConfig
from hasten.bench.records import provenance, write_record
from hasten.cli import common
from hasten.core.config import option, settings_help, to_dict
from hasten.core.errors import ConfigError

SUITE = "chaos"
HELP = "kill a run at random moments, resume it, check it ends bit-identical"


@dataclass
class ChaosCommand:
    """`hasten bench chaos`: the settings beside `ChaosConfig`'s."""

    out: str = option("runs/bench-chaos", "beside the other benchmark folders")
    overwrite: bool = option(False, "a finished record is never replaced unless asked")
    quiet: bool = option(False, "a line per phase unless asked for silence")


def epilog() -> str:
    return settings_help(ChaosConfig) + "\n" + settings_help(ChaosCommand)


def add_settings(parser: argparse.ArgumentParser) -> None:
    common.add_settings(parser, ChaosConfig, ChaosCommand)


def run(args: argparse.Namespace) -> int:
    config, c = common.settle([ChaosConfig, ChaosCommand], args, "bench")
    out = common.check_out(c.out)
    _check_record(out, c.overwrite)
    common.write_settings(out, config, c, extra={"suite": SUITE})
    record = chaos.run_chaos(config, say=common.sayer(c.quiet))
    path = write_record(chaos_record(record, config, common.command_text()),
                        out / "result.json")
    print(f"chaos: {record.summary()}; wrote {path}", flush=True)
    return 0 if record.ok else 1


def _check_record(out: Path, overwrite: bool) -> None:
    if (out / "result.json").is_file() and not overwrite:
        raise ConfigError(f"--out {out} holds a finished record; records are never "
                          "replaced: choose another folder, or pass --overwrite")


def chaos_record(record: Any, config: Any, command: str) -> dict[str, Any]:
    """A chaos run as a record in the harness layout (`hasten.bench.records`): one run whose
    `final` is 1 when the resumed run was bit-identical (0 otherwise), with the counts as
    report rows and the whole `ChaosRecord` in its notes."""
    task = f"chaos, {config.ranks} process{'es' if config.ranks > 1 else ''}"
    rows = {"kills": record.kills, "kills inside a save": record.kills_in_save,
            "resumes": record.resumes, "fallbacks": record.fallbacks,
            "problems": len(record.problems)}
    if record.survivor_exit_seconds:
        rows["survivor exit seconds (max)"] = max(record.survivor_exit_seconds)
    run = {"task": task, "method": f"{config.kills} kills", "seed": config.seed,
           "metric": "bit-identical", "higher_is_better": True,
           "final": 1.0 if record.identical else 0.0, "metrics": {"ok": record.ok},
           "train_seconds": record.seconds, "target": None, "time_to_target": None,
           "relative_time": None, "work": {}, "curve": None, "stopped": "budget",
           "budget": f"{config.steps}steps", "config": to_dict(config),
           "notes": {"report_rows": rows, "chaos": record.as_dict()}}
    return {"suite": SUITE, **provenance(command), "status": "complete", "quick": False,
            "seeds": 1, "first_seed": config.seed, "margin": 0.0,
            "suite_methods": [run["method"]], "options": to_dict(config), "planned_runs": 1,
            "notes": {"ok": record.ok, "summary": record.summary()}, "runs": [run]}
