"""Bad input at the command line: one line naming the problem, exit code 2, no traceback,
nothing half-written. Plus the demo/bench output shape. One bad input goes through a
subprocess (the exit status a shell sees); the rest call `hasten.cli.main` in this process."""

import gzip
import json
import struct
from pathlib import Path

import pytest
from conftest import run_hasten, run_in_process


def _assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hasten: error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unparsable_budget(tmp_path):
    out = tmp_path / "run"
    proc = run_hasten("train", "--task", "digits", "--budget", "soon", "--out", out)
    _assert_one_line_error(proc, "cannot parse budget 'soon'")
    assert not out.exists()


def test_unknown_task_suite_and_seed_count(tmp_path):
    _assert_one_line_error(
        run_in_process("train", "--task", "imagenet", "--out", tmp_path / "x"),
        "unknown task 'imagenet'")
    _assert_one_line_error(run_in_process("bench", "nosuch", "--out", tmp_path / "b"),
                           "unknown suite 'nosuch'")
    _assert_one_line_error(
        run_in_process("bench", "vision", "--seeds", "0", "--out", tmp_path / "b"),
        "--seeds must be >= 1")
    assert not (tmp_path / "b").exists()


def _idx(path: Path, magic: int, dims: tuple[int, ...], payload: bytes | None = None) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)
    count = 1
    for d in dims:
        count *= d
    body = payload if payload is not None else bytes(count)
    with gzip.open(path, "wb") as f:
        f.write(header + body)


def _fake_fashion(root: Path, n_train=4, n_test=2, h=28, w=28, n_train_labels=None) -> Path:
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True)
    _idx(folder / "train-images-idx3-ubyte.gz", 2051, (n_train, h, w))
    _idx(folder / "train-labels-idx1-ubyte.gz", 2049, (n_train_labels or n_train,))
    _idx(folder / "t10k-images-idx3-ubyte.gz", 2051, (n_test, h, w))
    _idx(folder / "t10k-labels-idx1-ubyte.gz", 2049, (n_test,))
    return folder


def _train_fashion(data_root: Path, out: Path):
    return run_in_process("train", "--task", "fashion-mnist", "--budget", "2steps", "--out",
                          out, env={"HASTEN_DATA": str(data_root)})


def test_missing_data_file(tmp_path):
    proc = _train_fashion(tmp_path / "nothing-here", tmp_path / "run")
    _assert_one_line_error(proc, "train-images-idx3-ubyte.gz")
    assert not (tmp_path / "run").exists()


def test_corrupt_data_file(tmp_path):
    folder = _fake_fashion(tmp_path / "data")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    proc = _train_fashion(tmp_path / "data", tmp_path / "run")
    _assert_one_line_error(proc, "train-labels-idx1-ubyte.gz")
    assert not (tmp_path / "run").exists()


def test_wrong_shapes(tmp_path):
    _fake_fashion(tmp_path / "data", h=27)
    _assert_one_line_error(_train_fashion(tmp_path / "data", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_mismatched_image_and_label_counts(tmp_path):
    _fake_fashion(tmp_path / "data", n_train=4, n_train_labels=3)
    _assert_one_line_error(_train_fashion(tmp_path / "data", tmp_path / "run"))


def test_empty_dataset(tmp_path):
    _fake_fashion(tmp_path / "data", n_train=0)
    proc = _train_fashion(tmp_path / "data", tmp_path / "run")
    _assert_one_line_error(proc, "empty")
    assert not (tmp_path / "run").exists()


def test_checkpoint_from_another_model(tmp_path):
    out = tmp_path / "run"
    run_in_process("train", "--task", "digits", "--budget", "4steps", "--checkpoint-every",
                   "2", "--quiet", "--out", out, check=True)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    proc = run_in_process("train", "--task", "mnist1d", "--budget", "4steps", "--resume",
                          "--quiet", "--out", out)
    _assert_one_line_error(proc, "saved from another model")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_corrupt_checkpoint(tmp_path):
    out = tmp_path / "run"
    run_in_process("train", "--task", "digits", "--budget", "4steps", "--checkpoint-every",
                   "2", "--quiet", "--out", out, check=True)
    latest = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
    (latest / "state.json").write_text("{ not json")
    proc = run_in_process("train", "--task", "digits", "--budget", "8steps", "--resume",
                          "--quiet", "--out", out)
    _assert_one_line_error(proc, "corrupt")


REQUIRED = {"task", "method", "seed", "metric", "final", "train_seconds", "target",
            "time_to_target", "relative_time", "work", "curve"}


def test_quick_bench_writes_results_report_and_plot(tmp_path):
    out = tmp_path / "bench"
    proc = run_in_process("bench", "vision", "--quick", "--tasks", "digits", "--seeds", "2",
                          "--quiet", "--out", out, check=True)
    assert "report:" in proc.stdout
    results = json.loads((out / "result.json").read_text())
    assert set(results) >= {"suite", "created", "machine", "command", "runs"}
    assert results["suite"] == "vision" and len(results["runs"]) == 2
    assert [r["seed"] for r in results["runs"]] == [0, 1]
    for run in results["runs"]:
        assert REQUIRED <= set(run)
        assert run["relative_time"] is not None and run["target"] is not None
        assert all(len(point) == 3 for point in run["curve"])
        assert run["work"]["examples_backpropagated"] > 0 and run["work"]["flops"] > 0
    report = (out / "report.md").read_text()
    assert "## digits" in report and "relative time" in report
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    # one seed: the same path as the default three, a third of the runs
    proc = run_in_process("demo", "--seeds", "1", "--out", tmp_path / "demo", check=True)
    assert (tmp_path / "demo" / "report.md").exists()
    assert "relative time" in proc.stdout
