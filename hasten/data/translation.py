"""Parallel text for machine translation: loaders, joint BPE and a padded dataset.

Built for the competence-based curriculum of Platanios et al., "Competence-based Curriculum
Learning for Neural Machine Translation" (NAACL 2019), on the corpora stored offline under
`data_root()`:
- Multi30k task 1 (Elliott et al. 2016/2017, Barrault et al. 2018): `multi30k/{split}.{lang}.gz`,
  raw (untokenized, cased) captions in en/de/fr/cs.
- IWSLT'15 En-Vi (Stanford release): dev = tst2012 and test = tst2013 only, read from the
  `.tgz` archives; the text is Moses-tokenized with HTML entities kept, as distributed.

`train_bpe` learns one joint byte-level BPE over both languages with HF `tokenizers`, so
source and target share one vocabulary (and the model can tie all its embeddings). Its
decoder reproduces the original string exactly, so BLEU is computed on detokenised text.

`TranslationData` is a `TensorDataset` of pre-padded token ids: the trainer's `gather`
indexes TensorDatasets directly (no per-example collate), and `trim_batch` cuts a gathered
batch down to its own longest sentence, so padding to the corpus maximum costs nothing.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch.utils.data import TensorDataset

from hasten.core.errors import ConfigError, DataError
from hasten.core.paths import data_root
from hasten.text.read import read_text
from hasten.text.tokenizer import MT, train_tokenizer

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3 (`hasten.text.tokenizer.MT_SPECIALS`)

MULTI30K_LANGS = ("en", "de", "fr", "cs")
MULTI30K_SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco",
                   "test_2018_flickr")
IWSLT15_SPLITS = {"dev": "tst2012", "tst2012": "tst2012", "test": "tst2013",
                  "tst2013": "tst2013"}
IWSLT15_ARCHIVES = {"tst2012": "dev-2012-en-vi.tgz", "tst2013": "test-2013-en-vi.tgz"}


# -----------------------------------------------------------------------------
# reading


@dataclass
class ParallelText:
    """Sentence-aligned text: `src[i]` translates to `tgt[i]`."""

    src: list[str]
    tgt: list[str]
    src_lang: str = "src"
    tgt_lang: str = "tgt"
    name: str = "parallel"

    def __post_init__(self) -> None:
        if len(self.src) != len(self.tgt):
            raise DataError(f"{self.name}: {len(self.src)} source lines but {len(self.tgt)} "
                            "target lines")

    def __len__(self) -> int:
        return len(self.src)


def _split_lines(text: str) -> list[str]:
    # only "\n" ends a line: str.splitlines would also split on U+2028, U+0085, ... and so
    # could disagree between two sides of a parallel corpus
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where} is not UTF-8 text: {e}") from None


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file, gzip-compressed if its name ends in `.gz`, read as
    every corpus is (`hasten.text.read.read_text`: no BOM, LF line ends)."""
    return _split_lines(read_text(path))


def read_tar_member(archive: str | Path, member: str) -> list[str]:
    """The lines of one text file inside a `.tgz`/`.tar.gz` archive (read in memory)."""
    p = Path(archive)
    if not p.is_file():
        raise DataError(f"file not found: {p}")
    try:
        with tarfile.open(p, "r:*") as tar:
            names = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            if member not in names:
                raise DataError(f"{p} has no member {member!r} (it has {sorted(names)})")
            f = tar.extractfile(names[member])
            raw = f.read() if f is not None else b""
    except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
        raise DataError(f"cannot read {p}: {' '.join(str(e).split())}") from None
    return _split_lines(_decode(raw, f"{p}:{member}"))


