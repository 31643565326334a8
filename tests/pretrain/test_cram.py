"""`hasten cram`: the recipes as data, the schedule and batch ramp by budget fraction, a tiny
end-to-end run that exports a folder transformers loads, the corpus cache, a stop signal with
a checkpoint and a resume, and bad input."""

import dataclasses
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_in_process

from hasten.cli import main
from hasten.core.config import reasons
from hasten.core.errors import ConfigError
from hasten.core.schedules import batch_multiple, make_schedule
from hasten.core.trainer import Hook, train
from hasten.pretrain.cram import CramConfig, cram
from hasten.pretrain.objectives import Vocab, available, get_objective
from hasten.pretrain.objectives.recipes import (
    CRAMMED,
    ORIGINAL_BERT,
    RECIPE_KEYS,
    CrammedRecipe,
    OriginalBertRecipe,
    batch_plan,
    resolve_recipe,
    train_config,
)

GUTENBERG = ROOT.parent / "shared" / "data" / "gutenberg" / "11-0.txt"
TINY = ["--set", "hidden=32", "--set", "layers=2", "--set", "heads=2", "--set",
        "intermediate=64", "--set", "batch=16", "--set", "micro_batch=8", "--set",
        "log_every=1", "--set", 'precision="fp32"']
SMALL = dict(hidden=32, layers=1, heads=2, intermediate=64, batch=8, micro_batch=8)


def _excerpt(path: Path, chars: int = 60_000) -> Path:
    """The first chars of Alice in Wonderland, or generated sentences without the data."""
    if GUTENBERG.is_file():
        text = GUTENBERG.read_text(encoding="utf-8-sig")[:chars]
    else:
        words = "the cat sat on a mat while rabbit ran to tea with alice and queen".split()
        g = torch.Generator().manual_seed(0)
        paras = []
        for _ in range(300):
            idx = torch.randint(len(words), (40,), generator=g).tolist()
            paras.append(" ".join(words[i] for i in idx) + ".")
        text = "\n\n".join(paras)
    path.write_text(text, encoding="utf-8")
    return path


# -----------------------------------------------------------------------------
# recipes


