"""Every reader of user input, as a fuzzing property (see fuzz_props): IDX files, text and
JSON-lines corpora, GLUE TSV, BLiMP JSON lines, parallel MT files and archives, distilled
(safetensors) and pruned (npz) training sets, model folders (their weights and config),
checkpoints, config files and budget strings.
The command line itself is in fuzz_cli."""

from __future__ import annotations

import gzip
import io
import json
import math
import struct
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fuzz_props import (
    PropertyFailure,
    damaged,
    gz_damaged,
    json_values,
    outcome,
    reader,
)
from hypothesis import strategies as st

# --- IDX (Fashion-MNIST) -------------------------------------------------------------------

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes | None = None) -> bytes:
    if payload is None:
        payload = bytes(i % 251 for i in range(math.prod(dims)))
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def _idx_plain(k: int) -> bytes:
    return idx_bytes(2051, (2, 28, 28)) if k % 2 == 0 else idx_bytes(2049, (2,), b"\x03\x07")


idx_headers = st.builds(
    lambda magic, dims, payload: gzip.compress(idx_bytes(magic, dims, payload), mtime=0),
    st.sampled_from([2051, 2049, 2050, 2052, 0, 2**32 - 1]),
    st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 40), min_size=0, max_size=4)
    .map(tuple),
    st.binary(max_size=64))


@reader("idx-gz", st.integers(0, 3).flatmap(
    lambda k: st.tuples(st.just(k), gz_damaged(_idx_plain(k)) | idx_headers)))
def check_idx(tmp: Path, example: tuple[int, bytes]) -> str:
    from hasten.data.vision import load_fashion_mnist

    which, raw = example
    for k, name in enumerate(IDX_FILES):
        (tmp / name).write_bytes(raw if k == which else gzip.compress(_idx_plain(k), mtime=0))
    kind, data = outcome(load_fashion_mnist, tmp)
    if kind == "ok" and (len(data.train) != 2 or len(data.test) != 2):
        raise PropertyFailure(f"read {len(data.train)}/{len(data.test)} examples from 2/2")
    return kind


# --- text and JSON-lines corpora -----------------------------------------------------------

BOOK = ("The Project Gutenberg eBook\n*** START OF THE BOOK ***\nIt was a cold day.\r\n"
        "The end came soon.\n\nA second paragraph, caf\u00e9 \ufb01ne.\n"
        "*** END OF THE BOOK ***\nLicence text.\n").encode()
LINES = b'{"text": "one two three"}\n\n{"text": "four \\u00e9", "id": 2}\n'
CORPUS_KINDS = {".txt": BOOK, ".md": BOOK, ".jsonl": LINES}


@st.composite
def corpus_files(draw: Any) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from(sorted(CORPUS_KINDS)))
    plain = CORPUS_KINDS[suffix]
    if draw(st.booleans()):
        return suffix + ".gz", draw(gz_damaged(plain))
    return suffix, draw(damaged(plain))


@reader("text-corpus", corpus_files())
def check_corpus(tmp: Path, example: tuple[str, bytes]) -> str:
    from hasten.text.read import read_books

    suffix, raw = example
    (tmp / f"book{suffix}").write_bytes(raw)
    kind, books = outcome(read_books, [tmp / f"book{suffix}"])
    if kind == "ok" and not all(isinstance(d, str) for b in books for d in b.docs):
        raise PropertyFailure("a document is not a str")
    return kind


# --- GLUE TSV ------------------------------------------------------------------------------

GLUE_SEEDS = {
    "cola": "gj04\t1\t\tThe sailors rode the breeze.\ngj04\t0\t*\tThe doll wriggled loose.\n",
    "sst2": "sentence\tlabel\nit 's a charming journey . \t1\nbleak and desperate \t0\n",
    "mrpc": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t13\t15\tHe said so .\t"
            "\" He said it .\n0\t20\t29\tA b .\tC d .\n",
    "stsb": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\t"
            "score\n0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man dances.\t"
            "A man is dancing.\t5.000\n",
    "rte": "index\tsentence1\tsentence2\tlabel\n0\tDana has died.\tDana had an accident.\t"
           "not_entailment\n1\tIt rains.\tIt is wet.\tentailment\n",
}


@reader("glue-tsv", st.sampled_from(sorted(GLUE_SEEDS)).flatmap(
    lambda t: st.tuples(st.just(t), st.sampled_from(["train", "dev"]),
                        damaged(GLUE_SEEDS[t].encode()))))
def check_glue(tmp: Path, example: tuple[str, str, bytes]) -> str:
    from hasten.pretrain.lmeval.glue_tasks import TASKS, read_task

    task, split, raw = example
    folder = tmp / TASKS[task].folder
    folder.mkdir()
    (folder / f"{split}.tsv").write_bytes(raw)
    kind, value = outcome(read_task, task, split, tmp)
    if kind == "ok":
        a, b, y = value
        if len(a) != len(y) or (b is not None and len(b) != len(y)):
            raise PropertyFailure(f"{len(a)} texts for {len(y)} labels")
    return kind


