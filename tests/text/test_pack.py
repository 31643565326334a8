import numpy as np
import pytest

from hasten.core.errors import ConfigError, DataError
from hasten.text.pack import load_shards, pack, save_shards
from hasten.text.read import check_docs, normalize, read_corpus
from hasten.text.tokenizer import BERT_SPECIALS, CRAM, special_ids, train_tokenizer

DOCS = [
    "The quick brown fox jumps over the lazy dog.",
    "A lazy dog sleeps in the sun; the quick fox runs away.",
    "Brown foxes and lazy dogs are friends in this small story.",
] * 10


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(DOCS, CRAM, vocab_size=120)


def test_normalize_nfkc_and_whitespace():
    assert normalize("  ﬁne\u00a0 ｆｏｏ\n\tbar  ") == "fine foo bar"


def test_cram_tokenizer_specials_and_template(tok):
    assert special_ids(tok) == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert 5 < tok.get_vocab_size() <= 120
    enc = tok.encode("The Quick fox")
    assert enc.ids[0] == 2 and enc.ids[-1] == 3  # [CLS] ... [SEP]
    assert tok.decode(enc.ids) == "the quick fox"  # lowercased, specials skipped


def test_pack_layout(tok):
    docs = ["the quick fox", "lazy dog", "the sun"]
    enc = [tok.encode(d, add_special_tokens=False).ids for d in docs]
    stream = [t for e in enc for t in (*e, 3)]  # every document closed by [SEP]
    seq_len = 5
    rows = pack(docs, tok, seq_len=seq_len)
    assert rows.dtype == np.uint16 and rows.shape == (len(stream) // 4, seq_len)
    assert (rows[:, 0] == 2).all()  # [CLS] starts every row
    assert rows[:, 1:].reshape(-1).tolist() == stream[:rows.shape[0] * 4]
    padded = pack(docs, tok, seq_len=seq_len, drop_last=False)
    body = padded[:, 1:].reshape(-1).tolist()
    assert body[:len(stream)] == stream and set(body[len(stream):]) <= {0}
    assert len(body) - len(stream) < seq_len - 1


def test_pack_large_vocab_dtype(tok):
    class Big:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def get_vocab_size(self):
            return 70000

    assert pack(DOCS, Big(tok), seq_len=16).dtype == np.int32


def test_shards_round_trip(tmp_path, tok):
    rows = pack(DOCS, tok, seq_len=8)
    save_shards(rows, tmp_path / "tok", shard_rows=7, meta={"vocab": tok.get_vocab_size()})
    assert len(list((tmp_path / "tok").glob("shard-*.npy"))) == -(-len(rows) // 7)
    back = load_shards(tmp_path / "tok")
    assert back.dtype == rows.dtype and isinstance(back, np.ndarray)
    assert not isinstance(back, np.memmap)
    np.testing.assert_array_equal(back, rows)
    save_shards(rows[:3], tmp_path / "tok")  # replaces the old folder
    assert len(load_shards(tmp_path / "tok")) == 3


def test_load_shards_rejects_mismatch(tmp_path, tok):
    rows = pack(DOCS, tok, seq_len=8)
    out = save_shards(rows, tmp_path / "tok")
    np.save(out / "shard-00000.npy", rows[:, :4])
    with pytest.raises(DataError, match="does not match"):
        load_shards(out)
    with pytest.raises(DataError, match="index.json"):
        load_shards(tmp_path)


def test_read_corpus(tmp_path):
    (tmp_path / "a.txt").write_text("First  para\ngraph here.\n\n\nSecond one.\n", "utf-8")
    (tmp_path / "b.md").write_text("\ufeffThird\r\n", "utf-8")
    (tmp_path / "skip.bin").write_bytes(b"\xff\xfe")
    assert read_corpus(tmp_path) == ["First para graph here.", "Second one.", "Third"]
    assert read_corpus(tmp_path / "a.txt", unit="line") == ["First para", "graph here.",
                                                              "Second one."]


def test_bad_input(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok line\ncaf\xe9\n")
    with pytest.raises(DataError, match=r"bad\.txt: line 2 is not valid UTF-8 .*offset 11"):
        read_corpus(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n \t\n", "utf-8")
    with pytest.raises(DataError, match="empty"):
        read_corpus(empty)
    with pytest.raises(DataError, match="not found"):
        read_corpus(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="empty"):
        train_tokenizer([], CRAM, vocab_size=100)
    with pytest.raises(DataError, match="empty"):
        train_tokenizer(["", "  "], CRAM, vocab_size=100)
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer(DOCS, CRAM, vocab_size=len(BERT_SPECIALS))
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer(DOCS, CRAM, vocab_size=2)
    with pytest.raises(ConfigError):
        check_docs("one string")


def test_pack_bad_input(tok):
    with pytest.raises(DataError, match="empty"):
        pack([], tok)
    with pytest.raises(DataError, match="fewer than one row"):
        pack(["fox"], tok, seq_len=128)
    with pytest.raises(ConfigError):
        pack(DOCS, tok, seq_len=1)
