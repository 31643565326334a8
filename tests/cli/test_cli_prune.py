"""`hasten prune` at the command line: the output folder, the printed summary, and bad input
(one line `hasten: error: ...`, exit code 2, no traceback, no output folder).

One bad input goes through a subprocess (the exit status a user's shell sees); the rest call
`hasten.cli.main` in-process, which parses and prints exactly the same, to keep the file
fast."""

import json

import numpy as np
import pytest
from conftest import run_hasten, run_in_process

from hasten.cli import main
from hasten.select.per_example import Scores


def _one_line_error(rc, err, *fragments):
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hasten: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _cli(capsys, *args):
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture
def blobs(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    x = (rng.normal(size=(200, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)).astype(np.float32)
    np.savez(tmp_path / "blobs.npz", x=x, y=y)
    return tmp_path / "blobs.npz", x, y


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "img.npz"
    np.savez(path, x=rng.random((64, 1, 8, 8)).astype(np.float32), y=rng.integers(0, 3, 64))
    return path


def test_el2n_writes_pruned_data_scores_and_summary(blobs, tmp_path):
    path, x, y = blobs
    out = tmp_path / "pruned"
    proc = run_in_process("prune", "--data", path, "--scorer", "el2n", "--keep", "0.5",
                          "--out", out, "--epochs", "1", "--device", "cpu", check=True)
    assert "200 -> 100 examples" in proc.stdout
    assert "scorer el2n (higher = harder), select hardest" in proc.stdout
    assert f"wrote {out}" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "blobs.npz", "config.json", "kept.npy", "scores.json", "scores.npy", "summary.json"]
    config = json.loads((out / "config.json").read_text())
    assert config["scorer"] == "el2n" and config["keep"] == 0.5 and config["epochs"] == 1
    assert config["data"] == str(path) and " hasten prune" in " " + config["command"]
    kept = np.load(out / "kept.npy", allow_pickle=False)
    assert len(kept) == 100
    with np.load(out / "blobs.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["x"], x[kept])
        np.testing.assert_array_equal(z["y"], y[kept])
    values = np.load(out / "scores.npy", allow_pickle=False)
    info = json.loads((out / "scores.json").read_text())
    assert len(values) == 200 and info["name"] == "el2n" and info["higher_is"] == "harder"
    assert set(np.argsort(-values, kind="stable")[:100]) == set(kept.tolist())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["before"] == 200 and summary["after"] == 100 and summary["removed"] == 100
    assert summary["scorer"] == "el2n" and summary["direction"] == "harder"
    assert summary["select"] == "hardest" and summary["keep"] == 0.5
    assert summary["scoring_seconds"] > 0 and summary["scorer_options"]["epochs"] == 1.0


def test_scores_reuse_gives_the_same_kept_set_without_scoring(blobs, tmp_path, capsys,
                                                              monkeypatch):
    path, _, _ = blobs
    rc, _, err = _cli(capsys, "prune", "--data", path, "--scorer", "forgetting", "--keep", "0.3",
                      "--out", tmp_path / "a", "--epochs", "1", "--device", "cpu", "--quiet")
    assert rc == 0, err
    monkeypatch.setattr("hasten.select.scorers.score",
                        lambda *a, **k: pytest.fail("scored again"))
    rc, out, err = _cli(capsys, "prune", "--data", path, "--scores",
                        tmp_path / "a" / "scores.npy", "--keep", "0.3", "--out", tmp_path / "b")
    assert rc == 0, err
    assert "reusing forgetting scores" in out and "reused from" in out
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "kept.npy"),
                                  np.load(tmp_path / "b" / "kept.npy"))