# --- BLiMP ---------------------------------------------------------------------------------

BLIMP = (json.dumps({"sentence_good": "Who should Derek hug?", "sentence_bad": "Who should "
                     "Derek hug Richard?", "UID": "adjunct_island", "pairID": "0"}) + "\n"
         + json.dumps({"sentence_good": "A b.", "sentence_bad": "B a.", "pairID": 1}) + "\n"
         ).encode()


@reader("blimp-jsonl", st.one_of(st.tuples(st.just(".jsonl.gz"), gz_damaged(BLIMP)),
                                 st.tuples(st.just(".jsonl"), damaged(BLIMP))))
def check_blimp(tmp: Path, example: tuple[str, bytes]) -> str:
    from hasten.pretrain.lmeval.blimp import read_blimp

    suffix, raw = example
    (tmp / f"adjunct_island{suffix}").write_bytes(raw)
    kind, pairs = outcome(read_blimp, tmp)
    if kind == "ok" and not all(isinstance(p.index, int) for ps in pairs.values() for p in ps):
        raise PropertyFailure("a pair index is not an int")
    return kind


# --- parallel MT files ---------------------------------------------------------------------

SOURCE = b"Two young men outside.\nA dog runs.\n"
TARGET = "Zwei junge M\u00e4nner drau\u00dfen.\nEin Hund rennt.\n".encode()


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"dev/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


TGZ = _tgz({"tst2012.en": SOURCE, "tst2012.vi": TARGET})


@reader("mt-parallel", st.one_of(
    st.tuples(st.just("gz"), gz_damaged(SOURCE), gz_damaged(TARGET)),
    st.tuples(st.just("plain"), damaged(SOURCE), damaged(TARGET)),
    st.tuples(st.just("tgz"), damaged(TGZ, 512), st.just(b""))))
def check_parallel(tmp: Path, example: tuple[str, bytes, bytes]) -> str:
    from hasten.data.translation import read_parallel, read_tar_member

    kind, first, second = example
    if kind == "tgz":
        (tmp / "dev.tgz").write_bytes(first)
        got = outcome(lambda: (read_tar_member(tmp / "dev.tgz", "tst2012.en"),
                               read_tar_member(tmp / "dev.tgz", "tst2012.vi")))
    else:
        suffix = ".gz" if kind == "gz" else ""
        (tmp / f"train.en{suffix}").write_bytes(first)
        (tmp / f"train.de{suffix}").write_bytes(second)
        got = outcome(read_parallel, tmp / f"train.en{suffix}", tmp / f"train.de{suffix}")
    if got[0] == "ok" and kind != "tgz" and len(got[1][0]) != len(got[1][1]):
        raise PropertyFailure("parallel files of different lengths were accepted")
    return got[0]


# --- training sets hasten wrote (`hasten train --data`) ------------------------------------


def _digits_like_recipe() -> Any:
    from torch.utils.data import TensorDataset

    class Recipe:  # the two fields use_training_set reads and sets
        train_data = TensorDataset(torch.zeros(10, 1, 8, 8), torch.arange(10))
        notes: dict[str, Any] = {}

    return Recipe()


def _synthetic_bytes() -> bytes:
    from safetensors.torch import save

    from hasten.distill.synthetic import META_KEY

    meta = {"method": "dm", "dataset": "digits", "num_classes": 10, "factor": 1}
    return save({"images": torch.linspace(-1, 1, 10 * 64).reshape(10, 1, 8, 8),
                 "labels": torch.arange(10)}, metadata={META_KEY: json.dumps(meta)})


@st.composite
def safetensors_files(draw: Any) -> bytes:
    """A saved set: its bytes mutated, or its JSON header edited (kept well-formed length)."""
    raw = _synthetic_bytes()
    if draw(st.booleans()):
        return draw(damaged(raw, 512))
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    key = draw(st.sampled_from(sorted(header)))
    if key == "__metadata__":
        meta = json.loads(header[key]["hasten.distill"])
        meta[draw(st.sampled_from(["factor", "num_classes", "method", "x"]))] = \
            draw(json_values)
        header[key] = draw(st.sampled_from([
            {"hasten.distill": json.dumps(meta)},
            {"hasten.distill": json.dumps(draw(json_values))},
            {"hasten.distill": draw(st.text(max_size=8))}, draw(json_values)]))
    else:
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        header[key][field] = draw(st.sampled_from(["F32", "I64", "BOOL", "F8_E4M3", "U8", "X"])
                                  | json_values if field == "dtype" else json_values)
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + raw[8 + length:]


@reader("distilled-set", safetensors_files())
def check_distilled(tmp: Path, raw: bytes) -> str:
    from hasten.bench.own import training_set, use_training_set

    (tmp / "set.safetensors").write_bytes(raw)
    kind, data = outcome(training_set, tmp)
    if kind == "ok":
        kind, _ = outcome(use_training_set, _digits_like_recipe(), data, str(tmp))
    return kind


