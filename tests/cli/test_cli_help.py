"""The command line explains itself in one style: every flag's help says what it does (with
units), then its default and why; one flag name per idea (`bench stack` takes `--task`, and
`--tasks` names it); `--config`/`--set` on every command; `hasten list` prints real
descriptions with correct plurals; off a terminal one progress format."""

from __future__ import annotations

import re
import types

import pytest
from conftest import help_text

from hasten.cli import COMMANDS, build_parser, common, main
from hasten.core.budget import Budget
from hasten.core.trainer import TrainConfig

COMMAND_LINES = [[c] for c in COMMANDS if c not in ("bench", "list")] + [
    ["bench", s] for s in ("vision", "prune", "infobatch", "distill", "mt", "stack", "chaos")]


def _flags(argv: list[str]) -> list:
    parser = build_parser(argv)
    sub = next(a for a in parser._actions if isinstance(a.choices, dict))
    return [a for a in sub.choices[argv[0]]._actions
            if a.option_strings and a.help not in (None, "==SUPPRESS==")
            and a.dest not in ("help", "config", "set")]


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_every_flag_says_what_it_does_then_its_default_and_why(argv):
    for action in _flags(argv):
        text = " ".join(action.help.split()).replace("%%", "%")
        flag = action.option_strings[0]
        if flag in ("--option", "--corpus"):  # free-form: KEY=VALUE, files
            continue
        assert text.endswith("(required)") or "; default " in text, (flag, text)
        what = text.partition("; default ")[0]
        assert not re.match(r"^(None|auto|empty|\d+):", what), (flag, text)


@pytest.mark.parametrize("argv", [a for a in COMMAND_LINES if a != ["bench", "chaos"]],
                         ids=" ".join)
def test_a_budget_flag_names_its_units(argv):
    budgets = [a for a in _flags(argv) if a.dest == "budget"]
    for action in budgets:
        assert re.search(r"\bs, m, h\b", action.help) and "steps" in action.help, action.help


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_every_command_takes_config_and_set(capsys, argv):
    text = help_text(capsys, *argv)
    assert "--config FILE" in text and "--set KEY=VALUE" in text


def test_glue_takes_its_settings_from_a_file_and_set(tmp_path, capsys, monkeypatch):
    seen = {}

    def fake(model_dir, **kw):
        seen.update(kw)
        return {"tasks": {}, "average": 0.0}

    monkeypatch.setattr("hasten.cli.glue.evaluate_glue", fake)
    monkeypatch.setattr("hasten.cli.glue.check_model_folder", lambda path: path)
    config = tmp_path / "glue.toml"
    config.write_text("[glue]\nlr = 1e-4\nseeds = 2\n")
    assert main(["glue", "model", "--config", str(config), "--set", "batch=8",
                 "--tasks", "rte"]) == 0
    assert seen["lr"] == 1e-4 and seen["batch"] == 8 and seen["seeds"] == 2
    assert seen["tasks"] == "rte"


def test_bench_stack_takes_task_and_names_it_for_tasks(capsys):
    text = help_text(capsys, "bench", "stack")
    assert "--task TASK" in text and "--tasks" not in text
    assert main(["bench", "stack", "--tasks", "fashion-stack", "--quick"]) == 2
    assert capsys.readouterr().err.strip() == (
        "hasten: error: bench stack runs one task at a time: --tasks is replaced by --task T")


def test_cram_names_its_cache_folder_as_every_command_does(capsys):
    text = help_text(capsys, "cram")
    assert "--cache-dir CACHE_DIR" in text and "--cache " not in text


def test_list_prints_real_descriptions_and_correct_plurals(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for placeholder in ("a registered task", "a registered method", "(1 methods",
                        "(DC with DSA augmentation)"):
        assert placeholder not in text, placeholder
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    builtin = [name for name in lines if ":" not in name]  # tasks of one's own may lack one
    assert not [name for name in builtin if "(no description" in lines[name]]
    assert lines["vision"].endswith("(1 method)")
    assert "(6 methods" in lines["selective"]
    assert "8x8 digits" in lines["digits"] and "MNIST-1D" in lines["mnist1d"]
    assert "The bf16 lever alone" in lines["only-bf16"]


# --- one progress format -------------------------------------------------------------------


def _state(quiet: bool, step: int = 12) -> types.SimpleNamespace:
    budget = Budget("40steps")
    budget.work.steps = step
    return types.SimpleNamespace(config=TrainConfig(quiet=quiet), step=step, last_loss=0.25,
                                 metrics={"accuracy": 91.5}, budget=budget)


def test_the_progress_hook_prints_the_trainers_line_only_when_the_trainer_does_not(
        capsys, monkeypatch):
    monkeypatch.setattr(common, "PROGRESS_EVERY", 0.0)
    monkeypatch.setattr(common, "on_terminal", lambda: False)
    hook = common.progress_hook(quiet=False)
    hook.on_start(_state(quiet=False))  # the trainer prints its own lines: the hook is silent
    hook.on_step_end(_state(quiet=False))
    assert capsys.readouterr() == ("", "")
    hook = common.progress_hook(quiet=False)
    hook.on_start(_state(quiet=True))  # a suite's quiet run: the hook prints, same format
    hook.on_step_end(_state(quiet=True))
    out, err = capsys.readouterr()
    assert out == "" and re.fullmatch(
        r"train  30\.0% step 12 loss 0\.2500 accuracy 91\.50 eta \d:\d\d:\d\d\n", err), err
