"""`hasten.select.prune.prune`, the Python side of `hasten prune`: score, select, write."""

import json
import math

import numpy as np
import pytest
import torch

from hasten.core.errors import ConfigError, DataError
from hasten.select import prune as P
from hasten.select.io import load_prune_input
from hasten.select.per_example import Scores
from hasten.select.prune import default_select, proxy_model, prune
from hasten.select.selectors import keep_hardest

FAST = {"epochs": 1, "device": "cpu", "batch_size": 32}


@pytest.fixture
def blobs(tmp_path):
    """200 examples of two 2-D Gaussian blobs, with an extra per-example id array."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    x = (rng.normal(size=(200, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)).astype(np.float32)
    path = tmp_path / "blobs.npz"
    np.savez(path, x=x, y=y, ids=np.arange(200))
    return path, x, y


@pytest.fixture
def images(tmp_path):
    """64 random 1x8x8 images in 3 classes."""
    rng = np.random.default_rng(1)
    path = tmp_path / "img.npz"
    np.savez(path, x=rng.random((64, 1, 8, 8)).astype(np.float32), y=rng.integers(0, 3, 64))
    return path


def _kept(out):
    return np.load(out / "kept.npy", allow_pickle=False)


def test_el2n_keeps_the_hardest_and_writes_everything(blobs, tmp_path):
    path, x, y = blobs
    out = tmp_path / "out"
    summary = prune(path, "el2n", 0.3, out=out, **FAST)
    kept = _kept(out)
    assert len(kept) == round(0.3 * 200) == summary["after"]
    with np.load(out / "blobs.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["x"], x[kept])
        np.testing.assert_array_equal(z["y"], y[kept])
        np.testing.assert_array_equal(z["ids"], kept)
    s = Scores.load(out / "scores")
    assert s.name == "el2n" and s.higher_is == "harder" and len(s) == 200
    np.testing.assert_array_equal(kept, keep_hardest(s, 0.3))
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["select"] == "hardest" and summary["selection"] == {"method": "hardest"}
    assert summary["scorer_options"]["model"] == "mlp"
    assert summary["scoring_seconds"] > 0 and summary["scoring_work"]["examples_forwarded"] > 0
    assert summary["scores_reused"] is None and summary["prefilter"] is None


def test_forgetting_on_images_uses_a_small_convnet(images, tmp_path):
    summary = prune(images, "forgetting", 0.5, "easiest", out=tmp_path / "o", **FAST)
    assert summary["after"] == 32 and summary["scorer_options"]["model"] == "convnet3"
    s = Scores.load(tmp_path / "o" / "scores.npy")
    assert s.name == "forgetting" and s.higher_is == "harder"
    hardness = s.values
    kept = _kept(tmp_path / "o")
    dropped = np.setdiff1d(np.arange(64), kept)
    assert hardness[kept].max() <= hardness[dropped].min()  # kept the easiest


def test_reused_scores_give_the_same_set_without_scoring(blobs, tmp_path, monkeypatch):
    path, _, _ = blobs
    first = prune(path, "el2n", 0.5, out=tmp_path / "a", **FAST)

    def boom(*_a, **_k):
        raise AssertionError("scored again")

    monkeypatch.setattr("hasten.select.scorers.score", boom)
    again = prune(path, None, 0.5, out=tmp_path / "b", scores=tmp_path / "a" / "scores.npy")
    np.testing.assert_array_equal(_kept(tmp_path / "a"), _kept(tmp_path / "b"))
    assert again["scores_reused"].endswith("scores.npy")
    assert again["scorer"] == "el2n" and again["scoring_seconds"] == first["scoring_seconds"]
    # the same, with the scorer named and a Scores object
    s = Scores.load(tmp_path / "a" / "scores")
    prune(path, "el2n", 0.5, out=tmp_path / "c", scores=s)
    np.testing.assert_array_equal(_kept(tmp_path / "a"), _kept(tmp_path / "c"))


def test_random_scorer_with_ccs_random_offset_and_balanced(blobs, tmp_path):
    path, _, y = blobs
    for i, (select, kw) in enumerate([("ccs", {"beta": 0.1, "strata": 5}), ("random", {}),
                                      ("offset", {"offset": 0.1}), ("balanced", {})]):
        out = tmp_path / f"o{i}"
        summary = prune(path, "random", 0.25, select, out=out, seed=3, **kw)
        kept = _kept(out)
        assert len(kept) == 50 and summary["scorer"] == "random"
        assert len(np.unique(kept)) == 50
    assert summary["selection"] == {"method": "class_balanced", "which": "hardest"}
    share = np.bincount(y[kept], minlength=2) / 50
    assert np.allclose(share, np.bincount(y, minlength=2) / 200, atol=0.02)
    scores = Scores.load(tmp_path / "o2" / "scores")  # offset: skip the 20 hardest
    order = np.argsort(-scores.values, kind="stable")
    np.testing.assert_array_equal(_kept(tmp_path / "o2"), np.sort(order[20:70]))


def test_text_tokens_per_char_with_dedup_and_cutoff(tmp_path):
    clean = [f"Sentence number {w} tells a plain story about a cat and a small house."
             for w in ("one", "two", "three", "four", "five", "six", "seven", "eight")]
    docs = clean + [clean[0], clean[1].upper(), "x9#@!q 7&&^%$ 0x3f;;{}[] zz__ 99!!"]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"i": i, "text": d}) + "\n" for i, d in enumerate(docs)))
    summary = prune(path, "tokens-per-char", 0.5, out=tmp_path / "o", dedup=True, cutoff=0.5)
    pre = summary["prefilter"]
    assert pre["dedup"]["exact_removed"] == 2 and pre["cutoff"]["removed"] == 1
    assert pre["remaining"] == 8 and summary["after"] == 4
    assert summary["select"] == "easiest"  # default for tokens-per-char
    kept = _kept(tmp_path / "o")
    assert kept.max() < 8
    s = Scores.load(tmp_path / "o" / "scores")
    assert s.name == "tokens_per_char" and len(s) == 11 and s.meta["tokenizer_seconds"] > 0
    lines = (tmp_path / "o" / "c.jsonl").read_text().splitlines()
    assert [json.loads(ln)["i"] for ln in lines] == kept.tolist()


def test_text_length_and_rarity(tmp_path):
    (tmp_path / "t.txt").write_text("a\nbb bb\nccc ccc ccc\ndddd dddd dddd dddd\n")
    prune(tmp_path / "t.txt", "length", 0.5, out=tmp_path / "o")
    assert (tmp_path / "o" / "t.txt").read_text() == "ccc ccc ccc\ndddd dddd dddd dddd\n"
    summary = prune(tmp_path / "t.txt", "rarity", 0.25, "easiest", out=tmp_path / "r")
    assert summary["scorer"] == "unigram_rarity" and summary["after"] == 1


def test_default_select():
    assert default_select("tokens-per-char") == "easiest"
    assert default_select("el2n") == default_select("length") == "hardest"


@pytest.mark.parametrize("shape,name", [((2,), "mlp"), ((1, 40), "cnn1d"),
                                        ((1, 8, 8), "convnet3"), ((8, 8), "convnet3"),
                                        ((3, 4, 4), "convnet3")])
def test_auto_proxy_model(shape, name):
    got, make = proxy_model("auto", shape, 3)
    assert got == name
    assert make()(torch.zeros(2, *shape)).shape == (2, 3)


def test_integer_images_become_floats(tmp_path):
    path = tmp_path / "u8.npz"
    np.savez(path, x=np.full((4, 1, 4, 4), 255, dtype=np.uint8), y=np.array([0, 1, 0, 1]))
    data, classes = P.classification_data(load_prune_input(path))
    assert data.tensors[0].dtype == torch.float32 and float(data.tensors[0].max()) == 1.0
    assert classes == 2
    np.savez(path, x=np.zeros((4, 2)), y=np.zeros(4))
    with pytest.raises(DataError, match="integer labels"):
        P.classification_data(load_prune_input(path))


@pytest.mark.parametrize("kw,err,fragment", [
    ({"keep": 0.0}, ConfigError, "keep must be a fraction in (0, 1]"),
    ({"keep": math.nan}, ConfigError, "keep must be a fraction"),
    ({"scorer": None}, ConfigError, "give a scorer"),
    ({"scorer": "el3n"}, ConfigError, "unknown scorer 'el3n'"),
    ({"select": "hard"}, ConfigError, "unknown selector 'hard'"),
    ({"scorer": "length"}, ConfigError, "needs text input"),
    ({"beta": 0.1}, ConfigError, "applies only to the ccs selector"),
    ({"select": "ccs", "balance": True}, ConfigError, "class balance"),
    ({"dedup": True}, ConfigError, "apply only to text input"),
    ({"model": "resnet"}, ConfigError, "unknown model 'resnet'"),
    ({"data": "missing.npz"}, DataError, "input not found"),
])
def test_bad_input_raises_before_writing(blobs, tmp_path, kw, err, fragment):
    path, _, _ = blobs
    args = {"data": path, "scorer": "el2n", "keep": 0.5, **kw}
    with pytest.raises(err, match=fragment.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        prune(args.pop("data"), args.pop("scorer"), args.pop("keep"), out=tmp_path / "o",
              **args)
    assert not (tmp_path / "o").exists()


def test_scores_of_the_wrong_length_or_name(blobs, tmp_path):
    path, _, _ = blobs
    Scores(np.zeros(10), "el2n", "harder").save(tmp_path / "short")
    with pytest.raises(DataError, match="have 10 values but the input has 200"):
        prune(path, None, 0.5, out=tmp_path / "o", scores=tmp_path / "short.npy")
    Scores(np.zeros(200), "aum", "easier").save(tmp_path / "aum")
    with pytest.raises(ConfigError, match="are 'aum' scores, but the scorer is 'el2n'"):
        prune(path, "el2n", 0.5, out=tmp_path / "o", scores=tmp_path / "aum.npy")
    assert not (tmp_path / "o").exists()


def test_text_needs_labels_for_balance(tmp_path):
    (tmp_path / "t.txt").write_text("a\nb\n")
    with pytest.raises(ConfigError, match="needs class labels"):
        prune(tmp_path / "t.txt", "length", 0.5, "balanced", out=tmp_path / "o")
    with pytest.raises(ConfigError, match="needs classification data"):
        prune(tmp_path / "t.txt", "margin", 0.5, out=tmp_path / "o")
