"""Reading corpora: plain, gzipped and JSON-lines files, folders, boilerplate, books."""

import gzip

import pytest

from hasten.core.errors import ConfigError, DataError
from hasten.text.read import (
    expand_paths,
    normalize,
    read_book,
    read_books,
    read_jsonl,
    read_text,
    split_documents,
    strip_gutenberg,
)

BOOK = ("\ufeffProject Gutenberg header\r\n*** START OF THIS BOOK ***\r\n\r\nFirst  para\r\n"
        "graph.\r\n\r\n\r\nSecond one.\r\n*** END OF THIS BOOK ***\r\nlicence\r\n")


def test_strip_gutenberg():
    text = "header\n*** START OF THE BOOK ***\nbody 1\n\nbody 2\n*** END OF THE BOOK ***\nlicence"
    assert strip_gutenberg(text) == ("body 1\n\nbody 2", True)
    assert strip_gutenberg("no markers") == ("no markers", False)


def test_gzip_and_plain_read_the_same(tmp_path):
    (tmp_path / "a.txt").write_bytes(BOOK.encode())
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(BOOK.encode()))
    assert read_text(tmp_path / "a.txt") == read_text(tmp_path / "b.txt.gz")
    a, b = read_book(tmp_path / "a.txt"), read_book(tmp_path / "b.txt.gz")
    assert a.docs == b.docs == ["First para graph.", "Second one."]
    assert (a.name, b.name) == ("a.txt", "b.txt") and a.stripped_boilerplate
    raw = read_book(tmp_path / "a.txt", strip_boilerplate=False, normalise=False)
    assert raw.docs[0] == "Project Gutenberg header\n*** START OF THIS BOOK ***"


def test_jsonl_and_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "r.jsonl").write_text('{"text": "one  doc"}\n\n{"text": "two"}\n')
    (tmp_path / "c.md").write_text("Third\n")
    (tmp_path / "skip.bin").write_bytes(b"\xff")
    files = expand_paths(tmp_path)
    assert [f.name for f in files] == ["c.md", "r.jsonl"]
    books = read_books(tmp_path)
    assert [(b.name, b.docs) for b in books] == [("c.md", ["Third"]),
                                                 ("r.jsonl", ["one doc", "two"])]
    (tmp_path / "bad.jsonl").write_text('{"text": 1}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl: line 1: field 'text' is not a string"):
        read_jsonl(tmp_path / "bad.jsonl")
    (tmp_path / "bad.jsonl").write_text('[1]\n{"text": \n')
    with pytest.raises(DataError, match="line 1 is not a JSON object"):
        read_jsonl(tmp_path / "bad.jsonl")


def test_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_text(tmp_path / "missing.txt")
    (tmp_path / "bad.txt.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"cannot read .*bad\.txt\.gz"):
        read_text(tmp_path / "bad.txt.gz")
    (tmp_path / "latin.txt").write_bytes(gzip.compress(b"ok\ncaf\xe9\n"))
    (tmp_path / "latin.txt").rename(tmp_path / "latin.txt.gz")
    with pytest.raises(DataError, match=r"latin\.txt\.gz: line 2 is not valid UTF-8 "
                                        r"\(byte 0xe9 at offset 6\)"):
        read_text(tmp_path / "latin.txt.gz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no text files"):
        expand_paths(empty)
    (empty / "e.txt").write_text("\n \n")
    with pytest.raises(DataError, match="the corpus is empty"):
        read_books(empty)
    with pytest.raises(DataError, match="no input files"):
        expand_paths([])
    with pytest.raises(ConfigError, match="unit"):
        read_books(empty, unit="sentence")
    with pytest.raises(ConfigError, match="unknown text unit"):
        split_documents("a", "sentence")


def test_normalize():
    assert normalize("  ﬁne\u00a0 ｆｏｏ\n\tbar  ") == "fine foo bar"