MODEL_CONFIG = json.dumps({"model_type": "bert", "hidden_size": 4}).encode()


def _weights_bytes() -> bytes:
    from safetensors.torch import save

    return save({"encoder.weight": torch.linspace(-1, 1, 16).reshape(4, 4),
                 "encoder.bias": torch.zeros(4), "steps": torch.arange(3)})


@st.composite
def weights_files(draw: Any) -> bytes:
    """A model's weights file: its bytes mutated, or a header field edited (the length kept
    right, so the edit reaches safetensors' own checks)."""
    raw = _weights_bytes()
    if draw(st.booleans()):
        return draw(damaged(raw, 512))
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    key = draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
    field = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
    header[key][field] = draw(st.sampled_from(["F32", "F16", "I64", "BOOL", "U8", "X"])
                              | json_values if field == "dtype" else json_values)
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + raw[8 + length:]


@reader("model-folder", st.tuples(weights_files(), st.just(MODEL_CONFIG) | damaged(MODEL_CONFIG)))
def check_model_folder_files(tmp: Path, example: tuple[bytes, bytes]) -> str:
    """What eval-lm and glue check before reading a model folder: a folder that passes has
    weights that load (safetensors reads every tensor) and a config that parses."""
    from safetensors.torch import load_file

    from hasten.core.checks import check_model_folder

    weights, config = example
    (tmp / "model.safetensors").write_bytes(weights)
    (tmp / "config.json").write_bytes(config)
    kind, _ = outcome(check_model_folder, tmp)
    if kind == "ok":
        kind, _ = outcome(load_file, str(tmp / "model.safetensors"))
        json.loads((tmp / "config.json").read_text(encoding="utf-8"))
    return kind


def _npz_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(10 * 64, dtype=np.float32).reshape(10, 1, 8, 8),
             y=np.arange(10))
    return buf.getvalue()


SUMMARY = json.dumps({"files": ["data.npz", "scores.npy", "summary.json"]}).encode()


@reader("pruned-set", st.tuples(damaged(_npz_bytes(), 512),
                                st.just(SUMMARY) | damaged(SUMMARY)))
def check_pruned(tmp: Path, example: tuple[bytes, bytes]) -> str:
    from hasten.bench.own import training_set, use_training_set

    data_file, summary = example
    (tmp / "data.npz").write_bytes(data_file)
    (tmp / "summary.json").write_bytes(summary)
    kind, data = outcome(training_set, tmp)
    if kind == "ok":
        kind, _ = outcome(use_training_set, _digits_like_recipe(), data, str(tmp))
    return kind


# --- config files and budget strings -------------------------------------------------------

TOML = b'budget = "90s"\nlr = 0.01\nschedule_params = { warmup = 0.1 }\n[train]\nseed = 3\n'
JSON = b'{"budget": "2000steps", "betas": [0.9, 0.95], "clip": null, "quiet": true}'


@reader("config-file", st.one_of(
    st.tuples(st.just(".toml"), damaged(TOML)), st.tuples(st.just(".json"), damaged(JSON)),
    st.tuples(st.just(".json"), st.dictionaries(st.sampled_from(
        ["budget", "lr", "betas", "clip", "micro_batch", "schedule_params", "eval_every",
         "precision", "seed", "quiet"]), json_values, max_size=4).map(
        lambda d: json.dumps(d).encode()))))
def check_config(tmp: Path, example: tuple[str, bytes]) -> str:
    from hasten.core.config import resolve
    from hasten.core.trainer import TrainConfig

    suffix, raw = example
    (tmp / f"c{suffix}").write_bytes(raw)

    def read() -> Any:
        config = resolve(TrainConfig, file=tmp / f"c{suffix}", section="train")
        config.validate()
        return config

    return outcome(read)[0]


UNITS = ["s", "sec", "m", "min", "h", "d", "steps", "step", "ba", "ex", "examples", "sp",
         "tok", "tokens", "flop", "flops", "x", ""]


@reader("budget-string", st.one_of(
    st.text(max_size=24),
    st.builds(lambda n, u, pad: f"{pad}{n}{pad}{u}{pad}",
              st.floats(allow_nan=True, allow_infinity=True).map(repr)
              | st.integers(-10, 10**400).map(str)
              | st.sampled_from(["1e999", "0", ".5", "1e-400"]),
              st.sampled_from(UNITS), st.sampled_from(["", " ", "\n", "\t"]))))
def check_budget(tmp: Path, text: str) -> str:
    from hasten.core.budget import Budget, parse_budget

    kind, value = outcome(parse_budget, text)
    if kind == "ok":
        unit, amount = value
        if not (math.isfinite(amount) and amount > 0):
            raise PropertyFailure(f"budget {text!r} parsed to {amount} {unit}")
        kind, _ = outcome(Budget, text)
    return kind
