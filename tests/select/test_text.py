import math

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from hasten.core.errors import ConfigError, DataError
from hasten.select.text import length, tokens_per_char, unigram_rarity
from hasten.text.filter import token_counts


@pytest.fixture(scope="module")
def word_level():
    """A tokenizer whose output we know: known words are one token, each punctuation run is
    one token, anything else is one [UNK] per word."""
    vocab = {"[UNK]": 0, "the": 1, "cat": 2, "sat": 3}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


PROSE = [
    "The cat sat on the mat and looked out of the window at the garden.",
    "She walked down the road to the village, where the market was busy.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "He had never seen the sea before, and he stood there for a long time.",
    "They talked about the weather, the harvest and the price of bread.",
] * 8


def test_tokens_per_char_exact(word_level):
    docs = ["the cat sat", "x,y;z!", ""]
    assert token_counts(docs, word_level).tolist() == [3, 6, 0]
    s = tokens_per_char(docs, word_level)
    assert s.higher_is == "harder" and s.name == "tokens_per_char"
    np.testing.assert_allclose(s.values, [3 / 11, 6 / 6, 0.0])
    assert s.work == {"documents": 3, "characters": 17, "tokens": 9}
    assert s.seconds >= 0.0

def test_tokens_per_char_with_a_callable():
    s = tokens_per_char(["a b c", "abcdef"], str.split)
    np.testing.assert_allclose(s.values, [3 / 5, 1 / 6])

def test_length_units(word_level):
    docs = ["the cat sat", "one two", ""]
    assert length(docs).values.tolist() == [11, 7, 0]
    assert length(docs, "words").values.tolist() == [3, 2, 0]
    s = length(docs, "tokens", tokenizer=word_level)
    assert s.values.tolist() == [3, 2, 0] and s.higher_is == "harder"
    with pytest.raises(ConfigError, match="needs a tokenizer"):
        length(docs, "tokens")
    with pytest.raises(ConfigError, match="unknown length unit"):
        length(docs, "lines")

def test_unigram_rarity_by_hand(word_level):
    docs = ["a a b", "B c", ""]  # words lowercased: a:2 b:2 c:1, N = 5
    s = unigram_rarity(docs, eps=0.0)
    assert s.higher_is == "harder"
    np.testing.assert_allclose(s.values, [-math.log(0.4), -(math.log(0.4) + math.log(0.2)) / 2,
                                          0.0])
    eps = 0.5  # p = (c + eps) / (N + eps * V), V = 3
    p = {"a": 2.5 / 6.5, "b": 2.5 / 6.5, "c": 1.5 / 6.5}
    np.testing.assert_allclose(
        unigram_rarity(docs, eps=eps).values,
        [-(2 * math.log(p["a"]) + math.log(p["b"])) / 3,
         -(math.log(p["b"]) + math.log(p["c"])) / 2, 0.0])
    # with a tokenizer: ids "the"=1, "cat"=2, UNK=0 for anything else
    t = unigram_rarity(["the cat", "the dog"], word_level, eps=0.0)  # the:2 cat:1 unk:1, N=4
    np.testing.assert_allclose(t.values, [-(math.log(0.5) + math.log(0.25)) / 2] * 2)
    with pytest.raises(ConfigError):
        unigram_rarity(docs, "chars")
    with pytest.raises(DataError, match="no tokens"):
        unigram_rarity(["", " "])

def test_docs_must_be_a_list():
    with pytest.raises(ConfigError, match="not one string"):
        length("just one string")
    with pytest.raises(DataError, match="document 1"):
        length(["ok", 3])