def test_el2n_first_epoch_reports_its_cost_and_the_break_even(blobs, tmp_path, capsys):
    path, _, _ = blobs
    out = tmp_path / "o"
    rc, stdout, err = _cli(capsys, "prune", "--data", path, "--scorer", "el2n-first-epoch",
                           "--keep", "0.5", "--epochs", "2", "--set", "full_time=10",
                           "--device", "cpu", "--out", out, "--quiet")
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    a = summary["amortisation"]
    assert a["scoring_seconds"] == summary["scoring_seconds"] > a["recording_seconds"] > 0
    assert a["scoring_flops"] == summary["scoring_work"]["flops"] > 0
    # the 2 epochs of 200 trained, in batches of 128: 4 steps
    assert summary["scoring_work"]["examples_backpropagated"] == 512
    assert (a["full_time"], a["subset_time"], a["subset_time_estimated"]) == (10, 5.0, True)
    assert a["break_even"] == a["scoring_seconds"] / 5.0
    assert a["break_even_in_run"] == a["recording_seconds"] / 5.0
    info = json.loads((out / "scores.json").read_text())
    assert info["name"] == "el2n-first-epoch" and info["higher_is"] == "harder"
    lines = stdout.splitlines()
    assert lines[1] == (
        f"scorer el2n-first-epoch (higher = harder), select hardest; scoring "
        f"{a['scoring_seconds']:.1f}s, {a['scoring_flops']:.3g} FLOPs "
        f"({a['recording_seconds']:.2f}s of it recording EL2N; the rest trains the epoch a "
        "full-data run trains anyway)")
    assert lines[2] == (f"break-even: {a['break_even']:.2f} trainings on the kept subset "
                        "repay the scoring; full data 10.0s, kept subset 5.0s (keep x "
                        "full_time) per training")
    assert lines[3] == (f"break-even inside a full-data run: {a['break_even_in_run']:.2f} "
                        "trainings (only the recording is paid)")
    rc, stdout, err = _cli(capsys, "prune", "--data", path, "--scorer", "random", "--keep",
                           "0.5", "--set", "full_time=10", "--set", "subset_time=12",
                           "--out", tmp_path / "never", "--quiet")
    assert rc == 0, err
    assert ("break-even: never, the kept subset is not faster; full data 10.0s, kept "
            "subset 12.0s (as given) per training") in stdout.splitlines()


def test_random_ccs_on_images(images, tmp_path, capsys):
    out = tmp_path / "o"
    rc, stdout, err = _cli(capsys, "prune", "--data", images, "--scorer", "random", "--keep",
                           "0.25", "--select", "ccs", "--beta", "0.1", "--strata", "4",
                           "--out", out, "--quiet")
    assert rc == 0, err
    assert "select ccs, beta 0.1, strata 4, seed 0" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["after"] == 16 and summary["selection"]["method"] == "ccs"
    assert len(np.load(out / "kept.npy")) == 16


def test_el2n_balanced_on_images_with_convnet(images, tmp_path, capsys):
    out = tmp_path / "o"
    rc, stdout, err = _cli(capsys, "prune", "--data", images, "--scorer", "el2n", "--keep", "0.5",
                           "--balance", "--epochs", "1", "--batch-size", "32", "--device", "cpu",
                           "--out", out)
    assert rc == 0, err
    assert "scoring 64 examples with el2n" in stdout  # progress line (not --quiet)
    assert "select hardest, class-balanced" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scorer_options"]["model"] == "convnet3" and summary["after"] == 32


def test_text_jsonl_tokens_per_char_with_dedup(tmp_path):
    clean = [f"Sentence number {w} tells a plain story about a cat and a small house."
             for w in ("one", "two", "three", "four", "five", "six", "seven", "eight")]
    docs = clean + [clean[0], "  " + clean[1], "x9#@!q 7&&^%$ 0x3f;;{}[] zz__ 99!!"]
    path = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"id": i, "text": d}) for i, d in enumerate(docs)]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o"
    proc = run_in_process("prune", "--data", path, "--scorer", "tokens-per-char", "--dedup",
                          "--keep", "0.9", "--out", out, check=True)
    assert "11 -> 8 examples" in proc.stdout and "2 dropped by dedup first" in proc.stdout
    assert "select easiest" in proc.stdout
    kept = np.load(out / "kept.npy", allow_pickle=False)
    assert 8 not in kept and 9 not in kept and 10 not in kept  # copies and junk gone
    assert (out / "corpus.jsonl").read_text().splitlines() == [lines[i] for i in kept]
    info = json.loads((out / "scores.json").read_text())
    assert info["name"] == "tokens_per_char" and info["higher_is"] == "harder"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prefilter"]["dedup"]["exact_removed"] == 2


