"""BLiMP: the reader (plain and gzipped files, exact errors), the fixed pair selection and
vocabulary filter, the summary (mean over paradigms), the shared data, and the untrained
control."""

import functools
import gzip
import json

import numpy as np
import pytest
from lmeval_helpers import get_hf_tok, get_tiny_bert

from hasten.core.errors import ConfigError, DataError
from hasten.pretrain.lmeval.blimp import (
    Pair,
    blimp_control,
    blimp_root,
    corpus_words,
    evaluate_blimp,
    items_to_arrays,
    read_blimp,
    read_paradigm,
    seed_matrix,
    select_pairs,
    sentence_words,
    summarize,
)
from hasten.pretrain.lmeval.loading import wrap_lm


def needs_blimp(fn):
    """Tests that read the shared BLiMP copy fail, never skip, when it is missing."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        assert (blimp_root() / "adjunct_island.jsonl.gz").is_file(), (
            f"BLiMP data missing under {blimp_root()} (set HASTEN_DATA)")
        return fn(*args, **kwargs)
    return wrapper


def line(good, bad, pair_id):
    return json.dumps({"sentence_good": good, "sentence_bad": bad, "UID": "x",
                       "pairID": str(pair_id)}) + "\n"


def write(path, lines, gz=True):
    data = "".join(lines).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_reader_plain_and_gzipped(tmp_path):
    rows = [line("The dog sleeps.", "The dog sleep.", 0), "\n",
            line("Who saw the cat?", "Who the cat saw?", 1)]
    gz = read_paradigm(write(tmp_path / "agreement.jsonl.gz", rows))
    plain = read_paradigm(write(tmp_path / "plain.jsonl", rows, gz=False))
    assert gz == [Pair("agreement", 0, "The dog sleeps.", "The dog sleep."),
                  Pair("agreement", 1, "Who saw the cat?", "Who the cat saw?")]
    assert [(p.index, p.good, p.bad) for p in plain] == [(p.index, p.good, p.bad) for p in gz]
    both = read_blimp(tmp_path)
    assert list(both) == ["agreement", "plain"]
    assert list(read_blimp(tmp_path, ["plain"])) == ["plain"]


def test_reader_errors_name_file_and_line(tmp_path):
    good = line("The dog sleeps.", "The dog sleep.", 0)
    bad = write(tmp_path / "broken.jsonl.gz", [good, good, '{"sentence_good": "A dog.",\n'])
    with pytest.raises(DataError) as err:
        read_paradigm(bad)
    assert str(err.value) == f"{bad} line 3: not valid JSON"
    missing = write(tmp_path / "missing.jsonl.gz", [good, json.dumps({"sentence_good": "x"})])
    with pytest.raises(DataError) as err:
        read_paradigm(missing)
    assert str(err.value) == f"{missing} line 2: no sentence_bad"
    listed = write(tmp_path / "listed.jsonl", ["[1, 2]\n"], gz=False)
    with pytest.raises(DataError, match=r"listed.jsonl line 1: not a JSON object$"):
        read_paradigm(listed)
    (tmp_path / "notgz.jsonl.gz").write_bytes(b"plain text, not gzip")
    with pytest.raises(DataError, match=r"notgz.jsonl.gz: cannot read \("):
        read_paradigm(tmp_path / "notgz.jsonl.gz")
    empty = write(tmp_path / "empty.jsonl.gz", ["\n"])
    with pytest.raises(DataError, match=r"empty.jsonl.gz: no pairs$"):
        read_paradigm(empty)
    with pytest.raises(DataError, match="BLiMP folder not found"):
        read_blimp(tmp_path / "nowhere")
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match=r"no BLiMP files \(\*.jsonl.gz\) in"):
        read_blimp(tmp_path / "none")
    with pytest.raises(ConfigError, match="unknown BLiMP paradigm"):
        read_blimp(tmp_path, ["nope"])


def test_words_and_the_vocabulary_filter():
    assert sentence_words("Who doesn't see Derek's 2 dogs?") == [
        "who", "doesn", "t", "see", "derek", "s", "2", "dogs"]
    pairs = {"p": [Pair("p", i, f"The dog{i} sleeps.", f"The dog{i} sleep.")
                   for i in range(10)]}
    words = corpus_words(["the sleeps sleep", "dog1 dog3 dog5"])
    chosen, counts = select_pairs(pairs, per_paradigm=2, words=words)
    assert counts["paradigms"]["p"] == {"pairs": 10, "in_vocabulary": 3, "selected": 2}
    assert counts["in_vocabulary"] == 3 and counts["selected"] == 2
    assert {p.index for p in chosen["p"]} <= {1, 3, 5}
    assert [p.index for p in chosen["p"]] == sorted(p.index for p in chosen["p"])
    with pytest.raises(DataError, match="no BLiMP pair left"):
        select_pairs(pairs, words={"cat"})
    with pytest.raises(ConfigError, match="pairs per paradigm must be >= 1"):
        select_pairs(pairs, per_paradigm=0)


def test_selection_is_fixed_per_paradigm():
    pairs = {name: [Pair(name, i, f"s{i}.", f"b{i}.") for i in range(50)]
             for name in ("alpha", "beta")}
    one, _ = select_pairs(pairs, per_paradigm=5)
    again, _ = select_pairs({"beta": pairs["beta"], "alpha": pairs["alpha"]}, 5)
    alone, _ = select_pairs({"beta": pairs["beta"]}, 5)
    assert one == again and one["beta"] == alone["beta"]
    assert [p.index for p in one["alpha"]] != [p.index for p in one["beta"]]
    bigger, _ = select_pairs(pairs, per_paradigm=10)
    assert set(one["alpha"]) <= set(bigger["alpha"])  # a prefix of one fixed order
    full, counts = select_pairs(pairs, per_paradigm=None)
    assert full["alpha"] == pairs["alpha"] and counts["selected"] == 100


def test_summary_is_the_mean_over_paradigms():
    scored = {"a": {"ids": [0, 1, 2, 3], "correct": np.array([1, 1, 1, 0], bool)},
              "b": {"ids": [7, 9], "correct": np.array([0, 1], bool)}}
    s = summarize(scored, n_boot=200)
    assert s["blimp_by_paradigm"] == {"a": 75.0, "b": 50.0}
    assert s["blimp"] == pytest.approx(62.5)  # not 4/6 of the pairs
    lo, hi = s["blimp_interval"]
    assert 0 <= lo <= 62.5 <= hi <= 100
    assert s["items"] == {"a": {"ids": [0, 1, 2, 3], "correct": "1110"},
                          "b": {"ids": [7, 9], "correct": "01"}}
    arrays = items_to_arrays(s["items"])
    assert arrays["a"].tolist() == [1.0, 1.0, 1.0, 0.0] and arrays["b"].tolist() == [0.0, 1.0]


def test_seed_matrix_stacks_runs_over_the_same_pairs():
    run0 = {"a": {"ids": [3, 5], "correct": "10"}, "b": {"ids": [1], "correct": "1"}}
    run1 = {"a": {"ids": [3, 5], "correct": "11"}, "b": {"ids": [1], "correct": "0"}}
    m = seed_matrix([run0, run1])
    assert m["a"].tolist() == [[1.0, 0.0], [1.0, 1.0]] and m["b"].tolist() == [[1.0], [0.0]]
    other = {"a": {"ids": [3, 6], "correct": "11"}, "b": {"ids": [1], "correct": "0"}}
    with pytest.raises(DataError, match="^run 1 scored other BLiMP pairs than run 0$"):
        seed_matrix([run0, other])


@needs_blimp
def test_the_shared_blimp_copy():
    blimp = read_blimp()
    assert len(blimp) == 67 and all(len(p) == 1000 for p in blimp.values())
    first = blimp["adjunct_island"][0]
    assert first == Pair("adjunct_island", 0, "Who should Derek hug after shocking Richard?",
                         "Who should Derek hug Richard after shocking?")
    chosen, counts = select_pairs(blimp, per_paradigm=100)
    assert counts["selected"] == 6700 and len(chosen) == 67


def test_scores_and_the_untrained_control():
    tiny_bert = get_tiny_bert()
    hf_tok = get_hf_tok()
    pairs = {"agreement": [Pair("agreement", 0, "The dog sleeps.", "The dog sleep."),
                           Pair("agreement", 1, "The dogs sleep.", "The dogs sleeps.")],
             "length": [Pair("length", 0, "A fox.", "A fox the fox the fox.")]}
    lm = wrap_lm(tiny_bert, hf_tok, device="cpu")
    res = evaluate_blimp(lm, pairs, n_boot=50)
    assert set(res["blimp_by_paradigm"]) == {"agreement", "length"}
    again = evaluate_blimp(lm, pairs, n_boot=50)
    assert again == res
    control = blimp_control(lm, pairs, n_boot=50)
    # untrained: the shorter sentence has the higher pseudo-log-likelihood
    assert control["blimp_by_paradigm"]["length"] == 100.0
    assert control == blimp_control(lm, pairs, n_boot=50)
