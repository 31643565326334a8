"""Every mistake is one line, and no result is lost: input that can be checked is checked
before any work (nothing printed first, nothing written), a folder holding a finished run or
files a command did not write is never written into without --overwrite, a damaged model
folder is one line, and the messages say what is wrong in the command line's own terms."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_hasten
from own_tasks import write_task
from safetensors.torch import save_file

from hasten.cli import main

CORPUS = "The cat sat on the mat.\n\nA dog ran under the tree and away.\n" * 20
TRAIN = ["train", "--task", "digits", "--budget", "2steps", "--quiet"]


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a hash of its bytes (folders as names)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        out[key] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def refused(capsys, tmp_path: Path, argv: list[str], fragment: str) -> str:
    """`hasten ARGV` ends in exit 2 with one line holding `fragment`, prints nothing else
    (no header, no progress line) and changes nothing under `tmp_path`."""
    before = _tree(tmp_path)
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hasten: error: "), captured.err
    assert fragment in lines[0], lines[0]
    assert captured.out == ""
    assert _tree(tmp_path) == before
    return lines[0]


@pytest.fixture
def finished(tmp_path, capsys):
    """A finished `hasten train` run folder."""
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    capsys.readouterr()
    return out


def _model_folder(folder: Path, weights: bytes | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    save_file({"w": torch.zeros(64, 64)}, str(folder / "model.safetensors"))
    if weights is not None:
        (folder / "model.safetensors").write_bytes(weights)
    return folder


# --- results are never replaced unasked ----------------------------------------------------


def test_train_refuses_a_finished_run_and_its_resume(finished, tmp_path, capsys):
    refused(capsys, tmp_path, [*TRAIN, "--out", finished],
            f"--out {finished} holds a finished run (result.json); choose another folder, "
            "or pass --overwrite to replace it")
    refused(capsys, tmp_path, [*TRAIN, "--out", finished, "--resume"],
            f"--out {finished} holds a finished run with no checkpoint to resume from; pass "
            "--overwrite to train it again")


def test_train_refuses_a_folder_holding_files_it_did_not_write(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    refused(capsys, tmp_path, [*TRAIN, "--out", mine],
            f"--out {mine} holds files this command did not write (notes.txt); choose another "
            "folder, or pass --overwrite to write there anyway")


def test_train_refuses_a_stopped_run_without_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out), "--checkpoint-every", "1"]) == 0
    (out / "result.json").unlink()
    capsys.readouterr()
    refused(capsys, tmp_path, [*TRAIN, "--out", out],
            f"--out {out} holds a run that did not finish; pass --resume to continue it, or "
            "--overwrite to start over")


def test_train_overwrite_replaces_the_run_and_a_failed_one_loses_nothing(finished, capsys):
    (finished / "notes.txt").write_text("kept")
    before = _tree(finished)
    rc = main([*TRAIN, "--out", str(finished), "--overwrite", "--lr", "-1"])
    assert rc == 2 and "lr must be a positive number" in capsys.readouterr().err
    assert _tree(finished) == before  # the earlier run is back, byte for byte
    assert main(["train", "--task", "digits", "--budget", "3steps", "--quiet", "--out",
                 str(finished), "--overwrite"]) == 0
    result = json.loads((finished / "result.json").read_text())
    assert result["steps"] == 3 and (finished / "notes.txt").read_text() == "kept"
    ends = [json.loads(line) for line in (finished / "metrics.jsonl").read_text().splitlines()]
    assert [row["kind"] for row in ends].count("end") == 1  # one run's log, not two
    assert not [p for p in finished.iterdir() if p.name.startswith(".hasten-replaced-")]


@pytest.mark.parametrize("command", ["glue", "eval-lm", "demo"])
def test_glue_eval_lm_and_demo_refuse_a_folder_that_is_not_empty(tmp_path, capsys, command):
    model = _model_folder(tmp_path / "model")
    out = tmp_path / "out"
    out.mkdir()
    (out / "glue.json").write_text("{}")
    argv = {"glue": ["glue", model, "--tasks", "rte"], "eval-lm": ["eval-lm", model],
            "demo": ["demo"]}[command]
    refused(capsys, tmp_path, [*argv, "--out", out],
            f"--out {out} exists and is not empty; pass --overwrite to replace it")


def test_bench_and_report_refuse_a_folder_no_hasten_command_wrote(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    record = tmp_path / "r.json"
    record.write_text(json.dumps({"suite": "s", "runs": []}))
    line = (f"--out {out} holds files this command did not write (thesis.tex); choose another "
            "folder, or pass --overwrite to write there anyway")
    refused(capsys, tmp_path, ["bench", "vision", "--tasks", "digits", "--methods",
                               "baseline", "--budget", "2steps", "--quiet", "--out", out], line)
    refused(capsys, tmp_path, ["report", record, "--quiet", "--out", out], line)


def test_every_command_that_writes_a_folder_has_overwrite(capsys):
    from hasten.cli import COMMANDS, build_parser

    for command in COMMANDS:
        if command == "list":
            continue
        argv = [command, "vision"] if command == "bench" else [command]
        parser = build_parser(argv)
        sub = next(a for a in parser._actions if isinstance(a.choices, dict))
        flags = {s for a in sub.choices[command]._actions for s in a.option_strings}
        assert "--overwrite" in flags, command


# --- checked before any work ---------------------------------------------------------------


def _cram(corpus: Path | str, out: Path) -> list:
    return ["cram", "--corpus", corpus, "--budget", "20s", "--out", out, "--quiet"]


def test_cram_checks_its_corpus_before_sizing_the_model(tmp_path, capsys):
    out = tmp_path / "out"
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(bytes([0x98, 0xff, 0x00, 0x12]) * 64)
    nul = tmp_path / "zeros.txt.gz"
    nul.write_bytes(gzip.compress(bytes(300)))
    no_text = tmp_path / "images"
    no_text.mkdir()
    (no_text / "a.png").write_bytes(b"\x89PNG")
    refused(capsys, tmp_path, _cram(empty, out),
            "the corpus is empty: no non-blank text in 1 file(s)")
    refused(capsys, tmp_path, _cram(binary, out),
            f"{binary} is not UTF-8 text (byte 0x98 at offset 0); a corpus is text files")
    refused(capsys, tmp_path, _cram(nul, out), f"{nul} holds NUL bytes (a binary file, not "
                                               "text)")
    refused(capsys, tmp_path, _cram(tmp_path / "missing.txt", out),
            f"file not found: {tmp_path / 'missing.txt'}")
    refused(capsys, tmp_path, _cram(no_text, out), f"no text files (.jsonl, .md, .ndjson, "
                                                   f".text, .txt) in {no_text}")


def test_distill_checks_ipc_and_its_budget_unit_before_reading_data(tmp_path, capsys):
    base = ["distill", "--data", "digits", "--method", "dm", "--out", tmp_path / "out",
            "--quiet"]
    refused(capsys, tmp_path, [*base, "--ipc", "0"],
            "--ipc (images per class) must be an integer >= 1, got 0")
    refused(capsys, tmp_path, [*base, "--ipc", "1", "--budget", "1e6tok"],
            "distillation budgets are iterations (e.g. 500steps), wall clock (e.g. 20m) or "
            "examples; got 1e6tok")


@pytest.mark.parametrize("command", ["train", "cram", "distill"])
def test_half_a_step_and_a_device_that_does_not_exist(tmp_path, capsys, command):
    (tmp_path / "corpus.txt").write_text(CORPUS)
    argv = {"train": TRAIN[:3],
            "cram": ["cram", "--corpus", tmp_path / "corpus.txt"],
            "distill": ["distill", "--data", "digits", "--method", "dm", "--ipc", "1"]}[command]
    out = ["--out", tmp_path / "out", "--quiet"]
    refused(capsys, tmp_path, [*argv, "--budget", "0.5steps", *out],
            "budget '0.5steps' counts whole optimizer steps: use a whole number, e.g. 1steps")
    refused(capsys, tmp_path, [*argv, "--budget", "2steps", "--device", "cpu:7", *out],
            "device 'cpu:7' does not exist: the CPU is one device; use --device cpu")


def test_bench_checks_its_budget_before_writing_its_settings(tmp_path, capsys):
    refused(capsys, tmp_path, ["bench", "vision", "--tasks", "digits", "--methods", "baseline",
                               "--budget", "0.5steps", "--out", tmp_path / "out"],
            "budget '0.5steps' counts whole optimizer steps")


def test_eval_lm_checks_its_device_before_loading(tmp_path, capsys):
    model = _model_folder(tmp_path / "model")
    refused(capsys, tmp_path, ["eval-lm", model, "--device", "cpu:7"],
            "device 'cpu:7' does not exist: the CPU is one device; use --device cpu")
    refused(capsys, tmp_path, ["eval-lm", model, "--device", "tpu"],
            "unknown device 'tpu'; use cpu, cuda, cuda:N or mps")


@pytest.mark.parametrize("budget", ["-5m", "-5s", "-2steps"])
def test_a_negative_budget_is_said_to_be_negative(tmp_path, capsys, budget):
    refused(capsys, tmp_path, [*TRAIN[:3], "--budget", budget, "--out", tmp_path / "out"],
            f"budget '{budget}' must be positive: a number above 0 and a unit, e.g. 90s, 20m, "
            "2000steps")


# --- damaged model folders -----------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("command", ["glue", "eval-lm"])
def test_a_damaged_weights_file_is_one_line(tmp_path, capsys, command, damage):
    good = _model_folder(tmp_path / "good") / "model.safetensors"
    raw = good.read_bytes()
    weights = os.urandom(200) if damage == "garbage" else raw[:len(raw) // 2]
    model = _model_folder(tmp_path / "model", weights)
    argv = ["glue", model, "--tasks", "rte"] if command == "glue" else ["eval-lm", model]
    line = refused(capsys, tmp_path, [*argv, "--out", tmp_path / "out"],
                   f"{model / 'model.safetensors'} is damaged (garbage or cut short: ")
    assert line.endswith("); copy or export the model again")


def test_a_damaged_config_is_one_line(tmp_path, capsys):
    model = _model_folder(tmp_path / "model")
    (model / "config.json").write_bytes(b'{"model_type": "be')
    refused(capsys, tmp_path, ["eval-lm", model],
            f"{model / 'config.json'} is damaged (not JSON: ")


# --- messages that say what to do ----------------------------------------------------------


def test_a_pickled_npz_as_data_says_hasten_never_loads_it(tmp_path, capsys):
    data = tmp_path / "mine.npz"
    np.savez(data, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    refused(capsys, tmp_path, [*TRAIN, "--data", data, "--out", tmp_path / "out"],
            f"{data} holds Python objects, which hasten never loads (no pickle); give a "
            "data.npz of number arrays x and y (what hasten prune writes)")


def test_missing_fashion_mnist_names_hasten_data_not_a_python_argument(tmp_path):
    # its own process: this one may hold Fashion-MNIST in memory already
    proc = run_hasten("train", "--task", "fashion-mnist", "--budget", "2steps", "--out",
                      tmp_path / "out", "--quiet", env={"HASTEN_DATA": str(tmp_path / "data")})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and proc.stdout == ""
    assert lines[0].startswith(f"hasten: error: {tmp_path / 'data' / 'fashion-mnist'}/")
    assert "file not found; set HASTEN_DATA to a folder holding fashion-mnist/" in lines[0]
    assert "pass download=True" not in lines[0] and not (tmp_path / "out").exists()


def test_a_dict_of_tensors_as_train_data_is_one_line(tmp_path, capsys):
    task = write_task(tmp_path)
    with_dict = task.read_text() + (
        "\n\ndef columns(seed, quick):\n"
        "    return Recipe(nn.Linear(6, 2), {'x': X, 'y': DATA.tensors[1]}, loss, evaluate,\n"
        "                  TrainConfig(budget='8steps'))\n")
    task.write_text(with_dict)
    refused(capsys, tmp_path, ["train", "--task", f"{task}:columns", "--out", tmp_path / "out",
                               "--quiet"],
            "Recipe: train_data must be a dataset, not a dict of columns (wrap them: "
            "TensorDataset(x, y), or datasets.Dataset.from_dict(columns)), got a dict with "
            "keys 'x', 'y'")
