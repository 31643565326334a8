"""Preparing a corpus once: the cache (hit on the same content and settings, miss on any
change), held-out text by whole files, the filter, and bad settings."""

import gzip

import numpy as np
import pytest

import hasten.text.prepare as prepare_mod
from hasten.core.errors import ConfigError, DataError
from hasten.text.prepare import PrepareSpec, prepare_corpus, split_heldout
from hasten.text.read import Book
from hasten.text.tokenizer import CRAM

WORDS = ("the cat sat on a mat while the rabbit ran to tea with alice and the queen said "
         "nothing at all because she was very tired of the long day").split()
SPEC = PrepareSpec(tokenizer=CRAM.__class__(**{**CRAM.to_dict(), "vocab_size": 120,
                                               "specials": CRAM.specials}),
                   seq_len=16, cutoff=None)


def _book(seed: int, paras: int = 20) -> str:
    rng = np.random.default_rng(seed)
    return "\n\n".join(" ".join(rng.choice(WORDS, 12)) + "." for _ in range(paras))


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    for i, name in enumerate(["Austen__Emma.txt", "Wells__Time.txt", "Dickens__Oliver.txt",
                              "Zola__Nana.txt"]):
        (folder / name).write_text(_book(i))
    (folder / "Carroll__Alice.txt.gz").write_bytes(gzip.compress(_book(9).encode()))
    return folder


class _Counter:
    def __init__(self, monkeypatch):
        self.tokenizer = self.build = 0
        real_build, real_tok = prepare_mod._build, prepare_mod._tokenizer

        def build(*a, **k):
            self.build += 1
            return real_build(*a, **k)

        def tok(cache, key, docs, spec, say):
            out = real_tok(cache, key, docs, spec, say)
            self.tokenizer += not out[1]  # trained, not loaded
            return out

        monkeypatch.setattr(prepare_mod, "_build", build)
        monkeypatch.setattr(prepare_mod, "_tokenizer", tok)


def test_cache_hits_and_misses(corpus, tmp_path, monkeypatch):
    calls = _Counter(monkeypatch)
    cache = tmp_path / "cache"
    first = prepare_corpus(corpus, SPEC, cache)
    assert not first.cached and (calls.build, calls.tokenizer) == (1, 1)
    again = prepare_corpus(corpus, SPEC, cache)
    assert again.cached and (calls.build, calls.tokenizer) == (1, 1)  # nothing redone
    np.testing.assert_array_equal(again.train, first.train)
    np.testing.assert_array_equal(again.heldout, first.heldout)
    assert again.tokenizer.to_str() == first.tokenizer.to_str()
    # another row length: rows again, the same tokenizer (its key leaves packing out)
    longer = prepare_corpus(corpus, PrepareSpec(**{**SPEC.__dict__, "seq_len": 32}), cache)
    assert not longer.cached and (calls.build, calls.tokenizer) == (2, 1)
    assert longer.tokenizer.to_str() == first.tokenizer.to_str()
    assert longer.train.shape[1] == 32
    # a changed file: everything again
    (corpus / "Austen__Emma.txt").write_text(_book(0) + "\n\nOne more paragraph.")
    changed = prepare_corpus(corpus, SPEC, cache)
    assert not changed.cached and (calls.build, calls.tokenizer) == (3, 2)
    # another tokenizer setting: everything again
    prepare_corpus(corpus, PrepareSpec(**{**SPEC.__dict__, "tokenizer": CRAM.__class__(
        **{**SPEC.tokenizer.__dict__, "vocab_size": 150})}), cache)
    assert (calls.build, calls.tokenizer) == (4, 3)
    assert prepare_corpus(corpus, SPEC, cache).cached and calls.build == 4


def test_heldout_is_whole_files(corpus, tmp_path):
    prep = prepare_corpus(corpus, PrepareSpec(**{**SPEC.__dict__, "heldout": "authors:W-Z"}),
                          tmp_path / "cache")
    s = prep.summary
    assert s["heldout_files"] == ["Wells__Time.txt", "Zola__Nana.txt"]
    assert s["heldout_documents"] == 40 and s["train_documents"] == 60
    assert s["heldout_rows"] == len(prep.heldout) > 0
    # no held-out paragraph appears among the training rows' text
    tok = prep.tokenizer
    train_text = " ".join(tok.decode(r.tolist()) for r in prep.train)
    held_para = tok.decode(tok.encode(_book(1).split("\n\n")[3]).ids)
    assert held_para not in train_text


def test_heldout_rules():
    books = [Book(n, None, [f"{n} doc"]) for n in ("a.txt", "b.txt", "Wa.txt", "Yb.txt",
                                                    "c.txt")]
    train, held, note = split_heldout(books, "authors:W-Z")
    assert [b.name for b in held] == ["Wa.txt", "Yb.txt"] and "W-Z" in note
    train, held, _ = split_heldout(books, "hash:0.01")  # at least one file held out
    assert len(held) == 1 and len(train) == 4
    # the choice of a file depends on its name only, not on the other files
    train2, held2, _ = split_heldout(books + [Book("z.txt", None, ["z"])], "hash:0.5")
    train1, held1, _ = split_heldout(books, "hash:0.5")
    assert {b.name for b in held1} <= {b.name for b in held2}
    assert split_heldout(books, "none")[1] == []
    one = [Book("only.txt", None, [f"p{i}" for i in range(200)])]
    train, held, note = split_heldout(one, "hash:0.01")
    assert held[0].docs == ["p198", "p199"] and train[0].docs == [f"p{i}" for i in range(198)]
    assert "one block" in note
    with pytest.raises(DataError, match="0 of 5 files match"):
        split_heldout(books, "authors:M-N")
    for bad in ("hash:2", "hash:x", "authors:W", "sometimes"):
        with pytest.raises(ConfigError, match="held-out rule"):
            split_heldout(books, bad)


def test_filter_removes_junk(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    junk = "x7#q 9z!k 3@pw 0&mv " * 3
    (folder / "a.txt").write_text(_book(0, 60) + "\n\n" + junk)
    spec = PrepareSpec(**{**SPEC.__dict__, "cutoff": 0.3, "heldout": "none",
                          "tokenizer": CRAM.__class__(**{**SPEC.tokenizer.__dict__,
                                                         "vocab_size": 200})})
    prep = prepare_corpus(folder, spec, tmp_path / "cache")
    s = prep.summary
    assert s["train_documents"] == 61 and 55 <= s["kept_documents"] <= 60
    text = " ".join(prep.tokenizer.decode(r.tolist()) for r in prep.train)
    assert "9z" not in text.replace(" ", "") and "rabbit" in text


def test_bad_settings(corpus, tmp_path):
    with pytest.raises(ConfigError, match="held-out rule"):
        prepare_corpus(corpus, PrepareSpec(heldout="half"), tmp_path)
    with pytest.raises(ConfigError, match="seq_len"):
        prepare_corpus(corpus, PrepareSpec(seq_len=1), tmp_path)
    with pytest.raises(DataError, match="file not found"):
        prepare_corpus(tmp_path / "nope", SPEC, tmp_path)
    with pytest.raises(DataError, match="removed all"):
        prepare_corpus(corpus, PrepareSpec(**{**SPEC.__dict__, "cutoff": 0.01}), tmp_path)