def test_crammed_recipe_values():
    r = CRAMMED
    assert (r.lr, r.betas, r.eps, r.weight_decay, r.clip) == (1e-3, (0.9, 0.98), 1e-12, 0.01,
                                                              0.5)
    assert r.schedule == "triangle"
    assert r.schedule_params == {"start": 0.25, "peak_at": 0.75, "final": 0.0}
    assert (r.batch, r.batch_ramp, r.mask_rate, r.seq_len) == (8192, 0.6, 0.25, 128)
    assert (r.precision, r.sparse, r.arch, r.dropout) == ("auto", "static", "crammed", 0.0)
    assert (r.hidden, r.layers, r.heads, r.vocab_size, r.cutoff) == (768, 16, 12, 32768, 0.3)
    # every value carries its reason
    assert all(reasons(CrammedRecipe)[k] for k in RECIPE_KEYS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.lr = 1.0


def test_auto_precision_is_bf16_only_where_the_device_computes_it():
    """bf16 autocast where the CPU has bf16 units (AVX512-BF16 or AMX), else fp32: emulated
    bf16 runs a crammed step about 10x slower than fp32 on an AVX2 CPU."""
    from hasten.pretrain.objectives.recipes import native_precision, with_precision

    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert native_precision("cpu") == ("bf16" if native else "fp32")
    assert with_precision(CRAMMED, "cpu").precision == native_precision("cpu")
    assert with_precision(resolve_recipe("crammed", precision="bf16"), "cpu").precision == "bf16"
    with pytest.raises(ConfigError, match="precision must be one of auto, bf16, fp32"):
        resolve_recipe("crammed", precision="fp16")


def test_original_bert_recipe_values():
    r = ORIGINAL_BERT
    assert isinstance(r, CrammedRecipe) and r.name == "original"
    assert (r.arch, r.dropout, r.mask_rate, r.lr, r.sparse, r.cutoff) == \
        ("bert", 0.1, 0.15, 1e-4, None, None)
    assert r.schedule == "linear" and r.schedule_params["warmup"] > 0
    assert (r.layers, r.hidden, r.batch, r.batch_ramp) == (12, 768, 256, 0.0)
    assert reasons(OriginalBertRecipe)["lr"] == "BERT"


def test_changes_and_bad_recipes():
    r = resolve_recipe("crammed", lr=5e-4, betas=[0.9, 0.95], layers="4")
    assert (r.lr, r.betas, r.layers) == (5e-4, (0.9, 0.95), 4)
    assert CRAMMED.lr == 1e-3  # the recipe itself is untouched
    # an objective's own values replace the recipe's; the user's changes still win
    assert resolve_recipe("crammed", {"mask_rate": 0.15}).mask_rate == 0.15
    assert resolve_recipe("crammed", {"mask_rate": 0.15}, mask_rate=0.2).mask_rate == 0.2
    assert resolve_recipe("original", cutoff="none").cutoff is None
    with pytest.raises(ConfigError, match="objective sets unknown"):
        resolve_recipe("crammed", {"masking": 0.15})
    with pytest.raises(ConfigError, match="unknown recipe key"):
        resolve_recipe("crammed", learning_rate=1.0)
    with pytest.raises(ConfigError, match="unknown recipe"):
        resolve_recipe("tiny")
    with pytest.raises(ConfigError, match="lr: expected a number"):
        resolve_recipe("crammed", lr="fast")
    with pytest.raises(ConfigError, match="sparse prediction needs"):
        resolve_recipe("original", sparse="static")
    with pytest.raises(ConfigError, match="no dropout"):
        resolve_recipe("crammed", dropout=0.1)
    with pytest.raises(ConfigError, match="cutoff must be > 0"):
        resolve_recipe("crammed", cutoff=0)
    assert resolve_recipe("original", arch="bert").arch == "bert"


def test_command_line_recipe_values_become_changes(tmp_path):
    """`--set lr=...` and the recipe's flags land in `changes`; recipe keys at the top of a
    config file fail with one line naming the `[changes]` table."""
    import argparse

    from hasten.cli.cram import recipe_changes

    args = argparse.Namespace(set=["lr=3e-4", "seed=2", "betas=[0.9, 0.95]"], config=None,
                              vocab_size="800", cutoff="none")
    assert recipe_changes(args) == {"vocab_size": "800", "cutoff": None, "lr": 3e-4,
                                    "betas": [0.9, 0.95]}
    assert args.set == ["seed=2"] and not hasattr(args, "vocab_size")
    # the old filter switch still works: it sets the recipe's cutoff
    assert recipe_changes(argparse.Namespace(set=["filter=false"], config=None)) == {
        "cutoff": None}
    assert recipe_changes(argparse.Namespace(set=["filter=true"], config=None)) == {
        "cutoff": 0.3}
    old = tmp_path / "old.toml"
    old.write_text("budget = \"3s\"\nlr = 1e-3\n")
    with pytest.raises(ConfigError, match=r"recipe values go in a \[changes\] table.*: lr"):
        recipe_changes(argparse.Namespace(set=None, config=str(old)))


def test_the_same_wall_clock_command_sizes_the_same_way(tmp_path):
    """A wall-clock budget sizes from timing probes; each is measured once per shape and
    machine and read back, so two identical commands choose the same shape, micro-batch
    and batch (two fresh probes chose micro-batches 24 and 32), and the size info records
    every probe's seconds."""
    from hasten.pretrain.cram import recipe_of, size_recipe

    cfg = CramConfig(budget="30s", probe_cache=str(tmp_path / "probes"),
                     changes={"precision": "fp32"})
    first, info1 = size_recipe(cfg, recipe_of(cfg), ("seconds", 30.0), lambda line: None)
    second, info2 = size_recipe(cfg, recipe_of(cfg), ("seconds", 30.0), lambda line: None)
    assert first == second
    assert [p["cached"] for p in info1["probes"]] == [False] * len(info1["probes"])
    assert [p["cached"] for p in info2["probes"]] == [True] * len(info1["probes"])
    assert [p["seconds"] for p in info1["probes"]] == [p["seconds"] for p in info2["probes"]]
    assert len(list((tmp_path / "probes").glob("*.json"))) == len(info1["probes"])


def test_objective_registry():
    assert "mlm" in available()
    obj = get_objective("mlm")
    assert obj.name == "mlm"
    with pytest.raises(ConfigError, match="unknown objective"):
        get_objective("gpt")


# -----------------------------------------------------------------------------
# schedule and batch ramp as functions of the budget


def test_triangle_and_ramp_by_budget_fraction():
    cfg = train_config(CRAMMED, "24h")
    assert (cfg.micro_batch, cfg.batch_start, cfg.batch_end) == (128, 1, 64)
    sched = make_schedule(cfg.schedule, **cfg.schedule_params)
    grid = [i / 1000 for i in range(1001)]
    values = [sched(p) for p in grid]
    assert values[0] == pytest.approx(0.25)
    assert grid[max(range(len(grid)), key=values.__getitem__)] == pytest.approx(0.75)
    assert values[-1] == pytest.approx(0.0)
    mult = [batch_multiple(p, cfg.batch_start, cfg.batch_end, cfg.batch_ramp) for p in grid]
    assert mult[0] == 1 and all(a <= b for a, b in zip(mult, mult[1:], strict=False))
    first_full = grid[mult.index(64)]
    assert first_full == pytest.approx(0.6, abs=2e-3)
    assert batch_plan(ORIGINAL_BERT) == {"micro_batch": 128, "batch_start": 2, "batch_end": 2}


class _Record(Hook):
    def __init__(self):
        self.lrs, self.micro, self.eps, self.betas = [], [], None, None
        self._n = 0

    def on_batch(self, state, batch):
        self._n += 1
        return batch

    def on_step_end(self, state):
        self.lrs.append(state.lr)
        self.micro.append(self._n)
        self._n = 0
        g = state.optimizer.param_groups[0]
        self.eps, self.betas = g["eps"], g["betas"]


def test_trainer_follows_the_recipe_by_budget_fraction():
    """In a real 40-step run: LR peaks at 75% of the budget, the batch (micro-batches per
    step) reaches the target at 60%, AdamW gets eps 1e-12 and betas (0.9, 0.98)."""
    r = resolve_recipe("crammed", batch=8, micro_batch=1, precision="fp32")
    cfg = train_config(r, "40steps", quiet=True)
    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    model = torch.nn.Linear(4, 1)
    loss = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(dim=1)  # noqa: E731
    rec = _Record()
    res = train(model, data, loss, cfg, hooks=[rec])
    assert res.steps == 40
    peak = max(range(40), key=rec.lrs.__getitem__) + 1  # step k runs at progress k / 40
    assert peak == 30
    assert rec.lrs[0] == pytest.approx(1e-3 * (0.25 + 0.75 * (1 / 40) / 0.75))
    assert rec.lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert rec.micro[0] == 1
    full = rec.micro.index(8)  # the step's batch is set from progress at its start
    assert full / 40 == pytest.approx(0.6, abs=0.03)
    assert rec.eps == 1e-12 and tuple(rec.betas) == (0.9, 0.98)


# -----------------------------------------------------------------------------
# end to end


@pytest.fixture(scope="module")
def crammed_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cram")
    corpus = _excerpt(tmp / "alice.txt")
    out = tmp / "run"
    env = {"HASTEN_CACHE": str(tmp / "cache")}
    proc = run_in_process("cram", "--corpus", corpus, "--budget", "3s", "--out", out,
                          "--vocab-size", "800", "--seq-len", "64", "--cutoff", "none", *TINY,
                          "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    return out, proc, corpus, env


def test_cram_end_to_end(crammed_run):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    out, proc, _, _ = crammed_run
    assert "held-out loss" in proc.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["stopped"] == "budget" and s["steps"] > 0
    assert s["ledger"]["train"] == pytest.approx(3.0, abs=1.0)
    assert s["recipe"]["hidden"] == 32 and s["recipe"]["eps"] == 1e-12
    assert s["size"] == {"rule": "set by hand"}
    assert s["corpus"]["heldout_rows"] >= 1 and s["corpus"]["train_rows"] > 10
    assert "one block" in s["corpus"]["heldout_note"]  # one file: its tail is held out
    assert math.isfinite(s["heldout_loss"]) and math.isfinite(s["heldout_loss_start"])
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "metrics.jsonl").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["budget"] == "3s" and config["changes"]["vocab_size"] == 800
    assert config["recipe_resolved"]["hidden"] == 32
    model = AutoModelForMaskedLM.from_pretrained(out / "model").eval()
    tok = AutoTokenizer.from_pretrained(out / "model")
    enc = tok(["alice was beginning to get very tired"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.shape[-1] == s["vocab_size"] and torch.isfinite(logits).all()


def test_a_second_run_reuses_the_prepared_corpus(crammed_run, tmp_path):
    out, _, corpus, env = crammed_run
    first = json.loads((out / "summary.json").read_text())
    assert not first["corpus"]["cached"]
    cfg = CramConfig(corpus=[str(corpus)], budget="40steps", out=str(tmp_path / "again"),
                     changes=dict(vocab_size=800, seq_len=64, cutoff=None, precision="fp32",
                                  **SMALL),
                     quiet=True, cache=env["HASTEN_CACHE"] + "/corpora")
    again = cram(cfg)
    assert again["corpus"]["cached"] and again["corpus"]["key"] == first["corpus"]["key"]
    assert again["seconds"]["prepare"] < 5
    assert again["heldout_loss"] < again["heldout_loss_start"]  # it learnt something


def test_cram_original_recipe_in_process(tmp_path):
    from transformers import AutoModelForMaskedLM, BertForMaskedLM

    corpus = _excerpt(tmp_path / "alice.txt", 20_000)
    s = cram(CramConfig(corpus=[str(corpus)], budget="3steps", out=str(tmp_path / "orig"),
                        recipe="original", changes=dict(vocab_size=300, seq_len=32,
                                                        dedup=True, **SMALL),
                        quiet=True, cache=str(tmp_path / "cache")))
    assert s["corpus"]["dedup"]["kept"] <= s["corpus"]["documents"]
    assert s["arch"] == "bert" and s["steps"] == 3 and s["recipe"]["mask_rate"] == 0.15
    assert s["recipe"]["cutoff"] is None  # the original recipe has no filter
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "orig" / "model")
    assert isinstance(model, BertForMaskedLM)
    assert model.config.hidden_dropout_prob == 0.1


def test_cram_electra_objective_in_process(tmp_path):
    from transformers import AutoModelForMaskedLM, ModernBertForMaskedLM

    corpus = _excerpt(tmp_path / "alice.txt", 20_000)
    changes = dict(vocab_size=300, cutoff=None, seq_len=32, precision="fp32", **SMALL)
    base = dict(corpus=[str(corpus)], objective="electra", quiet=True,
                cache=str(tmp_path / "cache"))
    s = cram(CramConfig(budget="3steps", out=str(tmp_path / "el"), changes=changes, **base))
    # ELECTRA masks 15% (the paper's Small/Base), not the crammed recipe's 25%
    assert s["objective"] == "electra" and s["recipe"]["mask_rate"] == 0.15
    assert s["steps"] == 3 and math.isfinite(s["heldout_loss"])
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "el" / "model")
    assert isinstance(model, ModernBertForMaskedLM)  # the discriminator, for hasten glue
    s2 = cram(CramConfig(budget="1steps", out=str(tmp_path / "el2"),
                         changes={**changes, "mask_rate": 0.25}, **base))
    assert s2["recipe"]["mask_rate"] == 0.25  # the user's value wins


def test_auto_size_prints_its_choice(tmp_path):
    corpus = _excerpt(tmp_path / "alice.txt", 20_000)
    lines = []
    s = cram(CramConfig(corpus=[str(corpus)], budget="4e10flop", out=str(tmp_path / "auto"),
                        changes=dict(cutoff=None, seq_len=32, precision="fp32"), min_steps=2,
                        cache=str(tmp_path / "cache")), say=lines.append)
    (size_line,) = [x for x in lines if x.startswith("size: ")]
    assert "2 x 128" in size_line and "Hoffmann" in size_line
    assert (s["recipe"]["layers"], s["recipe"]["hidden"], s["recipe"]["vocab_size"]) == \
        (2, 128, 8192)
    assert s["size"]["expected_steps"] >= 2 and s["steps"] >= 1


def test_vocab_of_tokenizer():
    from hasten.text.tokenizer import CRAM, train_tokenizer

    tok = train_tokenizer(["a b c d e f g"] * 5, CRAM, vocab_size=40)
    v = Vocab.from_tokenizer(tok)
    assert (v.pad, v.unk, v.cls, v.sep, v.mask) == (0, 1, 2, 3, 4)
    assert v.size == tok.get_vocab_size()


# -----------------------------------------------------------------------------
# a stop signal: checkpoint, no export, resume


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, f"{path} did not appear"
        time.sleep(0.2)


@pytest.mark.slow
def test_sigterm_checkpoints_and_resume_finishes(tmp_path):
    corpus = _excerpt(tmp_path / "alice.txt", 30_000)
    out = tmp_path / "run"
    args = ["--corpus", str(corpus), "--budget", "8s", "--out", str(out), "--vocab-size",
            "300", "--seq-len", "32", "--cutoff", "none", *TINY]
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT),
           "HASTEN_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "hasten", "cram", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(out / "metrics.jsonl", proc, 120)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "wrote" not in stdout  # no success line
    s = json.loads((out / "summary.json").read_text())
    assert s["stopped"] == "sigterm" and not (out / "model").exists()
    assert (out / "checkpoints" / "latest").is_file()
    proc = run_in_process("cram", *args, "--set", "resume=true", "--quiet",
                          env={"HASTEN_CACHE": env["HASTEN_CACHE"]})
    assert proc.returncode == 0, proc.stderr
    done = json.loads((out / "summary.json").read_text())
    assert done["stopped"] == "budget" and done["steps"] > s["steps"]
    assert done["ledger"]["train"] == pytest.approx(8.0, abs=1.5)
    assert (out / "model" / "config.json").is_file()


