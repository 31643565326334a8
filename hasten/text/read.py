"""Reading text corpora: UTF-8 files, folders, gzip, JSON lines; boilerplate and normalising.

    books = read_books("shared/data/gutenberg-large")      # one Book per file, in name order
    docs = read_corpus("shared/data/gutenberg")            # all documents, normalised

- A corpus path is a file or a folder. A folder means every file under it whose name ends in
  one of `CORPUS_SUFFIXES` (`.txt`, `.text`, `.md`, `.jsonl`, `.ndjson`, each optionally
  followed by `.gz`); a file named explicitly is read whatever its name.
- Text is UTF-8; a BOM is dropped and CRLF/CR line ends become LF; `.gz` files are
  decompressed in memory. A non-UTF-8 byte raises one `DataError` naming the file, the line
  and the byte offset.
- Project Gutenberg files carry a header and a licence footer; `strip_gutenberg` drops them
  (the lines starting `*** START OF` and `*** END OF` mark the body; shared/data's README says
  to strip them before training).
- Documents are paragraphs (blocks between blank lines, right for hard-wrapped books) or
  lines; a JSON-lines file gives one document per record (its `text` field).
- `normalize` folds compatibility forms (NFKC: ligatures, full-width letters) and collapses
  whitespace runs, as Cramming's normaliser does before tokenizing (Geiping & Goldstein 2023;
  we keep accents and non-ASCII characters, which Cramming drops).

A `Book` keeps the documents of one file together, so a held-out split can set aside whole
books (`hasten.text.prepare`), never paragraphs of a book that is also trained on.
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hasten.core.errors import ConfigError, DataError

Unit = Literal["line", "paragraph"]
TEXT_SUFFIXES = (".txt", ".text", ".md")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CORPUS_SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES
_WS = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")


@dataclass
class Book:
    """The documents of one file: `name` is its file name (what held-out rules look at)."""

    name: str
    path: Path
    docs: list[str]
    stripped_boilerplate: bool = False


def normalize(text: str) -> str:
    """NFKC (compatibility forms such as ligatures and full-width letters folded), whitespace
    runs (incl. line breaks and non-breaking spaces) collapsed to one space, ends stripped."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def base_name(path: str | Path) -> str:
    """The file name without a trailing `.gz` ("a.txt.gz" -> "a.txt")."""
    name = Path(path).name
    return name[:-3] if name.endswith(".gz") else name


def has_suffix(path: str | Path, suffixes: Iterable[str]) -> bool:
    """Whether the file name (without `.gz`) ends in one of `suffixes`."""
    name = base_name(path).lower()
    return any(name.endswith(s) for s in suffixes)


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a file, gunzipped when its name ends in `.gz`; DataError when missing or
    unreadable."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        return gzip.decompress(raw) if p.name.endswith(".gz") else raw
    except FileNotFoundError:
        raise DataError(f"file not found: {p}") from None
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        reason = getattr(e, "strerror", None) or e
        raise DataError(f"cannot read {p}: {' '.join(str(reason).split())}") from None


def read_text(path: str | Path) -> str:
    """A UTF-8 text file (gzipped if its name ends in `.gz`) as a str with LF line ends and
    no BOM. Non-UTF-8 bytes raise a DataError naming the file, the line and the offset."""
    p = Path(path)
    raw = read_bytes(p)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{p}: line {line} is not valid UTF-8 "
                        f"(byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_documents(text: str, unit: Unit = "line") -> list[str]:
    """Split text into documents: non-blank lines, or blocks separated by blank lines.

    A paragraph keeps its inner line breaks; blank (whitespace-only) pieces are dropped.
    """
    if unit == "line":
        parts = text.split("\n")
    elif unit == "paragraph":
        parts = [p.strip("\n") for p in _BLANK_LINES.split(text)]
    else:
        raise ConfigError(f"unknown text unit {unit!r}; known: line, paragraph")
    return [p for p in parts if p.strip()]


def strip_gutenberg(text: str) -> tuple[str, bool]:
    """Drop the Project Gutenberg header and licence footer: everything up to and including the
    line starting `*** START OF` and from the line starting `*** END OF`. Returns the text and
    whether both markers were found (if not, the text comes back unchanged)."""
    lines = text.split("\n")
    start = next((i for i, ln in enumerate(lines) if ln.startswith("*** START OF")), None)
    end = next((i for i, ln in enumerate(lines) if ln.startswith("*** END OF")), None)
    if start is None or end is None or end <= start:
        return text, False
    return "\n".join(lines[start + 1:end]), True


