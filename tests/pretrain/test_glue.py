"""`hasten glue`: metric functions against hand-computed values, the GLUE readers, a quick
run of all five tasks on a tiny `hasten cram` export, parallel tasks, and bad input."""

import functools
import json
import math

import numpy as np
import pytest
from conftest import run_in_process

from hasten.cli import main
from hasten.core.errors import ConfigError
from hasten.pretrain.glue import (
    TASKS,
    accuracy,
    f1_binary,
    glue_root,
    mcc,
    parse_tasks,
    pearson,
    read_task,
    spearman,
)


def needs_glue(fn):
    """Tests that read GLUE fail, never skip, when the data is missing."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        assert (glue_root() / "CoLA" / "dev.tsv").is_file(), (
            f"GLUE data missing under {glue_root()} (set HASTEN_DATA)")
        return fn(*args, **kwargs)
    return wrapper


def test_metrics_by_hand():
    pred, gold = [1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0]
    # tp 2, fp 1, fn 1, tn 2
    assert accuracy(pred, gold) == pytest.approx(4 / 6)
    assert f1_binary(pred, gold) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert mcc(pred, gold) == pytest.approx((2 * 2 - 1 * 1) / math.sqrt(3 * 3 * 3 * 3))
    assert mcc([1, 1, 1], [1, 0, 1]) == 0.0  # empty margin
    assert mcc([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert f1_binary([0, 0], [0, 0]) == 0.0
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0]
    # centred x = [-1.5, -.5, .5, 1.5], y = [-.5, -1.5, 1.5, .5]; cov = .75+.75+.75+.75 = 3
    assert pearson(x, y) == pytest.approx(3.0 / 5.0)
    assert pearson(x, [2 * v + 1 for v in x]) == pytest.approx(1.0)
    assert pearson(x, [1.0] * 4) == 0.0
    assert spearman([1, 10, 100, 1000], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(pearson([0.5, 0.5, 2], [0, 1, 2]))


def test_parse_tasks():
    assert parse_tasks(None) == ["cola", "sst2", "mrpc", "stsb", "rte"]
    assert parse_tasks("SST-2, sts-b,cola") == ["sst2", "stsb", "cola"]
    with pytest.raises(ConfigError, match="unknown GLUE task 'mnli'"):
        parse_tasks("cola,mnli")


@needs_glue
def test_readers_match_the_split_sizes():
    sizes = {"cola": 1043, "sst2": 872, "mrpc": 408, "stsb": 1500, "rte": 277}
    for task, n in sizes.items():
        a, b, y = read_task(task, "dev")
        assert len(a) == len(y) == n
        assert (b is None) == (not TASKS[task].pair)
        assert all(isinstance(s, str) and s for s in a[:20])
    _, _, y = read_task("stsb", "dev")
    assert y.dtype == np.float32 and 0.0 <= y.min() and y.max() <= 5.0
    _, _, y = read_task("rte", "train")
    assert set(np.unique(y)) == {0, 1} and len(y) == 2490
    _, _, y = read_task("mrpc", "train")
    assert len(y) == 3668


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    from hasten.pretrain.cram import CramConfig, cram

    tmp = tmp_path_factory.mktemp("glue")
    words = "the a cat dog sat ran on under mat tree quickly slowly and but not".split()
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(words, size=30)) + "." for _ in range(200)]
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n\n".join(docs))
    cram(CramConfig(corpus=[str(corpus)], budget="5steps", out=str(tmp / "run"),
                    changes=dict(vocab_size=200, seq_len=32, cutoff=None, layers=1, hidden=32,
                                 heads=2, intermediate=64, batch=8, micro_batch=8,
                                 precision="fp32"), quiet=True))
    return tmp / "run" / "model"


@needs_glue
def test_glue_cli_all_tasks(tiny_export, tmp_path):
    out = tmp_path / "glue"
    proc = run_in_process("glue", tiny_export, "--max-train-examples", "64", "--epochs", "1",
                          "--seeds", "1", "--max-eval-examples", "200", "--out", out,
                          "--quiet")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "glue.json").read_text())
    assert set(res["scores"]) == {"cola", "sst2", "mrpc", "stsb", "rte"}
    ranges = {"mcc": (-100, 100), "accuracy": (0, 100), "f1": (0, 100),
              "pearson": (-100, 100)}
    for task, r in res["tasks"].items():
        lo, hi = ranges[r["metric"]]
        assert r["metric"] == TASKS[task].metric
        assert lo <= r["score"] <= hi and math.isfinite(r["score"])
        assert r["runs"][0]["train_examples"] == 64 and r["runs"][0]["steps"] == 4
    assert res["average"] == pytest.approx(np.mean(list(res["scores"].values())))
    assert res["settings"]["lr"] == 4e-5 and res["settings"]["batch"] == 16
    assert "average" in proc.stdout


@needs_glue
def test_glue_parallel_jobs_and_median(tiny_export):
    from hasten.pretrain.glue import evaluate_glue

    res = evaluate_glue(tiny_export, tasks="rte,mrpc", seeds=3, epochs=1,
                        max_train_examples=16, max_eval_examples=40, jobs=2)
    assert list(res["tasks"]) == ["rte", "mrpc"]
    for r in res["tasks"].values():
        assert len(r["scores"]) == 3
        assert r["score"] == pytest.approx(float(np.median(r["scores"])))


def _one_line(capsys, code, *fragments):
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hasten: error: "), err
    for f in fragments:
        assert f in lines[0], err


def test_glue_bad_inputs(tmp_path, capsys):
    _one_line(capsys, main(["glue", str(tmp_path / "missing")]), "model folder not found")
    (tmp_path / "empty").mkdir()
    _one_line(capsys, main(["glue", str(tmp_path / "empty")]), "config.json")
    _one_line(capsys, main(["glue", str(tmp_path / "empty"), "--tasks", "cola,wnli"]),
              "unknown GLUE task 'wnli'")
    _one_line(capsys, main(["glue", str(tmp_path / "empty"), "--seeds", "0"]), "seeds")
    assert not any(tmp_path.glob("*.json"))


def test_glue_settings_carry_reasons():
    from hasten.core.config import reasons, resolve, settings_help
    from hasten.pretrain.glue import GlueSettings

    why = reasons(GlueSettings)
    assert all(why.values()), [k for k, v in why.items() if not v]
    s = resolve(GlueSettings, sets=["lr=1e-4", "betas=[0.9, 0.999]", "pooling=mean"])
    assert s.lr == 1e-4 and s.betas == (0.9, 0.999) and s.pooling == "mean"
    assert GlueSettings().betas == (0.9, 0.98) and GlueSettings().extra == {}
    with pytest.raises(ConfigError, match="pooling: 'max' is not one of cls, mean"):
        resolve(GlueSettings, sets=["pooling=max"])
    assert "lr = 4e-05  # GLUE_sane" in settings_help(GlueSettings)
