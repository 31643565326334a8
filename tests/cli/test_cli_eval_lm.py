"""`hasten eval-lm MODEL_DIR` in-process on a tiny exported model with toy BLiMP and GLUE
folders: eval.json with every metric, config.json with the resolved settings,
progress and summary lines; and bad input as one line, exit code 2, nothing written."""

from __future__ import annotations

import json
import re
import sys

import pytest
from conftest import ROOT

from hasten.cli import main
from hasten.pretrain.lmeval.evaluate import METRICS

sys.path.insert(0, str(ROOT / "tests" / "pretrain" / "lmeval"))
from lmeval_helpers import get_tiny_export, write_toy_blimp, write_toy_glue  # noqa: E402


def test_eval_lm_writes_eval_json_and_config(tmp_path, capsys):
    model = get_tiny_export()
    glue, blimp = write_toy_glue(tmp_path / "glue"), write_toy_blimp(tmp_path / "blimp")
    out = tmp_path / "eval"
    rc = main(["eval-lm", str(model), "--evals", "blimp,probes", "--blimp-pairs", "2",
               "--blimp-dir", str(blimp), "--glue-dir", str(glue), "--set", "bootstrap=50",
               "--device", "cpu", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out.splitlines()
    written = json.loads((out / "eval.json").read_text())
    assert set(METRICS) <= set(written) and written["mlm_loss_15"] is None
    assert written["blimp_pairs"]["selected"] == 6 and len(written["blimp_by_paradigm"]) == 3
    assert written["blimp"] == pytest.approx(sum(written["blimp_by_paradigm"].values()) / 3)
    assert len(written["items"]["probe_sst2"]) == 60  # every toy dev sentence
    assert written["not_run"] == {"mlm_loss": "not selected (evals)"}
    config = json.loads((out / "config.json").read_text())
    assert config["model_dir"] == str(model) and config["evals"] == ["blimp", "probes"]
    assert config["blimp_pairs"] == 2 and config["bootstrap"] == 50 and not config["quiet"]
    # the command as retyped: a pinning prefix (taskset, env) may come first
    assert re.search(r"(^| )hasten eval-lm ", config["command"]), config["command"]
    assert any(line.startswith("BLiMP: 6 pairs in 3 paradigms") for line in printed)
    lo, hi = written["blimp_interval"]
    assert (f"blimp        {written['blimp']:6.2f}  (95% interval {lo:.2f} to {hi:.2f})"
            in printed)
    assert f"probe_sst2   {written['probe_sst2']:6.2f}  (accuracy x 100)" in printed
    assert f"{'mlm_loss':12s} {'n/a':>6s}  (not selected (evals))" in printed
    assert printed[-1] == f"wrote {out / 'eval.json'}"


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    def error(*args):
        assert main(["eval-lm", *map(str, args)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("hasten: error: ")
        return err

    missing = tmp_path / "nowhere"
    out = tmp_path / "out"
    assert error(missing, "--out", out) == f"hasten: error: model folder not found: {missing}"
    assert error(tmp_path, "--evals", "glue", "--out", out) == (
        "hasten: error: evals: unknown evaluation(s) glue; known: blimp, mlm_loss, probes")
    assert "--precision: invalid choice: 'fp16'" in error(tmp_path, "--precision", "fp16")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "is a file; --out names a folder" in error(tmp_path, "--out", blocker)
    assert not out.exists()
