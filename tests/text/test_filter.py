"""Cramming's tokens-per-character filter and the corpus cleaning report."""

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from hasten.core.errors import ConfigError, DataError
from hasten.core.paths import data_root
from hasten.text.filter import cramming_filter, filter_corpus
from hasten.text.tokenizer import SCORER, train_tokenizer


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


def test_cramming_filter_keeps_prose_drops_junk(word_level):
    docs = ["the cat sat", "x,y;z!", "", "the cat  s"]  # last: 3 tokens, 10 chars = 0.3 exactly
    assert cramming_filter(docs, word_level, cutoff=0.3).tolist() == [True, False, False, False]
    assert cramming_filter(docs, word_level, cutoff=0.31).tolist() == [True, False, False, True]
    with pytest.raises(ConfigError):
        cramming_filter(docs, word_level, cutoff=0.0)

def test_own_tokenizer_flags_junk():
    junk = "x9#@!q 7&&^%$ 0x3f;;{}[] |--|--| 42;17;99 <<>>"
    docs = [*PROSE, junk]
    tok = train_tokenizer(docs, SCORER, vocab_size=300)
    assert tok.get_vocab_size() <= 300
    keep = cramming_filter(docs, tok, cutoff=0.3)
    assert keep[:-1].all() and not keep[-1]
    bpe = train_tokenizer(docs, SCORER, vocab_size=300, kind="bpe")
    assert not cramming_filter(docs, bpe, cutoff=0.3)[-1]

def test_filter_corpus_end_to_end(tmp_path):
    long_para = " ".join(f"word{i % 37} stands beside word{(i * 7) % 41}" for i in range(60))
    edited = long_para.replace("word5 stands", "word5 walks", 1)
    paras = [*PROSE[:5], "THE CAT SAT ON THE MAT AND LOOKED OUT OF THE  WINDOW AT THE GARDEN.",
             "#$%^ {}[]<> ;;;; 0x1f 0x2e |||| @@@", long_para, edited]
    body = "\r\n\r\n".join(p.replace("\n", "\r\n") for p in paras)
    f = tmp_path / "book.txt"
    f.write_bytes(("\ufeffProject Gutenberg header\r\n*** START OF THIS BOOK ***\r\n\r\n"
                   + body + "\r\n\r\n*** END OF THIS BOOK ***\r\nlicence text\r\n")
                  .encode("utf-8"))
    g = tmp_path / "other.txt"
    g.write_text(PROSE[1] + "\n\n" + PROSE[2] + "\n", encoding="utf-8")
    # a toy corpus is too small to train a tokenizer on (words seen once split into letters),
    # so train it on more of the same prose plus the paragraphs themselves
    tok = train_tokenizer([*PROSE, *paras], SCORER, vocab_size=400)
    kept, summary = filter_corpus([f, g], cutoff=0.3, tokenizer=tok, examples=2)
    assert summary["documents"] == len(paras) + 2
    rules = summary["rules"]
    assert rules["cramming"]["removed"] == 1
    assert rules["cramming"]["examples"][0]["text"].startswith("#$%^")
    assert rules["exact"]["removed"] == 3  # the upper-cased copy and other.txt's two paragraphs
    assert rules["near"]["removed"] == 1 and rules["near"]["groups"] == 1
    assert rules["near"]["examples"][0]["duplicate_of"].startswith("word0 stands")
    assert kept == [*PROSE[:5], long_para]
    assert rules["near"]["documents_after"] == len(kept) == summary["kept_documents"]
    book, other = summary["per_file"]
    assert book["stripped_boilerplate"] and not other["stripped_boilerplate"]
    assert book["removed_by"] == {"cramming": 1, "exact": 1, "near": 1}
    assert other["kept"] == 0 and other["removed_by"]["exact"] == 2
    assert "Project Gutenberg header" not in " ".join(kept)
    assert summary["seconds"]["total"] > 0

def test_filter_corpus_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        filter_corpus([tmp_path / "missing.txt"])
    (tmp_path / "empty.txt").write_text("\n\n \n")
    with pytest.raises(DataError, match="no documents"):
        filter_corpus(tmp_path / "empty.txt")

def test_filter_corpus_on_a_gutenberg_book():
    book = data_root() / "gutenberg" / "11-0.txt"
    assert book.is_file(), f"shared data missing: {book}"
    kept, summary = filter_corpus(book, vocab_size=2000, near=False)
    assert summary["per_file"][0]["stripped_boilerplate"]
    assert not any("Project Gutenberg" in d for d in kept)
    removed = summary["rules"]["cramming"]["removed"]
    assert 0 < removed < 0.4 * summary["documents"]
    assert summary["kept_fraction_characters"] > 0.9
