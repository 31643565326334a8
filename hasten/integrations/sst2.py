"""A small text task built from local files in seconds: SST-2 sentences, a WordPiece
tokenizer trained on them, and a BERT-shaped encoder made from a config (no download).

Used by the HF Trainer and Lightning examples, their tests and `hasten.integrations.
hf_bench`. SST-2 (Socher et al. 2013, "Recursive Deep Models for Semantic Compositionality
Over a Sentiment Treebank", in GLUE's copy) is read from `data_root()/glue/SST-2/*.tsv`;
its dev split is the test set here, as GLUE's test labels are hidden. The files are read by
the GLUE reader every SST-2 user shares (`hasten.pretrain.lmeval.glue_tasks.read_task`).
Rows are tokenized to their own length (no padding); `pad_collate` pads each batch to its
longest row.

Where it is shown: docs/your-loop.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hasten.core.sampling import CollateFn, to_device
from hasten.data.padding import pad_collate
from hasten.pretrain.lmeval.glue_tasks import read_task
from hasten.text.tokenizer import CRAM, cached_tokenizer, special_ids


def read_sst2(split: str, limit: int | None = None) -> tuple[list[str], list[int]]:
    """(sentences, labels) of SST-2's `split` ("train" or "dev"), the first `limit` rows,
    read by the one GLUE reader (`hasten.pretrain.lmeval.glue_tasks.read_task`)."""
    texts, _, labels = read_task("sst2", split)
    stop = limit if limit is not None else len(texts)
    return texts[:stop], [int(y) for y in labels[:stop]]


@dataclass
class TextTask:
    """Tokenized train and test sets (HF `datasets.Dataset`s with `input_ids` and `label`),
    the tokenizer, and what a model and a loop need to use them."""

    train: Any
    test: Any
    tokenizer: Any
    vocab_size: int
    pad_id: int
    collate: CollateFn
    lengths: list[int]  # tokens of each training row (a curriculum's difficulty)


def load_sst2(train_rows: int | None = None, test_rows: int | None = None,
              vocab_size: int = 4000, max_len: int = 64) -> TextTask:
    """SST-2 tokenized by a WordPiece vocabulary trained on its training sentences."""
    from datasets import Dataset

    train_x, train_y = read_sst2("train", train_rows)
    test_x, test_y = read_sst2("dev", test_rows)
    tokenizer = cached_tokenizer(train_x, CRAM, vocab_size=vocab_size)
    pad_id = special_ids(tokenizer)["pad"]

    def encode(texts: list[str], labels: list[int]) -> Any:
        ids = [e.ids[:max_len] for e in tokenizer.encode_batch(texts)]
        return Dataset.from_dict({"input_ids": ids, "label": labels})

    train = encode(train_x, train_y)
    return TextTask(train=train, test=encode(test_x, test_y), tokenizer=tokenizer,
                    vocab_size=tokenizer.get_vocab_size(), pad_id=pad_id,
                    collate=pad_collate(pad_id), lengths=[len(r) for r in train["input_ids"]])


def tiny_bert(vocab_size: int, num_labels: int = 2, hidden: int = 64, layers: int = 2,
              heads: int = 2, max_len: int = 64, seed: int = 0, pad_id: int = 0,
              dropout: float = 0.1) -> nn.Module:
    """A small `BertForSequenceClassification`, randomly initialised from a config."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=4 * hidden,
                        max_position_embeddings=max_len, num_labels=num_labels,
                        pad_token_id=pad_id, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    return BertForSequenceClassification(config)


def sequence_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of each example of a padded batch (hasten's `loss_fn` contract)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits, batch["labels"], reduction="none")


@torch.no_grad()
def accuracy(model: nn.Module, data: Any, collate: CollateFn, batch_size: int = 256) -> float:
    """Accuracy (%) of `model` on a tokenized dataset, in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    for lo in range(0, len(data), batch_size):
        batch = to_device(collate([data[i] for i in range(lo, min(len(data), lo + batch_size))]),
                          device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        correct += int((logits.argmax(-1) == batch["labels"]).sum())
    model.train(was_training)
    return 100.0 * correct / max(1, len(data))
