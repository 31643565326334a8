"""`hasten bench stack` end to end on a tiny task, the way the plan runs it: settings chosen
once on the validation twin and saved, the validation phase in two parts joined by `hasten
report` (which prints the levers kept), then the test phase's two parts from the validation
record, never tuning again."""

from __future__ import annotations

import hashlib
import json

import pytest
import tiny_stack
from conftest import RECORD_HEADER

from hasten.bench import stack
from hasten.bench.records import load_record
from hasten.bench.stack_report import select_levers
from hasten.cli import main

LEVERS = '["bf16","batch","infobatch"]'


@pytest.fixture
def tiny(monkeypatch):
    tiny_stack.register(monkeypatch)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the command's thread choice: tiny models
    yield
    tiny_stack.unregister()


def _bench(*args):
    return main(["bench", "stack", "--quick", "--quiet", *map(str, args)])


def _methods(folder):
    return [r["method"] for r in json.loads((folder / "result.json").read_text())["runs"]]


def test_the_plan_runs_with_plain_commands(tiny, tmp_path, monkeypatch, capsys):
    choices = tmp_path / "choices"
    assert _bench("--task", "tiny-stack-val", "--set", f"levers={LEVERS}", "--tune-only",
                  "--out", choices) == 0
    saved = json.loads((choices / "choices.json").read_text())["choices"]
    assert set(saved["levers"]) == {"batch"}  # the one lever of these with candidates
    kinds = [t["kind"] for t in saved["trials"]]
    assert kinds == ["lever", "lever", "plain", "plain"]  # as many plain trials as levers'
    config = json.loads((choices / "config.json").read_text())
    assert config["tune_only"] and config["options"]["levers"] == ["bf16", "batch", "infobatch"]
    assert config["options"]["choices"] == saved
    assert not (choices / "result.json").exists()
    assert f"--choices {choices / 'choices.json'}" in capsys.readouterr().out

    monkeypatch.setattr(stack, "_tune", lambda *a: pytest.fail("the settings were chosen again"))
    given = ["--task", "tiny-stack-val", "--set", f"levers={LEVERS}", "--choices",
             choices / "choices.json"]
    plan = tmp_path / "plan.md"
    plan.write_text("# a plan\n")
    assert _bench(*given, "--methods", "tuned-baseline,stack,stack-minus-bf16",
                  "--plan", plan, "--out", tmp_path / "val-a") == 0
    stamp = load_record(tmp_path / "val-a" / "result.json")["notes"]["plan"]
    assert stamp["sha256"] == hashlib.sha256(b"# a plan\n").hexdigest()  # the record names it
    assert _bench(*given, "--methods", "stack-minus-batch,stack-minus-infobatch",
                  "--baseline", "tuned-baseline", "--out", tmp_path / "val-b") == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "val-a" / "result.json"),
                 str(tmp_path / "val-b" / "result.json"), "--out", str(tmp_path / "val"),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    val = load_record(tmp_path / "val" / "result.json")
    chosen = select_levers(val, 0.05, "tiny-stack-val")
    assert set(chosen["kept"]) | set(chosen["dropped"]) == {"bf16", "batch", "infobatch"}
    assert (f"keep {', '.join(chosen['kept']) or 'none'}; drop "
            f"{', '.join(chosen['dropped']) or 'none'}; test phase: --levers-from "
            f"{tmp_path / 'val' / 'result.json'}") in text
    assert "| stack-minus-batch |" in (tmp_path / "val" / "stack.md").read_text()

    plan = ["--task", "tiny-stack", "--levers-from", tmp_path / "val" / "result.json"]
    assert _bench(*plan, "--part", "levers", "--out", tmp_path / "a") == 0
    assert _bench(*plan, "--part", "controls", "--out", tmp_path / "b") == 0
    kept = [x for x in ("bf16", "batch", "infobatch") if x in chosen["kept"]]
    assert _methods(tmp_path / "a") == ["tuned-baseline", "stack"] + [
        f"stack-minus-{x}" for x in kept]
    assert _methods(tmp_path / "b") == ["only-bf16", "only-batch", "only-infobatch",
                                        "baseline", "baseline@0.6"]
    part = load_record(tmp_path / "b" / "result.json")
    assert {r["baseline"] for r in part["runs"]} == {"tuned-baseline"}
    assert part["options"]["levers"] == kept
    assert part["notes"]["stack_plan"]["selection"]["kept"] == chosen["kept"]
    tuned = load_record(tmp_path / "a" / "result.json")["runs"][0]["notes"]["stack"]
    assert tuned["choices"] == {"levers": saved["levers"], "plain": saved["plain"]}
    capsys.readouterr()
    assert main(["report", str(tmp_path / "a" / "result.json"),
                 str(tmp_path / "b" / "result.json"), "--out", str(tmp_path / "test"),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "verdict: " in text and "validation lever choice" not in text
    assert "plan: exploratory (no plan recorded)" in text and "by wall clock" in text
    assert (tmp_path / "test" / "stack.png").stat().st_size > 0


def test_one_line_errors_before_any_run(tiny, tmp_path, capsys):
    def error(*args):
        assert _bench(*args, "--out", tmp_path / "x") == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("hasten: error: ")
        return err

    assert f"--plan: {tmp_path / 'none.md'} is not a file" in error(
        "--task", "tiny-stack", "--plan", tmp_path / "none.md")
    assert "choices file not found: " in error("--task", "tiny-stack", "--choices",
                                               tmp_path / "none.json")
    assert "bench stack runs one task at a time: --tasks is replaced by --task T" in error(
        "--tasks", "tiny-stack,tiny-stack-val")
    assert "--part picks the plan's runs; drop it or --methods" in error(
        "--task", "tiny-stack", "--part", "levers", "--methods", "stack")
    assert "part: 'half' is not one of all, levers, controls" in error(
        "--task", "tiny-stack", "--set", "part=half")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**RECORD_HEADER, "suite": "stack", "runs": [
        {"task": "tiny-stack", "method": "stack", "seed": 0}]}))
    assert (f"{other} holds runs of tiny-stack, not of tiny-stack-val (the validation twin "
            "of tiny-stack)") in error("--task", "tiny-stack", "--levers-from", other)
    assert not (tmp_path / "x" / "result.json").exists()
