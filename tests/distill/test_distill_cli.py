"""`hasten distill` and `hasten distill eval`, through the module's own entry point."""

import json

from hasten.distill.cli import main


def test_distill_then_eval(tmp_path, capsys):
    out = tmp_path / "syn.safetensors"
    rc = main(["distill", "--data", "digits", "--method", "dm", "--ipc", "2", "--budget",
               "2steps", "--width", "8", "--batch-real", "16", "--out", str(out), "--quiet",
               "--checkpoint-dir", str(tmp_path / "ck"), "--option", "lr_img=0.5",
               "--snapshot-every", "1"])
    assert rc == 0 and out.is_file() and out.with_suffix(".png").is_file()
    assert sorted(p.name for p in (tmp_path / "syn-snapshots").iterdir()) == [
        "it000001.safetensors", "it000002.safetensors"]
    assert "wrote 20 images (2 per class)" in capsys.readouterr().out
    rc = main(["distill", "eval", str(out), "--models", "2", "--epochs", "3", "--width", "8",
               "--quiet"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(result["accuracies"]) == 2 and result["epochs"] == 3


def test_baseline_and_errors(tmp_path, capsys):
    out = tmp_path / "r.safetensors"
    assert main(["distill", "--data", "digits", "--method", "random", "--ipc", "1",
                 "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["distill", "--data", "digits", "--method", "nope", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hasten: error: unknown distillation method 'nope'")
    assert len(err.strip().splitlines()) == 1
    assert main(["distill", "--data", "digits", "--ipc", "0", "--out", str(out)]) == 2
    assert "integer >= 1" in capsys.readouterr().err
    assert main(["distill", "eval", str(tmp_path / "missing.safetensors")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["distill", "--data", "digits", "--budget", "2steps",
                 "--option", "bogus"]) == 2
    assert "--out" in capsys.readouterr().err


def test_hasten_command_runs_distill_and_rejects_bad_ipc(tmp_path, hasten_cli):
    """Through the installed `hasten` entry point: a tiny DM run, then one-line errors."""
    out = tmp_path / "syn.safetensors"
    proc = hasten_cli("distill", "--data", "digits", "--method", "dm", "--ipc", "1",
                      "--budget", "2steps", "--width", "8", "--batch-real", "16",
                      "--out", out, "--quiet", check=True)
    assert out.is_file(), proc.stdout
    proc = hasten_cli("distill", "--data", "digits", "--method", "dm", "--ipc", "100000",
                      "--budget", "2steps", "--out", tmp_path / "big.safetensors")
    assert proc.returncode == 2 and proc.stderr.startswith("hasten: error:")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "big.safetensors").exists()
