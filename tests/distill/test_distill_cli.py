"""`hasten distill` and `hasten distill eval`: `--out` is a folder holding set.safetensors,
set.png, config.json and checkpoints/."""

import json

from conftest import run_in_process

from hasten.cli import main


def test_distill_then_eval(tmp_path, capsys):
    folder = tmp_path / "syn"
    out = folder / "set.safetensors"
    rc = main(["distill", "--data", "digits", "--method", "dm", "--ipc", "2", "--budget",
               "2steps", "--width", "8", "--batch-real", "16", "--out", str(folder), "--quiet",
               "--checkpoint-dir", str(tmp_path / "ck"), "--option", "lr_img=0.5",
               "--snapshot-every", "1"])
    assert rc == 0 and out.is_file() and (folder / "set.png").is_file()
    assert sorted(p.name for p in (folder / "snapshots").iterdir()) == [
        "it000001.safetensors", "it000002.safetensors"]
    assert (tmp_path / "ck").is_dir()
    config = json.loads((folder / "config.json").read_text())
    assert config["options"] == {"lr_img": 0.5} and config["ipc"] == 2
    assert " hasten distill" in " " + config["command"]  # after any pinning prefix
    assert "wrote 20 images (2 per class)" in capsys.readouterr().out
    rc = main(["distill", "eval", str(out), "--models", "2", "--epochs", "3", "--width", "8",
               "--quiet"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(result["accuracies"]) == 2 and result["epochs"] == 3


def test_baseline_and_errors(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["distill", "--data", "digits", "--method", "random", "--ipc", "1",
                 "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "set.png",
                                                     "set.safetensors"]
    capsys.readouterr()
    assert main(["distill", "--data", "digits", "--method", "nope", "--out",
                 str(tmp_path / "n")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hasten: error: unknown distillation method 'nope'")
    assert len(err.strip().splitlines()) == 1
    assert main(["distill", "--data", "digits", "--ipc", "0", "--out",
                 str(tmp_path / "z")]) == 2
    assert "integer >= 1" in capsys.readouterr().err
    assert main(["distill", "eval", str(tmp_path / "missing.safetensors")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["distill", "--data", "digits", "--budget", "2steps",
                 "--option", "bogus"]) == 2
    assert "--out" in capsys.readouterr().err


def test_hasten_command_runs_distill_and_rejects_bad_ipc(tmp_path):
    """Through the `hasten` command line: a tiny DM run, then one-line errors."""
    out = tmp_path / "syn"
    proc = run_in_process("distill", "--data", "digits", "--method", "dm", "--ipc", "1",
                          "--budget", "2steps", "--width", "8", "--batch-real", "16",
                          "--out", out, "--quiet", check=True)
    assert (out / "set.safetensors").is_file(), proc.stdout
    proc = run_in_process("distill", "--data", "digits", "--method", "dm", "--ipc", "100000",
                          "--budget", "2steps", "--out", tmp_path / "big")
    assert proc.returncode == 2 and proc.stderr.startswith("hasten: error:")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "big").exists()


def test_eval_many_sets_into_one_json(tmp_path, capsys):
    """Several sets, one protocol, one JSON; --validation scores on held-out training images;
    bad input fails before any training and writes nothing."""
    files = []
    for seed in (0, 1):
        files.append(tmp_path / f"r{seed}" / "set.safetensors")
        assert main(["distill", "--data", "digits", "--method", "random", "--ipc", "1",
                     "--seed", str(seed), "--out", str(files[-1].parent), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "res" / "eval.json"
    common = ["--models", "1", "--epochs", "2", "--width", "8", "--quiet", "--seed", "3"]
    assert main(["distill", "eval", *map(str, files), *common, "--json", str(out)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    record = json.loads(out.read_text())
    assert [r["file"] for r in record["rows"]] == [str(f) for f in files]
    assert record["rows"] == lines
    assert record["protocol"]["scored_on"] == "digits" and record["protocol"]["epochs"] == 2
    assert all(r["method"] == "random" and r["ipc"] == 1 for r in record["rows"])
    # the same protocol and seed on one file gives the same accuracy again
    assert main(["distill", "eval", str(files[1]), *common]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["accuracies"] == record["rows"][1]["accuracies"]

    val = tmp_path / "val.json"
    assert main(["distill", "eval", str(files[0]), *common, "--validation", "100",
                 "--json", str(val)]) == 0
    assert json.loads(val.read_text())["protocol"]["scored_on"] == "digits-val"
    capsys.readouterr()

    bad = tmp_path / "bad.json"
    for extra, message in (
            (["--lr", "learned"], "--lr learned needs an MTT set"),
            (["--lr", "fast"], "--lr must be a number or 'learned', got 'fast'"),
            (["--lr", "0"], "--lr must be > 0"),
            ([str(tmp_path / "missing.safetensors")], "missing.safetensors: file not found")):
        assert main(["distill", "eval", str(files[0]), *extra, *common,
                     "--json", str(bad)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not bad.exists()
    assert main(["distill", "--data", "digits", "--method", "random", "--out",
                 str(tmp_path / "x"), "--json", str(bad)]) == 2
    assert "--validation and --json belong to `hasten distill eval`" in capsys.readouterr().err
    assert main(["distill", "--data", "digits", "--method", "dm", "--eval", "--lr", "learned",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--lr learned needs --method mtt" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_eval_with_the_learned_step_size(tmp_path, capsys):
    from hasten.distill.synthetic import SyntheticSet

    plain = tmp_path / "r" / "set.safetensors"
    assert main(["distill", "--data", "digits", "--method", "random", "--ipc", "1",
                 "--out", str(plain.parent), "--quiet"]) == 0
    syn = SyntheticSet.load(plain)
    mtt = tmp_path / "m.safetensors"
    SyntheticSet(syn.images, syn.labels, {**syn.meta, "method": "mtt", "syn_lr": 0.0234}
                 ).save(mtt)
    capsys.readouterr()
    assert main(["distill", "eval", str(mtt), "--lr", "learned", "--models", "1",
                 "--epochs", "1", "--width", "8", "--quiet"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["meta"]["lr"] == 0.0234 and row["syn_lr"] == 0.0234


def test_eval_names_the_set_without_a_dataset_and_mixed_datasets(tmp_path, capsys):
    from hasten.distill.synthetic import SyntheticSet

    good = tmp_path / "r" / "set.safetensors"
    assert main(["distill", "--data", "digits", "--method", "random", "--ipc", "1",
                 "--out", str(good.parent), "--quiet"]) == 0
    syn = SyntheticSet.load(good)
    bare, other = tmp_path / "bare.safetensors", tmp_path / "other.safetensors"
    SyntheticSet(syn.images, syn.labels, {"method": "random"}).save(bare)
    SyntheticSet(syn.images, syn.labels, {**syn.meta, "dataset": "mnist1d"}).save(other)
    capsys.readouterr()
    assert main(["distill", "eval", str(good), str(bare), "--quiet"]) == 2
    assert f"{bare} does not name its dataset; pass --data" in capsys.readouterr().err
    assert main(["distill", "eval", str(good), str(other), "--quiet"]) == 2
    assert "the sets name different datasets (digits, mnist1d)" in capsys.readouterr().err