def jsonl_records(path: str | Path, field: str = "text") -> list[tuple[str, str]]:
    """(line, its string field `field`) of every record of a JSON-lines file, blank lines
    skipped; a DataError naming the line for bad JSON, a non-object, a missing field or a
    non-string one. The one JSON-lines reader (`hasten prune` keeps the lines to write the
    kept records back)."""
    p = Path(path)
    out = []
    for k, line in enumerate(read_text(p).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: line {k} is not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise DataError(f"{p}: line {k} is not a JSON object")
        if field not in rec:
            raise DataError(f"{p}: line {k} has no field {field!r}")
        if not isinstance(rec[field], str):
            raise DataError(f"{p}: line {k}: field {field!r} is not a string")
        out.append((line, rec[field]))
    return out


def read_jsonl(path: str | Path, field: str = "text") -> list[str]:
    """The string field `field` of every record of a JSON-lines file (`jsonl_records`)."""
    return [doc for _, doc in jsonl_records(path, field)]


def expand_paths(paths: str | Path | Sequence[str | Path],
                 suffixes: Iterable[str] = CORPUS_SUFFIXES) -> list[Path]:
    """Files named by `paths`: files as given, folders searched recursively for names ending
    in `suffixes` (optionally + `.gz`), sorted. A DataError for a missing path, a folder
    without matching files, or no paths at all."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    suffixes = sorted(set(suffixes))
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and has_suffix(f, suffixes))
            if not found:
                raise DataError(f"no text files ({', '.join(suffixes)}) in {p}")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"file not found: {p}")
    if not files:
        raise DataError("no input files given")
    return files


def read_book(path: str | Path, unit: Unit = "paragraph", strip_boilerplate: bool = True,
              normalise: bool = True, text_field: str = "text") -> Book:
    """One file as a `Book`: its documents (normalised unless `normalise=False`; empty ones
    dropped), Gutenberg boilerplate stripped where its markers exist."""
    p = Path(path)
    stripped = False
    if has_suffix(p, JSONL_SUFFIXES):
        docs = read_jsonl(p, text_field)
    else:
        text = read_text(p)
        if strip_boilerplate:
            text, stripped = strip_gutenberg(text)
        docs = split_documents(text, unit)
    if normalise:
        docs = [d for d in map(normalize, docs) if d]
    return Book(base_name(p), p, docs, stripped)


def read_books(paths: str | Path | Sequence[str | Path], unit: Unit = "paragraph",
               strip_boilerplate: bool = True, normalise: bool = True) -> list[Book]:
    """Every corpus file as a `Book`, in path order. DataError when no file holds text."""
    if unit not in ("line", "paragraph"):
        raise ConfigError(f"unit must be 'line' or 'paragraph', got {unit!r}")
    files = expand_paths(paths)
    books = [read_book(f, unit, strip_boilerplate, normalise) for f in files]
    if not any(b.docs for b in books):
        raise DataError(f"the corpus is empty: no non-blank text in {len(files)} file(s)")
    return books


def read_corpus(paths: str | Path | Sequence[str | Path], unit: Unit = "paragraph",
                strip_boilerplate: bool = True) -> list[str]:
    """All normalised documents of a corpus, in file order (see `read_books`)."""
    return [d for b in read_books(paths, unit, strip_boilerplate) for d in b.docs]


def check_docs(docs: Sequence[str]) -> list[str]:
    """`docs` as a list, or an error if it is one string, holds a non-str or has no text."""
    if isinstance(docs, str):
        raise ConfigError("docs must be a list of documents, not one string")
    docs = list(docs)
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise DataError(f"document {i} is a {type(d).__name__}, not a str")
    if not any(d.strip() for d in docs):
        raise DataError("the corpus is empty: no document holds any non-blank text")
    return docs


def check_corpus(paths: str | Path | Sequence[str | Path], chunk: int = 1 << 20) -> list[Path]:
    """The corpus files named by `paths`, checked before any work, reading only as far as
    the first non-blank text of each file (one chunk for any real file): a DataError for a
    missing path, a folder without text files, a file that is not UTF-8 text (binary) or a
    corpus with no non-blank text at all. The full read (`read_books`) checks the rest."""
    files = expand_paths(paths)
    if not any(_has_text(f, chunk) for f in files):
        raise DataError(f"the corpus is empty: no non-blank text in {len(files)} file(s)")
    return files


def _has_text(path: Path, chunk: int) -> bool:
    """Whether `path` holds non-blank UTF-8 text; a DataError when what it holds first is
    not UTF-8 (a binary file) or it cannot be read."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as fh:
            while block := fh.read(chunk):
                try:
                    text = decoder.decode(block)
                except UnicodeDecodeError as e:
                    raise DataError(f"{path} is not UTF-8 text (byte 0x{block[e.start]:02x} "
                                    f"at offset {offset + e.start}); a corpus is text files "
                                    f"({', '.join(CORPUS_SUFFIXES)}, optionally .gz)"
                                    ) from None
                if "\x00" in text:
                    raise DataError(f"{path} holds NUL bytes (a binary file, not text); a "
                                    f"corpus is text files ({', '.join(CORPUS_SUFFIXES)}, "
                                    "optionally .gz)")
                if text.strip(" \t\r\n\ufeff"):
                    return True
                offset += len(block)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        reason = getattr(e, "strerror", None) or e
        raise DataError(f"cannot read {path}: {' '.join(str(reason).split())}") from None
    return False
