"""The one tokenizer trainer of hasten (HF `tokenizers`), for pretraining, scoring and MT.

    tok = train_tokenizer(docs, CRAM)                        # Cramming's WordPiece, 32768
    tok = train_tokenizer(docs, SCORER, vocab_size=2000)     # the text scorers' tokenizer
    tok = train_tokenizer(texts, MT, vocab_size=8000)        # byte-level BPE for translation

A `TokenizerSpec` says everything that shapes the result: the model (WordPiece, Cramming's
choice, Geiping & Goldstein 2023; or BPE, Sennrich et al. 2016), the vocabulary size, the
special tokens *in id order*, the normaliser, the pre-tokenizer and the minimum frequency.
It is a frozen dataclass, so it is also the tokenizer's part of a cache key
(`hasten.text.prepare`). The three presets reproduce the tokenizers hasten's callers trained
before they shared this function, ids included:

- `CRAM`: WordPiece, specials `[PAD] [UNK] [CLS] [SEP] [MASK]` = ids 0..4, NFKC + lowercase,
  BERT pre-tokenizer (whitespace and punctuation), WordPiece decoder and a
  `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]` post-processor, so the same tokenizer serves
  fine-tuning.
- `SCORER`: WordPiece (or BPE with `kind="bpe"`), specials `[UNK] [PAD] [CLS] [SEP] [MASK]`
  = ids 0..4, NFD + lowercase + accents stripped, whitespace pre-tokenizer, no decoder or
  template: only its token counts matter (Cramming's tokens-per-character filter).
- `MT`: byte-level BPE, specials `<pad> <s> </s> <unk>` = ids 0..3, the 256-byte alphabet
  added so every string encodes without `<unk>`, byte-level decoder.

WordPiece training in `tokenizers` alone is not deterministic: it numbers the continuation
pieces (`##e`) in hash-map order, and ties between merges are broken by those numbers, so two
runs on the same documents give different vocabularies. `train_tokenizer` makes it so: a first
pass finds the continuation pieces, the second pass is given them, sorted, right after the
specials (as specials, which fixes their ids; they are made plain entries afterwards). The
same documents and spec give the same tokenizer on every machine; a saved one is still reused
(`cached_tokenizer`, `hasten.text.prepare`) to save the training time.
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from hasten.core import paths
from hasten.core.atomic import atomic_write
from hasten.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SCORER_SPECIALS = ("[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]")
MT_SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
KINDS = ("wordpiece", "bpe")
NORMALIZERS = ("nfkc-lower", "nfkc", "nfd-lower-strip", "none")
PRE_TOKENIZERS = ("bert", "whitespace", "byte-level")
# how training runs, part of every cache key: a tokenizer saved by an earlier way of training
# (WordPiece's pieces numbered in no fixed order) is never read back as this one's
TRAINING = "wordpiece-pieces-sorted"
SHORT_NAMES = {"[PAD]": "pad", "[UNK]": "unk", "[CLS]": "cls", "[SEP]": "sep",
               "[MASK]": "mask"}


@dataclass(frozen=True)
class TokenizerSpec:
    """What a trained tokenizer depends on (besides the documents)."""

    kind: str = "wordpiece"
    vocab_size: int = 32768
    specials: tuple[str, ...] = BERT_SPECIALS  # in id order: the first gets id 0
    unk: str = "[UNK]"
    normalizer: str = "nfkc-lower"
    pre_tokenizer: str = "bert"
    min_frequency: int = 2
    bert_template: bool = True  # [CLS] A [SEP] post-processor + WordPiece decoder

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "specials": list(self.specials)}

    def check(self) -> None:
        """ConfigError for a value no tokenizer could be trained with."""
        for name, value, known in (("kind", self.kind, KINDS),
                                   ("normalizer", self.normalizer, NORMALIZERS),
                                   ("pre_tokenizer", self.pre_tokenizer, PRE_TOKENIZERS)):
            if value not in known:
                raise ConfigError(f"unknown tokenizer {name} {value!r}; known: "
                                  f"{', '.join(known)}")
        if not isinstance(self.vocab_size, int) or self.vocab_size <= len(self.specials):
            raise ConfigError(f"vocab_size must be an int > {len(self.specials)} (the special "
                              f"tokens {' '.join(self.specials)}), got {self.vocab_size!r}")
        if self.unk not in self.specials:
            raise ConfigError(f"the unknown token {self.unk!r} must be one of the specials")
        if self.bert_template and not {"[CLS]", "[SEP]"} <= set(self.specials):
            raise ConfigError("bert_template needs [CLS] and [SEP] among the specials")


CRAM = TokenizerSpec()
SCORER = TokenizerSpec(vocab_size=8192, specials=SCORER_SPECIALS, normalizer="nfd-lower-strip",
                       pre_tokenizer="whitespace", bert_template=False)
MT = TokenizerSpec(kind="bpe", vocab_size=8000, specials=MT_SPECIALS, unk="<unk>",
                   normalizer="none", pre_tokenizer="byte-level", bert_template=False)


def _normalizer(name: str) -> Any:
    steps = {"nfkc-lower": [normalizers.NFKC(), normalizers.Lowercase()],
             "nfkc": [normalizers.NFKC()],
             "nfd-lower-strip": [normalizers.NFD(), normalizers.Lowercase(),
                                 normalizers.StripAccents()],
             "none": []}[name]
    return normalizers.Sequence(steps) if steps else None


def _pre_tokenizer(name: str) -> Any:
    if name == "bert":
        return pre_tokenizers.BertPreTokenizer()
    if name == "whitespace":
        return pre_tokenizers.Whitespace()
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


def _model_and_trainer(spec: TokenizerSpec) -> tuple[Any, Any]:
    common = {"vocab_size": spec.vocab_size, "min_frequency": spec.min_frequency,
              "special_tokens": list(spec.specials), "show_progress": False}
    if spec.kind == "wordpiece":
        return (models.WordPiece(unk_token=spec.unk, max_input_chars_per_word=100),
                trainers.WordPieceTrainer(**common))
    extra = ({"initial_alphabet": pre_tokenizers.ByteLevel.alphabet()}
             if spec.pre_tokenizer == "byte-level" else {})
    return models.BPE(unk_token=spec.unk), trainers.BpeTrainer(**common, **extra)


def train_tokenizer(docs: Iterable[str], spec: TokenizerSpec = CRAM, **changes: Any
                    ) -> Tokenizer:
    """Train a tokenizer on `docs` as `spec` says (`changes` replace spec fields, e.g.
    `vocab_size=2000`). Specials get ids 0, 1, ... in `spec.specials` order. DataError for a
    corpus without text; ConfigError for a bad spec."""
    spec = replace(spec, **changes) if changes else spec
    spec.check()
    docs = docs if isinstance(docs, list) else list(docs)
    if isinstance(docs, str) or not any(isinstance(d, str) and d.strip() for d in docs):
        raise DataError("cannot train a tokenizer: the corpus is empty")
    if spec.kind == "wordpiece":
        tok = _train(docs, replace(spec, vocab_size=len(spec.specials) + 1))  # pieces only
        pieces = sorted(t for t in tok.get_vocab() if t.startswith("##") and len(t) == 3)
        tok = _train(docs, replace(spec, specials=spec.specials + tuple(pieces)))
        tok = _as_plain_entries(tok, pieces)
    else:
        tok = _train(docs, spec)
    if spec.pre_tokenizer == "byte-level":
        tok.decoder = decoders.ByteLevel()
    elif spec.bert_template:
        tok.decoder = decoders.WordPiece(prefix="##")
    if spec.bert_template:
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def _train(docs: list[str], spec: TokenizerSpec) -> Tokenizer:
    model, trainer = _model_and_trainer(spec)
    tok = Tokenizer(model)
    norm = _normalizer(spec.normalizer)
    if norm is not None:
        tok.normalizer = norm
    tok.pre_tokenizer = _pre_tokenizer(spec.pre_tokenizer)
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    return tok


def _as_plain_entries(tok: Tokenizer, pieces: list[str]) -> Tokenizer:
    """The tokenizer with `pieces` kept in its vocabulary (same ids) but no longer special:
    text that spells one is split like any other text."""
    state = json.loads(tok.to_str())
    drop = set(pieces)
    state["added_tokens"] = [a for a in state["added_tokens"] if a["content"] not in drop]
    return Tokenizer.from_str(json.dumps(state))


def cached_tokenizer(docs: Sequence[str], spec: TokenizerSpec = CRAM,
                     cache_dir: str | Path | None = None, **changes: Any) -> Tokenizer:
    """`train_tokenizer`, trained once per (docs, spec) and then read back from
    `cache_dir` (default `$HASTEN_CACHE/tokenizers`, else `~/.cache/hasten/tokenizers`).
    Training is deterministic (see the module's notes); the cache saves its time."""
    spec = replace(spec, **changes) if changes else spec
    key = {**spec.to_dict(), "training": TRAINING}
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    for doc in docs:
        h.update(doc.encode("utf-8", "surrogatepass") + b"\x00")
    root = Path(cache_dir) if cache_dir else paths.cache_dir("tokenizers")
    path = root / f"{h.hexdigest()[:24]}.json"
    if path.is_file():
        return load_tokenizer(str(path))
    tok = train_tokenizer(list(docs), spec)
    atomic_write(path, lambda fh: fh.write(tok.to_str().encode()))
    return tok


def special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """Ids of [PAD] [UNK] [CLS] [SEP] [MASK] by short name (pad, unk, cls, sep, mask);
    ConfigError naming a missing one."""
    out = {}
    for token, name in SHORT_NAMES.items():
        i = tokenizer.token_to_id(token)
        if i is None:
            raise ConfigError(f"the tokenizer has no {token} token")
        out[name] = int(i)
    return out


def hf_tokenizer(tokenizer: Tokenizer, max_len: int = 512) -> Any:
    """Wrap a BERT-style `tokenizers.Tokenizer` (the `CRAM` preset) as a transformers
    `PreTrainedTokenizerFast`, for `save_pretrained` next to an exported model."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=max_len,
        model_input_names=["input_ids", "attention_mask"])


def load_tokenizer(path: str) -> Tokenizer:
    """A tokenizer saved with `Tokenizer.save` (JSON); DataError when it cannot be read."""
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises its own Exception type for bad files
        raise DataError(f"cannot read tokenizer {path}: {' '.join(str(e).split())}") from None
