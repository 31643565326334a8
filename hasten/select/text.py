"""Text scorers over a list of documents: how hard each document is, with what it cost.

- `tokens_per_char` is Cramming's "hard to compress" score (Geiping & Goldstein 2023,
  "Cramming: Training a Language Model on a Single GPU in One Day", `remove_trash`): tokens
  per character with the run's own tokenizer; `hasten.text.filter.cramming_filter` keeps a
  document iff tokens < cutoff x characters. Text that tokenizes badly (code, tables, foreign
  scripts, junk, lists of numbers) scores high.
- `unigram_rarity` is the negative mean log unigram probability of a document's tokens, the
  difficulty of Platanios et al. 2019 (competence-based curriculum, "word rarity") and of
  Cramming's `unigram-curriculum`; `length` is their other difficulty, sentence length.

Tokenizers come from `hasten.text.tokenizer.train_tokenizer` (preset `SCORER`) or any callable
str -> tokens; counting is `hasten.text.filter.token_counts`. Every scorer returns a `Scores`
with its direction and its cost (seconds, documents, characters, tokens), so a benchmark can
charge the scoring time.
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from hasten.core.errors import ConfigError, DataError
from hasten.select.per_example import Scores
from hasten.text.filter import check_documents as _check_docs
from hasten.text.filter import describe_tokenizer, token_counts, tokenize

# A tokenizer is an HF `tokenizers.Tokenizer` or any callable str -> sequence of tokens
# (`str.split`, a transformers tokenizer's `.tokenize`, ...).
TokenizerLike = Any


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
        toks = [list(t) for t in tokenize(docs, tokenizer_or_words)]
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
    return describe_tokenizer(tokenizer)
