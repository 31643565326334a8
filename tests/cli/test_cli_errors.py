"""Input a user can fix ends in one line, `hasten: error: ...`, exit code 2, before any work
and with nothing written: a device the machine lacks, an output folder that cannot be
written, a method of another suite, a budget the task cannot count, a resume with nothing
to resume. Plus the cases that go on with one line: a `latest` pointer holding garbage, and
a resume of a folder with no checkpoint yet."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from own_tasks import write_task

from hasten.cli import main

CORPUS = "The cat sat on the mat.\n\nA dog ran under the tree and away.\n" * 20
NO_CUDA = torch.cuda.is_available()


def _one_line_error(rc: int, err: str, fragment: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hasten: error: "), err
    assert fragment in lines[0], lines[0]


def _command(name: str, tmp: Path) -> list[str]:
    """A command that would run if nothing were wrong (tiny settings)."""
    (tmp / "corpus.txt").write_text(CORPUS)
    return {
        "train": ["train", "--task", "digits", "--budget", "2steps"],
        "prune": ["prune", "--data", "digits", "--scorer", "random", "--keep", "0.5"],
        "cram": ["cram", "--corpus", str(tmp / "corpus.txt"), "--budget", "5s"],
        "distill": ["distill", "--data", "digits", "--method", "dm", "--ipc", "1",
                    "--budget", "2steps"],
        "bench": ["bench", "vision", "--tasks", "digits", "--methods", "baseline",
                  "--budget", "2steps"],
    }[name]


TINY_CRAM = ["--budget", "2steps", *[a for kv in (
    "layers=1", "hidden=32", "heads=2", "intermediate=64", "vocab_size=200", "seq_len=32",
    "batch=8", "micro_batch=8", "cutoff=none") for a in ("--set", kv)]]


# (case, command, extra arguments, the fragment the one line must hold); {tmp} and
# {file} are filled in; each runs with --out {tmp}/out unless it names its own --out
CASES = [
    *[(f"device cuda on a CPU build: {c}", c, ["--device", "cuda"],
       "device 'cuda' asked for, but this torch build has no CUDA support")
      for c in ("train", "prune", "cram", "distill")],
    *[(f"device tpu: {c}", c, ["--device", "tpu"], "unknown device 'tpu'")
      for c in ("train", "prune", "cram", "distill")],
    *[(f"out under a file: {c}", c, ["--out", "{file}/out"], "lies under the file")
      for c in ("train", "prune", "cram", "distill")],
    *[(f"out unwritable: {c}", c, ["--out", "/proc/hasten-test/out"], "cannot write in /proc")
      for c in ("train", "prune", "cram", "distill")],
    ("train, method of another suite", "train", ["--method", "plain*"],
     "method 'plain*' does not apply to task digits"),
    ("bench mt with a prune method", None,
     ["bench", "mt", "--methods", "plain,el2n-0.5", "--quick"],
     "method 'el2n-0.5' does not apply to task mt-en-de"),
    ("train digits, a token budget", "train", ["--budget", "1e6tok"],
     "budget 1e6tok counts tokens, but this run has no tokens_fn"),
    *[(f"resume a folder that does not exist: {c}", c, ["--resume", "--out", "{tmp}/nosuch"],
       "cannot resume: {tmp}/nosuch does not exist") for c in ("train", "cram", "distill",
                                                                "bench")],
]


@pytest.mark.parametrize("case, command, extra, fragment", CASES, ids=[c[0] for c in CASES])
def test_a_fixable_problem_is_one_line_exit_2_and_nothing_written(
        tmp_path, capsys, case, command, extra, fragment):
    if "cuda" in case and NO_CUDA:
        pytest.skip("this machine has CUDA: the case is about a build without it")
    (tmp_path / "file").write_text("x")
    fill = {"{tmp}": str(tmp_path), "{file}": str(tmp_path / "file")}

    def filled(text: str) -> str:
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    argv = [*(_command(command, tmp_path) if command else []), *map(filled, extra)]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    before = sorted(os.listdir(tmp_path))
    rc = main([*argv, "--quiet"] if command else argv)
    _one_line_error(rc, capsys.readouterr().err, filled(fragment))
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no folder left behind


def test_garbage_in_latest_without_checkpoints_starts_fresh_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "latest").write_bytes(bytes(range(200, 256)) * 2)
    rc = main(["train", "--task", "digits", "--budget", "2steps", "--out", str(out),
               "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert err.strip().splitlines() == [
        "checkpoint latest is damaged (the pointer holds binary garbage); no checkpoint in "
        f"{out}/checkpoints yet; starting fresh"]


def test_garbage_in_latest_falls_back_to_the_newest_checkpoint_in_one_line(tmp_path, capsys):
    task = f"{write_task(tmp_path)}:make_recipe"
    out = tmp_path / "run"
    argv = ["train", "--task", task, "--out", str(out), "--checkpoint-every", "4", "--quiet"]
    assert main(argv) == 0
    (out / "checkpoints" / "latest").write_bytes(b"\x00\xffgarbage\x80")
    (out / "result.json").unlink()
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["checkpoint latest is damaged (the pointer holds binary garbage); falling "
                   "back to step-8", "resumed from step 8"]


@pytest.mark.parametrize("command, line", [
    ("train", "no checkpoint in {out}/checkpoints yet; starting fresh"),
    ("cram", "no checkpoint in {out}/checkpoints yet; starting fresh"),
    ("distill", "no checkpoint in {out}/checkpoints yet; starting fresh"),
    ("bench", "no record in {out} yet; starting fresh"),
])
def test_resume_of_a_folder_with_nothing_saved_yet_starts_fresh_and_says_so(
        tmp_path, capsys, monkeypatch, command, line):
    monkeypatch.setenv("HASTEN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    out.mkdir()
    argv = _command(command, tmp_path)
    if command == "cram":
        argv = [*argv[:3], *TINY_CRAM]
    rc = main([*argv, "--out", str(out), "--resume", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert line.format(out=out) in captured.err.strip().splitlines()
    assert "resumed" not in captured.err
