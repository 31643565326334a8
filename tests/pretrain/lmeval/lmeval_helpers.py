"""Tiny models, tokenizers and data folders for the lmeval tests, built in-test (nothing
downloads). Plain cached functions rather than a second conftest.py: the suite imports
`conftest` by name, and a conftest.py here would shadow the root one."""

import functools
import gzip
import json
import tempfile

import numpy as np
import torch

DOCS = [
    "The quick brown fox jumps over the lazy dog.",
    "A lazy dog sleeps in the sun, and the quick fox runs away.",
    "Brown foxes and lazy dogs are friends in this small story.",
    "The dogs were sleeping while the fox was running.",
    "Who saw the dog? The cat saw the dog near the river.",
] * 8


@functools.cache
def get_wordpiece():
    from hasten.text.tokenizer import CRAM, train_tokenizer

    return train_tokenizer(DOCS, CRAM, vocab_size=90)


@functools.cache
def get_hf_tok():
    from hasten.text.tokenizer import hf_tokenizer

    return hf_tokenizer(get_wordpiece(), max_len=64)


FIXED_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "dog", "cat", "fox",
               "##es", "were", "was", "sleep", "##ing", "saw", ".", "?", "un", "##believ",
               "##able", "who"]


@functools.cache
def get_fixed_tok():
    """A WordPiece tokenizer over a fixed vocabulary, so the pieces of a word are known:
    "unbelievable" is un ##believ ##able, "sleeping" is sleep ##ing."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    from hasten.text.tokenizer import hf_tokenizer

    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(FIXED_VOCAB)},
                                     unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return hf_tokenizer(tok, max_len=64)


def bert(vocab_size, seed=0):
    """A random BertForMaskedLM from a config: 2 layers, 32 wide, no dropout."""
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0)
    torch.manual_seed(seed)
    return BertForMaskedLM(cfg).eval()


@functools.cache
def get_tiny_bert():
    return bert(len(get_hf_tok()))


def crammed(wordpiece, seed=0, **kw):
    from hasten.models.encoder import CrammedEncoder, EncoderConfig
    from hasten.text.tokenizer import special_ids

    ids = special_ids(wordpiece)
    shape = dict(hidden=32, layers=2, heads=2, intermediate=64, max_len=64, attention="sdpa")
    cfg = EncoderConfig(vocab_size=wordpiece.get_vocab_size(), pad_id=ids["pad"],
                        cls_id=ids["cls"], sep_id=ids["sep"], mask_id=ids["mask"],
                        **{**shape, **kw})
    torch.manual_seed(seed)
    return CrammedEncoder(cfg).eval()


_TMP: list[tempfile.TemporaryDirectory] = []  # removed when the test process ends


@functools.cache
def get_tiny_export():
    """A hasten export (ModernBERT folder) of a random crammed encoder."""
    from pathlib import Path

    from hasten.models.export_hf import export_hf

    _TMP.append(tempfile.TemporaryDirectory(prefix="hasten-lmeval-"))
    wordpiece = get_wordpiece()
    return export_hf(crammed(wordpiece), wordpiece, Path(_TMP[-1].name) / "model")


def write_toy_glue(root):
    """SST-2 and STS-B folders under `root` where word choice decides the label."""
    rng = np.random.default_rng(0)
    (root / "SST-2").mkdir(parents=True)
    (root / "STS-B").mkdir()
    for split, n in (("train", 200), ("dev", 60)):
        rows = ["sentence\tlabel"]
        for _ in range(n):
            label = int(rng.integers(0, 2))
            word = ["awful", "great"][label]
            rows.append(f"the {word} dog {rng.choice(['sat', 'ran'])} \t{label}")
        (root / "SST-2" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
        rows = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
                "sentence2\tscore"]
        for i in range(n):
            same = int(rng.integers(0, 2))
            a, b = "the dog sat", "the dog sat" if same else "a fox ran"
            rows.append(f"{i}\tg\tf\ty\t{i}\ts\ts\t{a}\t{b}\t{5.0 * same:.3f}")
        (root / "STS-B" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def write_toy_blimp(root):
    """Three paradigms of six pairs under `root`; the pairs with an even pairID use only
    words of DOCS."""
    root.mkdir()
    known = [("The dog sleeps in the sun.", "The dogs sleeps in the sun."),
             ("The dogs were sleeping.", "The dogs was sleeping."),
             ("Who saw the cat?", "Who the cat saw?")]
    unknown = [("Derek hugs Richard.", "Derek hug Richard."),
               ("Many zebras graze.", "Many zebras grazes."),
               ("Whom did Anne visit?", "Whom Anne did visit?")]
    for k, name in enumerate(("agreement", "islands", "npi")):
        lines = []
        for i in range(6):
            good, bad = (known if i % 2 == 0 else unknown)[(i // 2 + k) % 3]
            lines.append(json.dumps({"sentence_good": good, "sentence_bad": bad,
                                     "pairID": str(i)}))
        (root / f"{name}.jsonl.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    return root
