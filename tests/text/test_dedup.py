import random

import numpy as np
import pytest

from hasten.core.errors import ConfigError, DataError
from hasten.text.dedup import (
    dedup,
    exact_duplicates,
    first_copy,
    near_duplicates,
    normalize_text,
    shingles,
)

TWO_CITIES = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
              "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
              "incredulity, it was the season of Light, it was the season of Darkness.")


def _text(seed: int, words: int = 200) -> str:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(500)]
    return " ".join(rng.choice(vocab) for _ in range(words))


def _edit(doc: str, position: int, word: str) -> str:
    ws = doc.split()
    ws[position] = word
    return " ".join(ws)


def test_normalize_text():
    assert normalize_text("  Hello\t\n  WORLD  ") == "hello world"


def test_exact_duplicates_after_normalisation():
    docs = ["Hello  World", "hello world\n", "other", "HELLO\tWORLD", "other"]
    assert exact_duplicates(docs).tolist() == [1, 3, 4]
    assert first_copy(docs).tolist() == [0, 0, 2, 0, 2]
    assert exact_duplicates(docs, normalize=False).tolist() == [4]
    assert exact_duplicates([]).tolist() == []


def test_shingles():
    assert shingles("A b c d", size=2) == {b"a b", b"b c", b"c d"}
    assert shingles("a b", size=5) == {b"a b"}
    assert shingles("  ", size=5) == set()
    assert shingles("abcd", size=3, unit="chars") == {b"abc", b"bcd"}
    with pytest.raises(ConfigError):
        shingles("abc", unit="lines")


def test_near_duplicates_finds_an_edited_copy_not_an_unrelated_doc():
    base = _text(0)
    edited = _edit(_edit(base, 50, "CHANGED"), 150, "AGAIN")  # Jaccard about 0.9
    unrelated = _text(1)
    docs = [base, unrelated, edited, "", ""]
    drop, groups = near_duplicates(docs, threshold=0.8, seed=3)
    assert drop.tolist() == [2]
    assert groups == [[0, 2]]
    # recall: found with every seed (datasketch's balanced LSH missed it with 2 of 7 seeds)
    assert all(near_duplicates([base, edited], seed=s)[0].tolist() == [1] for s in range(20))
    # a heavy edit (every 4th word) is no longer a near duplicate
    heavy = " ".join(w if i % 4 else "X" for i, w in enumerate(base.split()))
    assert near_duplicates([base, heavy], threshold=0.8)[0].tolist() == []
    # character shingles catch a copy with a typo
    d2, g2 = near_duplicates([TWO_CITIES, _text(2), TWO_CITIES.replace("foolishness", "folly")],
                             threshold=0.8, shingle=5, unit="chars")
    assert d2.tolist() == [2] and g2 == [[0, 2]]


def test_near_duplicates_groups_keep_the_first():
    base = _text(5)
    copies = [_edit(base, i, "EDIT") for i in (10, 90, 170)]
    drop, groups = near_duplicates([_text(6), base, *copies], threshold=0.8)
    assert drop.tolist() == [2, 3, 4]
    assert groups == [[1, 2, 3, 4]]


def test_near_duplicates_bad_settings():
    with pytest.raises(ConfigError, match="threshold"):
        near_duplicates(["a"], threshold=0.0)
    with pytest.raises(ConfigError):
        near_duplicates(["a"], num_perm=1)
    with pytest.raises(DataError, match="document 0"):
        near_duplicates([None])


def test_dedup_mask_and_summary():
    base = _text(7)
    docs = [base, base.upper(), _edit(base, 100, "EDIT"), _text(8), "short one", "Short  one"]
    keep, summary = dedup(docs, threshold=0.8)
    assert keep.tolist() == [True, False, False, True, True, False]
    assert summary["exact_removed"] == 2 and summary["near_removed"] == 1
    assert summary["kept"] == 3 and summary["documents"] == 6
    keep, summary = dedup(docs, near=False)
    assert keep.tolist() == [True, False, True, True, True, False]
    assert summary["near_removed"] == 0
    keep, _ = dedup(docs, exact=False, near=False)
    assert keep.all() and keep.dtype == np.bool_
