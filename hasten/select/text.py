"""Text scorers and the Cramming "hard to compress" filter, over a list of documents.

- `tokens_per_char` and `cramming_filter` follow Geiping & Goldstein 2023, "Cramming: Training
  a Language Model on a Single GPU in One Day" (github JonasGeiping/cramming, `remove_trash`):
  tokenize every raw document with the run's own tokenizer and keep it only if
  `tokens < cutoff * characters` (cutoff 0.3 in Cramming's default/bookcorpus/Wikipedia configs,
  0.25 for C4, OpenWebText, the Pile). Text that tokenizes badly (code, tables, foreign scripts,
  junk, lists of numbers) has many tokens per character.
- `train_tokenizer` trains that "own tokenizer" (Cramming's `remove_trash: self`) with HF
  `tokenizers`: WordPiece (Cramming's choice) or BPE, whitespace pre-tokenizer.
- `unigram_rarity` is the negative mean log unigram probability of a document's tokens, the
  difficulty of Platanios et al. 2019 (competence-based curriculum, "word rarity") and of
  Cramming's `unigram-curriculum`; `length` is their other difficulty, sentence length.
- `filter_corpus` runs the whole pipeline on text files (paragraphs): train the tokenizer,
  apply the filter, then exact and MinHash near deduplication (`hasten.select.dedup`).

Every scorer returns a `Scores` with its direction and its cost (seconds, documents,
characters, tokens), so a benchmark can charge the scoring time.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hasten.errors import ConfigError, DataError
from hasten.select.scores import Scores

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# A tokenizer is an HF `tokenizers.Tokenizer` or any callable str -> sequence of tokens
# (`str.split`, a transformers tokenizer's `.tokenize`, ...).
TokenizerLike = Any

SPECIAL_TOKENS = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
_BATCH = 2048  # documents per encode_batch call: bounds memory on large corpora


# -----------------------------------------------------------------------------
# tokenizers


def train_tokenizer(docs: Iterable[str], vocab_size: int = 8192,
                    kind: Literal["wordpiece", "bpe"] = "wordpiece",
                    min_frequency: int = 2) -> Tokenizer:
    """Train a tokenizer on `docs` with HF `tokenizers`, for when the user has none.

    WordPiece (Cramming's choice) or BPE; normaliser NFD + lowercase + strip accents (Cramming
    also drops non-ASCII characters, which would hide foreign scripts from the filter, so we
    keep them); whitespace/punctuation pre-tokenizer; special tokens [UNK] [PAD] [CLS] [SEP]
    [MASK]. Every character seen in `docs` is in the alphabet, so text written in a rare script
    splits into many single-character tokens instead of one [UNK].
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ConfigError(f"vocab_size must be > {len(SPECIAL_TOKENS)}, got {vocab_size}")
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=SPECIAL_TOKENS, show_progress=False)
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=SPECIAL_TOKENS, show_progress=False)
    else:
        raise ConfigError(f"unknown tokenizer kind {kind!r}; known: wordpiece, bpe")
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    docs = list(docs)
    if not any(d.strip() for d in docs):
        raise DataError("cannot train a tokenizer: the corpus is empty")
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    return tok


def _tokenize(docs: Sequence[str], tokenizer: TokenizerLike) -> Iterable[Sequence]:
    """Yield each document's tokens (ids for an HF Tokenizer, whatever a callable returns)."""
    if hasattr(tokenizer, "encode_batch"):
        for start in range(0, len(docs), _BATCH):
            batch = list(docs[start:start + _BATCH])
            for enc in tokenizer.encode_batch(batch, add_special_tokens=False):
                yield enc.ids
    elif callable(tokenizer):
        for d in docs:
            yield tokenizer(d)
    else:
        raise ConfigError("tokenizer must be a tokenizers.Tokenizer or a callable "
                          f"str -> tokens, got {type(tokenizer).__name__}")


def token_counts(docs: Sequence[str], tokenizer: TokenizerLike) -> np.ndarray:
    """Number of tokens of each document (no special tokens added)."""
    return np.fromiter((len(t) for t in _tokenize(docs, tokenizer)), dtype=np.int64,
                       count=len(docs))


def _check_docs(docs: Sequence[str]) -> None:
    if isinstance(docs, str):
        raise ConfigError("docs must be a list of documents, not one string")
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise DataError(f"document {i} is a {type(d).__name__}, not a str")


# -----------------------------------------------------------------------------
# scorers


