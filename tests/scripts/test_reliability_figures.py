"""scripts/reliability_figures.py, tiny: its parts run (one SIGTERM, a few fuzz examples per
reader, one budget run), every family's command parses, and the record it writes is one
`load_record` reads. The real measurement (and `--quick`, every part tiny) runs by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hasten.bench.records import load_record

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "reliability_figures.py"


def _script():
    spec = importlib.util.spec_from_file_location("reliability_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_figures_write_a_record_report_can_read(tmp_path):
    """SIGTERM and fuzzing parts, and one budget run (train): the plumbing of every part
    that chaos and the other families share (`--quick` runs them all, by hand)."""
    figures = _script()
    lines = []
    record = figures.reliability_record(parts=["sigterm", "fuzz"], quick=True,
                                        work=tmp_path / "work", say=lines.append)
    budget, rows = figures.budget_overshoot(tmp_path / "budget", budgets=(2,),
                                            families=("train",), quick=True, say=lines.append)
    record["figures"]["budget"], record["runs"] = budget, record["runs"] + rows
    out = figures.write_record(record, tmp_path / "reliability.json")
    loaded = load_record(out)
    assert loaded["source"]["layout"] == "record" and loaded["suite"] == "reliability"
    f = loaded["figures"]
    assert f["sigterm"]["exit_codes"] == [143] and f["sigterm"]["all_left_a_checkpoint"]
    assert f["fuzz"]["failures"] == 0 and f["fuzz"]["cases"] >= 11
    assert set(f["fuzz"]["readers"]) >= {"checkpoint", "cli-arguments", "budget-string"}
    assert f["budget"]["families"]["train"]["all_exit_0"]
    assert {r["task"] for r in loaded["runs"]} == {"sigterm-exit", "fuzz", "budget-train"}
    assert any(line.startswith("sigterm 1/1: exit 143") for line in lines)


@pytest.mark.parametrize("family", ["train", "bench", "cram", "distill"])
@pytest.mark.parametrize("quick", [True, False])
def test_every_family_command_parses(tmp_path, family, quick):
    from hasten.cli import build_parser

    argv = _script().family_command(family, "10s", tmp_path / "out", quick)
    _, extras = build_parser(argv).parse_known_args(argv)
    assert extras == [] and argv[argv.index("--budget") + 1] == "10s"


def test_unknown_parts_are_refused():
    with pytest.raises(ValueError, match="unknown part"):
        _script().reliability_record(parts=["sigterm", "nosuch"])
