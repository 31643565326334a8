"""Every command that writes a folder writes the resolved settings to its config.json (defaults,
`--set` and flags merged, with the command line), checked by running each one tiny and
in-process; and every command's `--help` renders (its settings list included)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import RECORD_HEADER, ROOT
from own_tasks import write_task

import hasten.bench.chaos as chaos
import hasten.bench.harness as harness
from hasten.bench.chaos import ChaosConfig, ChaosRecord
from hasten.cli import COMMANDS, main
from hasten.core.config import to_dict

sys.path.insert(0, str(ROOT / "tests" / "pretrain" / "lmeval"))
from lmeval_helpers import DOCS, get_tiny_export, write_toy_glue  # noqa: E402

TINY_CRAM = ["--set", "hidden=32", "--set", "layers=1", "--set", "heads=2", "--set",
             "intermediate=64", "--set", "batch=8", "--set", "micro_batch=8"]


def _train(tmp_path, out):
    task = f"{write_task(tmp_path)}:make_recipe"
    return ["train", "--task", task, "--budget", "2steps", "--set", "seed=3", "--out", out], \
        {"budget": "2steps", "seed": 3, "task": task, "method": "baseline"}


def _prune(tmp_path, out):
    return ["prune", "--data", "digits", "--scorer", "random", "--keep", "0.5", "--set",
            "seed=2", "--out", out], {"keep": 0.5, "scorer": "random", "seed": 2,
                                      "full_time": None}


def _distill(tmp_path, out):
    return ["distill", "--data", "digits", "--method", "random", "--ipc", "2", "--out", out], \
        {"ipc": 2, "method": "random", "data": "digits"}


def _cram(tmp_path, out):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(DOCS * 5))
    return ["cram", "--corpus", str(corpus), "--budget", "2steps", "--vocab-size", "120",
            "--seq-len", "32", "--cutoff", "none", "--set", 'precision="fp32"',
            "--set", f"cache={tmp_path / 'cache'}", *TINY_CRAM, "--out", out], \
        {"budget": "2steps", "changes": {
            "vocab_size": 120, "seq_len": 32, "cutoff": None, "precision": "fp32",
            "hidden": 32, "layers": 1, "heads": 2, "intermediate": 64, "batch": 8,
            "micro_batch": 8}}


def _glue(tmp_path, out):
    return ["glue", str(get_tiny_export()), "--tasks", "sst2", "--seeds", "1", "--epochs",
            "1", "--max-train-examples", "16", "--max-eval-examples", "16", "--device", "cpu",
            "--out", out], {"tasks": "sst2", "seeds": 1, "max_train_examples": 16}


def _eval_lm(tmp_path, out):
    glue = write_toy_glue(tmp_path / "toyglue")
    return ["eval-lm", str(get_tiny_export()), "--evals", "probes", "--glue-dir", str(glue),
            "--device", "cpu", "--out", out], {"evals": ["probes"], "glue_dir": str(glue),
                                               "model_dir": str(get_tiny_export())}


def _bench(tmp_path, out):
    task = f"{write_task(tmp_path)}:make_recipe"
    return ["bench", "vision", "--tasks", task, "--seeds", "2", "--out", out], \
        {"suite": "vision", "seeds": 2, "tasks": [task], "repeat_flagged": False}


def _report(tmp_path, out):
    results = tmp_path / "r.json"
    results.write_text(json.dumps({**RECORD_HEADER, "runs": [
        {"task": "t", "method": "baseline", "seed": 0, "final": 1.0}]}))
    return ["report", str(results), "--out", out], {"files": [str(results)]}


def _chaos(tmp_path, out):
    return ["bench", "chaos", "--kills", "2", "--set", "steps=40", "--out", out], \
        {"options": {**to_dict(ChaosConfig()), "kills": 2, "steps": 40}, "suite": "chaos"}


def _demo(tmp_path, out):
    return ["demo", "--seeds", "2", "--out", out], {"seeds": 2}


CASES = {"train": _train, "prune": _prune, "distill": _distill, "cram": _cram,
         "glue": _glue, "eval-lm": _eval_lm, "bench": _bench, "report": _report,
         "chaos": _chaos, "demo": _demo}


@pytest.fixture
def quick_suites(monkeypatch):
    """chaos and demo stand in for their minutes-long runs (their settings are the point)."""
    real = harness.run_suite

    def run_suite(name, **kw):
        if name == "demo":
            return {"suite": "demo", "runs": []}
        return real(name, **kw)

    monkeypatch.setattr(harness, "run_suite", run_suite)
    monkeypatch.setattr(chaos, "run_chaos", lambda config, say=None: ChaosRecord(
        kills=config.kills, identical=True))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("command", list(CASES))
def test_every_folder_gets_the_resolved_settings(command, tmp_path, quick_suites, capsys):
    out = tmp_path / "out"
    args, expected = CASES[command](tmp_path, str(out))
    assert main([*args, "--quiet"]) == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    for key, value in expected.items():
        assert config[key] == value, key
    assert config["quiet"] is True
    assert f"hasten {args[0]} " in config["command"]


@pytest.mark.parametrize("command", [*COMMANDS, "bench stack", "bench chaos",
                                     "bench infobatch", "bench pretrain-ladder"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*command.split(), "--help"])
    assert stop.value.code == 0
    assert "usage: hasten" in capsys.readouterr().out