def _check_parallel(src: list[str], tgt: list[str], src_name: str, tgt_name: str) -> None:
    if len(src) != len(tgt):
        raise DataError(f"parallel files differ in length: {src_name} has {len(src)} lines, "
                        f"{tgt_name} has {len(tgt)} lines")
    if not src:
        raise DataError(f"parallel files {src_name} and {tgt_name} are empty")


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> tuple[list[str], list[str]]:
    """Two line-aligned files (plain or `.gz`); a DataError if their line counts differ."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    _check_parallel(src, tgt, str(src_path), str(tgt_path))
    return src, tgt


def load_multi30k(src: str = "en", tgt: str = "de", split: str = "train",
                  root: str | Path | None = None) -> ParallelText:
    """Multi30k task 1, `src`->`tgt` (any two of en/de/fr/cs), raw captions.

    Splits: train (29,000), val (1,014), test_2016_flickr (1,000, the usual "test"),
    test_2017_flickr, test_2017_mscoco, test_2018_flickr. Czech lacks the 2017 tests.
    """
    for lang in (src, tgt):
        if lang not in MULTI30K_LANGS:
            raise ConfigError(f"multi30k has no language {lang!r}; use one of {MULTI30K_LANGS}")
    if src == tgt:
        raise ConfigError(f"multi30k: source and target are both {src!r}")
    if split == "test":
        split = "test_2016_flickr"
    if split not in MULTI30K_SPLITS:
        raise ConfigError(f"multi30k has no split {split!r}; use one of {MULTI30K_SPLITS}")
    folder = Path(root) if root is not None else data_root() / "multi30k"
    s, t = read_parallel(folder / f"{split}.{src}.gz", folder / f"{split}.{tgt}.gz")
    return ParallelText(s, t, src, tgt, name=f"multi30k-{split}-{src}-{tgt}")


def load_iwslt15_envi(split: str = "test", src: str = "en",
                      root: str | Path | None = None) -> ParallelText:
    """IWSLT'15 En-Vi dev (tst2012, 1,553 pairs) or test (tst2013, 1,268 pairs); `src` is
    "en" (En->Vi, the paper's direction) or "vi". The training split is not available."""
    if split == "train":
        raise DataError("IWSLT'15 En-Vi train is not stored locally (only dev = tst2012 and "
                        "test = tst2013 are)")
    if split not in IWSLT15_SPLITS:
        raise ConfigError(f"iwslt15 en-vi has no split {split!r}; use dev or test")
    if src not in ("en", "vi"):
        raise ConfigError(f"iwslt15 en-vi: src must be 'en' or 'vi', got {src!r}")
    tgt = "vi" if src == "en" else "en"
    name = IWSLT15_SPLITS[split]
    folder = Path(root) if root is not None else data_root() / "iwslt15-en-vi"
    archive = folder / IWSLT15_ARCHIVES[name]
    s, t = read_tar_member(archive, f"{name}.{src}"), read_tar_member(archive, f"{name}.{tgt}")
    _check_parallel(s, t, f"{archive}:{name}.{src}", f"{archive}:{name}.{tgt}")
    return ParallelText(s, t, src, tgt, name=f"iwslt15-{name}-{src}-{tgt}")


# -----------------------------------------------------------------------------
# joint BPE


class BPETokenizer:
    """A joint byte-level BPE (HF `tokenizers`) with exact detokenisation.

    Every text is encoded as " " + text, so a sentence's first word gets the same tokens as
    it would mid-sentence; `decode` drops that one space again. Byte-level pieces cover
    every string, so `decode(encode(s)) == s` for any s (no <unk> is ever produced).
    """

    def __init__(self, tokenizer: object):
        self.tok = tokenizer
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (
            tokenizer.token_to_id(s) for s in SPECIALS)
        if None in (self.pad_id, self.bos_id, self.eos_id, self.unk_id):
            raise DataError(f"tokenizer lacks one of the special tokens {SPECIALS}")

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(" " + text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        encs = self.tok.encode_batch([" " + t for t in texts], add_special_tokens=False)
        return [e.ids for e in encs]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; special tokens (pad, bos, eos, unk) are dropped."""
        text = self.tok.decode([int(i) for i in ids], skip_special_tokens=True)
        return text[1:] if text.startswith(" ") else text

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    def to_str(self) -> str:
        """The tokenizer as JSON (HF's format), for `BPETokenizer.from_str`."""
        return self.tok.to_str()

    @classmethod
    def from_str(cls, text: str) -> BPETokenizer:
        return cls(Tokenizer.from_str(text))


def train_bpe(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2
              ) -> BPETokenizer:
    """Learn one byte-level BPE vocabulary of `vocab_size` pieces over `texts` (pass both
    languages' training sentences for a joint vocabulary), with hasten's one tokenizer
    trainer (`hasten.text.tokenizer`, preset `MT`). Specials get ids 0..3."""
    if vocab_size < 300:
        raise ConfigError(f"vocab_size must be >= 300 (256 bytes + specials), got {vocab_size}")
    tok = train_tokenizer([" " + t for t in texts], MT, vocab_size=vocab_size,
                          min_frequency=min_frequency)
    return BPETokenizer(tok)


# -----------------------------------------------------------------------------
# the dataset


class TranslationData(TensorDataset):
    """(src_ids, tgt_ids) pairs as two pre-padded int64 tensors [N, Ls] and [N, Lt].

    src = pieces + [eos]; tgt = [bos] + pieces + [eos]; both right-padded with `pad_id`.
    Being a TensorDataset, the trainer gathers a batch by indexing both tensors at once;
    call `trim_batch` (the transformer loss does) to drop the columns no sentence uses.
    `src_lengths`/`tgt_lengths` count real tokens (eos/bos included), e.g. for token-budget
    batches. Sentences longer than `max_len` pieces are truncated (eos kept).
    """

    def __init__(self, src: list[list[int]], tgt: list[list[int]], pad_id: int, bos_id: int,
                 eos_id: int, max_len: int = 256):
        if len(src) != len(tgt):
            raise DataError(f"{len(src)} source sentences but {len(tgt)} target sentences")
        if not src:
            raise DataError("a translation dataset needs at least one sentence pair")
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.text: ParallelText | None = None  # the sentences, when built by from_text
        s_rows = [list(s[: max_len - 1]) + [eos_id] for s in src]
        t_rows = [[bos_id] + list(t[: max_len - 2]) + [eos_id] for t in tgt]
        self.src_lengths = np.array([len(r) for r in s_rows], dtype=np.int64)
        self.tgt_lengths = np.array([len(r) for r in t_rows], dtype=np.int64)
        super().__init__(_pad(s_rows, pad_id), _pad(t_rows, pad_id))

    @classmethod
    def from_text(cls, text: ParallelText, tokenizer: BPETokenizer, max_len: int = 256
                  ) -> TranslationData:
        """Encode both sides of `text` with one (joint) tokenizer."""
        data = cls(tokenizer.encode_batch(text.src), tokenizer.encode_batch(text.tgt),
                   tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, max_len)
        data.text = text
        return data

    def tokens(self, indices: Sequence[int] | None = None) -> int:
        """Real (unpadded) source + target tokens of the given examples (all by default)."""
        idx = slice(None) if indices is None else np.asarray(indices, dtype=np.int64)
        return int(self.src_lengths[idx].sum() + self.tgt_lengths[idx].sum())


def _pad(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def trim_batch(batch: tuple[torch.Tensor, torch.Tensor], pad_id: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a padded (src, tgt) batch to the longest sentence on each side."""
    src, tgt = batch
    return src[:, : _used_width(src, pad_id)], tgt[:, : _used_width(tgt, pad_id)]


def _used_width(x: torch.Tensor, pad_id: int) -> int:
    used = (x != pad_id).any(0)
    if not bool(used.any()):
        return 1
    return int(used.nonzero().max()) + 1


def count_tokens(batch: tuple[torch.Tensor, torch.Tensor], pad_id: int = 0) -> int:
    """Real source + target tokens in a batch: a `tokens_fn` for the trainer."""
    src, tgt = batch
    return int((src != pad_id).sum() + (tgt != pad_id).sum())
