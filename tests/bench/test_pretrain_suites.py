"""The mlm and electra suites: rows, reuse of finished rows, the table, bad input."""

import json
from pathlib import Path

import pytest

from hasten.bench.electra import DEFAULT as ELECTRA_DEFAULT
from hasten.bench.electra import ROWS as ELECTRA_ROWS
from hasten.bench.mlm import ROWS as MLM_ROWS
from hasten.bench.pretrain import PretrainSettings, _expected, resolve_rows, table_rows
from hasten.errors import ConfigError
from tests.conftest import run_hasten

ROOT = Path(__file__).resolve().parents[2]
GUTENBERG = ROOT.parent / "shared" / "data" / "gutenberg" / "11-0.txt"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "alice.txt"
    path.write_text(GUTENBERG.read_text(encoding="utf-8-sig")[:20_000], encoding="utf-8")
    return path


def test_rows_and_fractions():
    rows = resolve_rows(ELECTRA_ROWS, ELECTRA_DEFAULT)
    assert [(r.name, r.fraction) for r in rows] == [
        ("crammed", 1.0), ("electra", 1.0), ("electra@0.5", 0.5), ("electra@0.25", 0.25),
        ("electra@0.125", 0.125)]
    assert rows[1].cram == {"objective": "electra"}
    with pytest.raises(ConfigError, match="unknown row 'bert'; known: crammed, electra"):
        resolve_rows(ELECTRA_ROWS, ["bert"])
    with pytest.raises(ConfigError, match="fraction"):
        resolve_rows(ELECTRA_ROWS, ["electra@2"])


def test_each_ablation_row_reverts_one_part():
    s = PretrainSettings(corpus=["x"])
    base = _expected(MLM_ROWS["crammed"], s, "25m")["recipe"]
    assert base["cutoff"] == 0.3 and base["lr"] == 1e-3 and base["arch"] == "crammed"
    assert (base["hidden"], base["layers"], base["vocab_size"], base["batch"]) == (256, 4, 8192,
                                                                                   256)

    def diff(name):
        r = _expected(MLM_ROWS[name], s, "25m")["recipe"]
        return {k for k in base if r[k] != base[k]}

    assert diff("original-data") == {"cutoff"}
    assert diff("original-arch") == {"arch", "sparse", "dropout"}
    setup = diff("original-setup")
    assert {"lr", "betas", "eps", "clip", "schedule", "schedule_params", "mask_rate",
            "sparse", "batch_ramp"} <= setup
    assert not setup & {"arch", "hidden", "layers", "cutoff", "vocab_size", "batch"}
    # ELECTRA's row masks 15% (its objective's value), the MLM row 25%
    assert _expected(ELECTRA_ROWS["electra"], s, "25m")["recipe"]["mask_rate"] == 0.15


def test_bench_mlm_quick_runs_reuses_and_reports(corpus, tmp_path):
    out = tmp_path / "bench"
    args = ("bench", "mlm", "--quick", "--corpus", corpus, "--out", out,
            "--methods", "crammed,original-setup")
    proc = run_hasten(*args, timeout=600)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["suite"] == "mlm" and [r["row"] for r in res["rows"]] == ["crammed",
                                                                         "original-setup"]
    for r in res["rows"]:
        assert r["steps"] == 3 and r["budget"] == "3steps"
        assert set(r["glue"]) == {"cola", "sst2", "mrpc", "stsb", "rte"}
        assert r["glue_average"] == pytest.approx(sum(r["glue"].values()) / 5)
    assert res["rows"][1]["recipe"] == "original"
    report = (out / "report.md").read_text()
    assert "| crammed | 3steps |" in report and "GLUE avg" in report
    # a second call reuses both rows: nothing is trained or fine-tuned again
    before = (out / "crammed" / "summary.json").stat().st_mtime_ns
    proc = run_hasten(*args, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("reusing the pretraining") == 2
    assert proc.stderr.count("reusing its GLUE scores") == 2
    assert (out / "crammed" / "summary.json").stat().st_mtime_ns == before
    assert json.loads((out / "results.json").read_text())["rows"] == res["rows"]
    # more fine-tuning seeds: seed 0 is reused, only seed 1 is fine-tuned; median per task
    proc = run_hasten(*args[:-2], "--methods", "crammed", "--seeds", "2", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "reusing its GLUE scores (seed 0)" in proc.stderr
    assert "fine-tuning seed 1" in proc.stderr and "fine-tuning seed 0" not in proc.stderr
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    assert all(len(v) == 2 for v in row["glue_seeds"].values())
    assert row["glue"]["sst2"] == pytest.approx(sum(row["glue_seeds"]["sst2"]) / 2)
    assert row["glue_seeds"]["sst2"][0] == res["rows"][0]["glue"]["sst2"]


def test_bench_electra_quick_fraction_row(corpus, tmp_path):
    out = tmp_path / "bench"
    proc = run_hasten("bench", "electra", "--quick", "--corpus", corpus, "--out", out,
                      "--methods", "electra@0.5", "--quiet", timeout=600)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    assert (row["row"], row["budget"], row["steps"], row["objective"]) == (
        "electra@0.5", "2steps", 2, "electra")
    head, cells = table_rows({"rows": [row]})
    assert head[:3] == ["row", "budget", "trained params"] and cells[0][0] == "electra@0.5"


@pytest.mark.parametrize("extra, message", [
    (("--tasks", "x"), "--tasks, --pair, --distill-budget, --first-seed and --baseline do not "
                       "apply"),
    (("--first-seed", "1"), "--first-seed and --baseline do not apply"),
    (("--baseline", "crammed"), "--first-seed and --baseline do not apply"),
    (("--methods", "bert"), "unknown row 'bert'"),
    (("--corpus", "/nonexistent/corpus.txt"), "/nonexistent/corpus.txt"),
])
def test_bench_pretrain_bad_input(tmp_path, extra, message):
    proc = run_hasten("bench", "mlm", "--quick", "--out", tmp_path / "b", *extra)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_corpus_option_only_for_pretraining_suites(tmp_path):
    proc = run_hasten("bench", "vision", "--quick", "--corpus", "x", "--out", tmp_path)
    assert proc.returncode == 2 and "--corpus applies to the mlm and electra" in proc.stderr
    proc = run_hasten("bench", "nope", "--out", tmp_path)
    assert proc.returncode == 2 and "known:" in proc.stderr and "electra" in proc.stderr