def tokens_per_char(docs: Sequence[str], tokenizer: TokenizerLike) -> Scores:
    """Cramming's "hard to compress" score: tokens / characters with the run's own tokenizer.

    High = harder to compress (code, tables, foreign scripts, junk). An empty document scores
    0 (and `cramming_filter` drops it). Characters are Python code points.
    """
    _check_docs(docs)
    t0 = time.perf_counter()
    tokens = token_counts(docs, tokenizer)
    chars = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    values = tokens / np.maximum(chars, 1)
    return Scores(values, name="tokens_per_char", higher_is="harder",
                  seconds=time.perf_counter() - t0,
                  work={"documents": len(docs), "characters": int(chars.sum()),
                        "tokens": int(tokens.sum())},
                  meta={"tokenizer": _describe(tokenizer)})


def cramming_filter(docs: Sequence[str], tokenizer: TokenizerLike,
                    cutoff: float = 0.3) -> np.ndarray:
    """Keep mask of Cramming's filter: True iff tokens < cutoff * characters.

    Strict inequality, as in Cramming, so an empty document is always dropped.
    """
    if not 0.0 < cutoff:
        raise ConfigError(f"cutoff must be > 0, got {cutoff}")
    _check_docs(docs)
    tokens = token_counts(docs, tokenizer)
    chars = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    return tokens < cutoff * chars


_WORD = re.compile(r"\S+")


def length(docs: Sequence[str], unit: Literal["chars", "words", "tokens"] = "chars",
           tokenizer: TokenizerLike | None = None) -> Scores:
    """Document length in characters, whitespace-separated words or tokens.

    Longer counts as harder: sentence length is the difficulty of competence-based curricula
    (Platanios et al. 2019). `unit="tokens"` needs a tokenizer.
    """
    _check_docs(docs)
    t0 = time.perf_counter()
    chars = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    work: dict[str, float] = {"documents": len(docs), "characters": int(chars.sum())}
    if unit == "chars":
        values = chars
    elif unit == "words":
        values = np.fromiter((len(_WORD.findall(d)) for d in docs), dtype=np.int64,
                             count=len(docs))
        work["words"] = int(values.sum())
    elif unit == "tokens":
        if tokenizer is None:
            raise ConfigError("length(unit='tokens') needs a tokenizer")
        values = token_counts(docs, tokenizer)
        work["tokens"] = int(values.sum())
    else:
        raise ConfigError(f"unknown length unit {unit!r}; known: chars, words, tokens")
    meta: dict[str, object] = {"unit": unit}
    if tokenizer is not None and unit == "tokens":
        meta["tokenizer"] = _describe(tokenizer)
    return Scores(values, name=f"length_{unit}", higher_is="harder",
                  seconds=time.perf_counter() - t0, work=work, meta=meta)


def _words(doc: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(doc)]


def unigram_rarity(docs: Sequence[str], tokenizer_or_words: TokenizerLike | str = "words",
                   eps: float = 1e-9) -> Scores:
    """Negative mean log unigram probability of each document's tokens (natural log).

    Probabilities are estimated on `docs` themselves: p(w) = (count(w) + eps) / (N + eps * V),
    N tokens and V distinct tokens in the corpus. `tokenizer_or_words="words"` uses lowercased
    whitespace-separated words, otherwise the given tokenizer. Higher = rarer words = harder
    (Platanios et al. 2019's "word rarity"); a document without tokens scores 0.
    """
    _check_docs(docs)
    if eps < 0:
        raise ConfigError(f"eps must be >= 0, got {eps}")
    t0 = time.perf_counter()
    if isinstance(tokenizer_or_words, str):
        if tokenizer_or_words != "words":
            raise ConfigError(f"tokenizer_or_words must be 'words' or a tokenizer, "
                              f"got {tokenizer_or_words!r}")
        toks = [_words(d) for d in docs]
    else:
        toks = [list(t) for t in _tokenize(docs, tokenizer_or_words)]
    counts: Counter = Counter()
    for t in toks:
        counts.update(t)
    total, vocab = sum(counts.values()), len(counts)
    if total == 0:
        raise DataError("unigram_rarity: the corpus has no tokens")
    denom = math.log(total + eps * vocab)
    logp = {w: math.log(c + eps) - denom for w, c in counts.items()}
    values = np.array([-sum(logp[w] for w in t) / len(t) if t else 0.0 for t in toks])
    meta: dict[str, object] = {"eps": eps, "log": "natural", "vocab": vocab,
                               "tokens": "words" if isinstance(tokenizer_or_words, str)
                               else _describe(tokenizer_or_words)}
    return Scores(values, name="unigram_rarity", higher_is="harder",
                  seconds=time.perf_counter() - t0,
                  work={"documents": len(docs), "characters": sum(len(d) for d in docs),
                        "tokens": total}, meta=meta)