def test_bad_input_in_a_subprocess_has_no_traceback(blobs, tmp_path):
    path, _, _ = blobs
    proc = run_hasten("prune", "--data", path, "--scorer", "tokens-per-char", "--keep", "0.5",
                      "--out", tmp_path / "o")
    _one_line_error(proc.returncode, proc.stderr, "needs text input")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--data", "{tmp}/nope.npz", "--scorer", "el2n", "--keep", "0.5"], "input not found"),
    (["--scorer", "el2n", "--keep", "0"], "keep must be a fraction in (0, 1], got 0.0"),
    (["--scorer", "el2n", "--keep", "1.5"], "keep must be a fraction in (0, 1], got 1.5"),
    (["--scorer", "el3n", "--keep", "0.5"], "unknown scorer 'el3n'"),
    (["--scorer", "el2n", "--select", "hard", "--keep", "0.5"], "unknown selector 'hard'"),
    (["--scores", "{tmp}/short.npy", "--keep", "0.5"], "have 10 values but the input has 200"),
    (["--scores", "{tmp}/missing.npy", "--keep", "0.5"], "scores file not found"),
    (["--scorer", "length", "--keep", "0.5"], "needs text input"),
    (["--data", "{tmp}/t.jsonl", "--scorer", "el2n", "--keep", "0.5"],
     "needs classification data"),
    (["--scorer", "el2n", "--keep", "0.5", "--beta", "0.1"], "applies only to the ccs"),
    (["--scorer", "el2n", "--keep", "0.5", "--dedup"], "apply only to text input"),
    (["--scorer", "forgetting", "--keep", "0.5", "--epochs", "0.5"], "epochs must be >= 1"),
    (["--scorer", "el2n-first-epoch", "--keep", "0.5", "--epochs", "0.5"],
     "el2n-first-epoch records over the first epoch: epochs must be >= 1, got 0.5"),
    (["--scorer", "random", "--keep", "0.5", "--set", "full_time=-1"],
     "full_time must be a number of seconds > 0, got -1.0"),
    (["--scorer", "random", "--keep", "0.5", "--set", "subset_time=3"],
     "subset_time needs full_time (the full-data training time to compare it with)"),
])
def test_bad_input_is_one_line_and_exit_2(blobs, tmp_path, capsys, args, fragment):
    path, _, _ = blobs
    Scores(np.zeros(10), "el2n", "harder").save(tmp_path / "short")
    (tmp_path / "t.jsonl").write_text('{"text": "hello"}\n')
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--data" not in args:
        args = ["--data", str(path), *args]
    out = tmp_path / "out"
    rc, _, err = _cli(capsys, "prune", *args, "--out", out, "--device", "cpu", "--quiet")
    _one_line_error(rc, err, fragment)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_existing_output_needs_overwrite(blobs, tmp_path, capsys):
    path, _, _ = blobs
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    base = ["prune", "--data", path, "--scorer", "random", "--keep", "0.5", "--out", out,
            "--quiet"]
    rc, _, err = _cli(capsys, *base)
    _one_line_error(rc, err, "exists and is not empty", "--overwrite")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    rc, _, err = _cli(capsys, *base, "--overwrite")
    assert rc == 0, err
    assert not (out / "mine.txt").exists() and (out / "summary.json").exists()