# -----------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written


def _one_line(capsys, code, *fragments):
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hasten: error: "), err
    for f in fragments:
        assert f in lines[0], err


def test_cram_bad_inputs(tmp_path, capsys):
    # a shape and batch set by hand: no speed probe before the corpus is read
    shape = [a for kv in ("layers=1", "hidden=32", "heads=2", "intermediate=64",
                          "vocab_size=200", "batch=8", "micro_batch=8") for a in ("--set", kv)]
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n \n")
    out = tmp_path / "out"
    _one_line(capsys, main(["cram", "--corpus", str(empty), "--budget", "2s", "--out",
                            str(out), "--quiet", *shape]), "empty")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    _one_line(capsys, main(["cram", "--corpus", str(bad), "--budget", "2s", "--out", str(out),
                            "--quiet", *shape]), "latin1.txt", "UTF-8")
    good = _excerpt(tmp_path / "ok.txt", 2000)
    _one_line(capsys, main(["cram", "--corpus", str(good), "--budget", "2s", "--out", str(out),
                            "--vocab-size", "4", "--quiet"]), "vocab_size", "special")
    _one_line(capsys, main(["cram", "--corpus", str(tmp_path / "nope.txt"), "--budget", "2s",
                            "--out", str(out), "--quiet", *shape]), "nope.txt")
    _one_line(capsys, main(["cram", "--corpus", str(good), "--budget", "soon", "--out",
                            str(out), "--quiet"]), "budget")
    _one_line(capsys, main(["cram", "--corpus", str(good), "--budget", "2s", "--out", str(out),
                            "--set", "lern_rate=1", "--quiet"]), "lern_rate")
    _one_line(capsys, main(["cram", "--corpus", str(good), "--budget", "2s", "--out", str(out),
                            "--objective", "gpt", "--quiet"]), "unknown objective")
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("x")
    _one_line(capsys, main(["cram", "--corpus", str(good), "--budget", "2s", "--out", str(out),
                            "--quiet"]), "not empty")
    _one_line(capsys, main(["cram", "--corpus", str(good), "--budget", "2s", "--out",
                            str(tmp_path / "new"), "--set", "resume=true", "--quiet"]),
              "cannot resume")