def _describe(tokenizer: TokenizerLike) -> str:
    if hasattr(tokenizer, "get_vocab_size") and hasattr(tokenizer, "model"):
        return f"{type(tokenizer.model).__name__}(vocab={tokenizer.get_vocab_size()})"
    return getattr(tokenizer, "__qualname__", type(tokenizer).__name__)


# -----------------------------------------------------------------------------
# corpus pipeline


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


def _short(doc: str, width: int = 120) -> str:
    flat = " ".join(doc.split())
    return flat if len(flat) <= width else flat[:width - 3] + "..."


def expand_paths(paths: str | Path | Sequence[str | Path],
                 suffixes: Iterable[str] = (".txt",)) -> list[Path]:
    """Files named by `paths`: files as given, folders searched recursively for `suffixes`.
    A DataError for a missing path, a folder without matching files, or no paths at all."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    suffixes = sorted(set(suffixes))
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in suffixes)
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


def filter_corpus(paths: str | Path | Sequence[str | Path], cutoff: float = 0.3,
                  near_dup_threshold: float = 0.8, vocab_size: int = 8192, *,
                  kind: Literal["wordpiece", "bpe"] = "wordpiece",
                  unit: Literal["paragraph", "line"] = "paragraph",
                  strip_boilerplate: bool = True, tokenizer: TokenizerLike | None = None,
                  exact: bool = True, near: bool = True, num_perm: int = 128,
                  shingle: int = 5, seed: int = 1, examples: int = 3,
                  ) -> tuple[list[str], dict]:
    """Clean a text corpus the Cramming way: filter, then exact and near deduplication.

    Reads the files (UTF-8, BOM and CRLF tolerated; a folder means its *.txt files), strips
    Project Gutenberg boilerplate where the markers exist, splits into documents (paragraphs
    separated by blank lines, or lines), trains a tokenizer on all of them unless one is given,
    keeps documents with tokens < cutoff * characters, then drops exact duplicates (after
    lowercasing and whitespace normalisation) and MinHash-LSH near duplicates of earlier kept
    documents. Returns the kept documents, in corpus order, and a JSON-ready summary: documents
    and characters before/after each rule, per-file counts, the first `examples` removed
    documents of each rule (120 characters), the highest tokens/char documents, and seconds.
    """
    from hasten.select.dedup import first_copy, near_duplicates
    from hasten.select.io import read_text, split_documents

    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    files = expand_paths(paths)
    t0 = time.perf_counter()
    docs: list[str] = []
    file_of: list[int] = []
    per_file: list[dict] = []
    for fi, f in enumerate(files):
        text = read_text(f)
        stripped = False
        if strip_boilerplate:
            text, stripped = strip_gutenberg(text)
        parts = split_documents(text, unit)
        docs.extend(parts)
        file_of.extend([fi] * len(parts))
        per_file.append({"file": f.name, "stripped_boilerplate": stripped,
                         "documents": len(parts), "characters": sum(map(len, parts))})
    if not docs:
        raise DataError(f"filter_corpus: no documents in {len(files)} file(s)")
    seconds["read"] = time.perf_counter() - t0
    file_of_arr = np.asarray(file_of)

    t0 = time.perf_counter()
    if tokenizer is None:
        tokenizer = train_tokenizer(docs, vocab_size=vocab_size, kind=kind)
    seconds["tokenizer_training"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ratio = tokens_per_char(docs, tokenizer)
    chars = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    tokens = np.rint(ratio.values * np.maximum(chars, 1)).astype(np.int64)
    keep_filter = tokens < cutoff * chars
    seconds["cramming_filter"] = time.perf_counter() - t0

    alive = np.flatnonzero(keep_filter)
    removed: dict[str, np.ndarray] = {"cramming": np.flatnonzero(~keep_filter)}
    duplicate_of: dict[int, int] = {}

    t0 = time.perf_counter()
    if exact:
        first = first_copy([docs[i] for i in alive])
        drop = np.flatnonzero(first != np.arange(len(alive)))
        removed["exact"] = alive[drop]
        duplicate_of.update({int(alive[d]): int(alive[first[d]]) for d in drop})
        alive = np.setdiff1d(alive, alive[drop])
    seconds["exact_dedup"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    near_groups = 0
    if near:
        sub = [docs[i] for i in alive]
        drop, groups = near_duplicates(sub, threshold=near_dup_threshold, num_perm=num_perm,
                                       shingle=shingle, seed=seed)
        removed["near"] = alive[drop]
        near_groups = len(groups)
        for g in groups:
            for m in g[1:]:
                duplicate_of[int(alive[m])] = int(alive[g[0]])
        alive = np.setdiff1d(alive, alive[drop])
    seconds["near_dedup"] = time.perf_counter() - t0

    rules: dict[str, dict] = {}
    docs_before, chars_before = len(docs), int(chars.sum())
    for rule, idx in removed.items():
        entry = {"documents_before": docs_before, "characters_before": chars_before,
                 "removed": int(len(idx)), "characters_removed": int(chars[idx].sum()),
                 "documents_after": docs_before - int(len(idx)),
                 "characters_after": chars_before - int(chars[idx].sum()),
                 "examples": []}
        for i in idx[:examples]:
            ex: dict[str, object] = {"index": int(i), "file": files[file_of[i]].name,
                                     "text": _short(docs[i])}
            if rule == "cramming":
                ex["tokens_per_char"] = round(float(ratio.values[i]), 4)
            else:
                ex["duplicate_of"] = _short(docs[duplicate_of[int(i)]])
            entry["examples"].append(ex)
        if rule == "cramming":
            entry["by_length"] = _length_buckets(chars, idx)
            longest = idx[np.argsort(-chars[idx], kind="stable")[:examples]]
            entry["longest_removed"] = [
                {"index": int(i), "file": files[file_of[i]].name, "characters": int(chars[i]),
                 "tokens_per_char": round(float(ratio.values[i]), 4), "text": _short(docs[i])}
                for i in longest]
        if rule == "near":
            entry["groups"] = near_groups
        rules[rule] = entry
        docs_before, chars_before = entry["documents_after"], entry["characters_after"]
    for fi, pf in enumerate(per_file):
        in_file = file_of_arr == fi
        pf["removed_by"] = {rule: int(in_file[idx].sum()) for rule, idx in removed.items()}
        pf["kept"] = int(in_file[alive].sum())
        pf["kept_characters"] = int(chars[alive][in_file[alive]].sum())

    order = np.argsort(-ratio.values, kind="stable")
    q = np.quantile(ratio.values, [0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0])
    kept_docs = [docs[i] for i in alive]
    seconds["total"] = time.perf_counter() - t_all
    summary = {
        "settings": {"cutoff": cutoff, "near_dup_threshold": near_dup_threshold,
                     "vocab_size": vocab_size, "kind": kind, "unit": unit,
                     "strip_boilerplate": strip_boilerplate, "exact": exact, "near": near,
                     "num_perm": num_perm, "shingle": shingle, "seed": seed,
                     "tokenizer": _describe(tokenizer)},
        "files": len(files),
        "documents": len(docs), "characters": int(chars.sum()), "tokens": int(tokens.sum()),
        "kept_documents": len(kept_docs), "kept_characters": int(chars[alive].sum()),
        "kept_fraction_documents": len(kept_docs) / len(docs),
        "kept_fraction_characters": float(chars[alive].sum() / max(int(chars.sum()), 1)),
        "rules": rules,
        "tokens_per_char_quantiles": {k: round(float(v), 4) for k, v in zip(
            ["min", "p01", "p10", "p50", "p90", "p99", "max"], q, strict=True)},
        "highest_tokens_per_char": [
            {"index": int(i), "file": files[file_of[i]].name,
             "tokens_per_char": round(float(ratio.values[i]), 4), "text": _short(docs[i])}
            for i in order[:examples * 3]],
        "per_file": per_file,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    return kept_docs, summary



def _length_buckets(chars: np.ndarray, removed: np.ndarray) -> list[dict]:
    """Documents and removed documents per length bucket (characters)."""
    out = []
    gone = np.zeros(len(chars), dtype=bool)
    gone[removed] = True
    for lo, hi in ((0, 20), (20, 50), (50, 200), (200, None)):
        m = (chars >= lo) & (chars < hi if hi is not None else True)
        out.append({"characters": f"{lo}-{hi - 1}" if hi else f"{lo}+",
                    "documents": int(m.sum()), "removed": int((m & gone).sum())})
    return out
