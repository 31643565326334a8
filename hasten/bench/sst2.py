"""A small SST-2 task: a crammed encoder, built from a config, trained on SST-2 in minutes.

Data: GLUE SST-2 from `data_root()/glue/SST-2` (67,349 labelled training phrases and
sentences, 872 labelled dev sentences; the test split has no labels). Nothing downloads:
a WordPiece tokenizer (8,192 entries, lowercase) is trained on the training text, and the
model is hasten's crammed encoder (`hasten.models.encoder`, 2 layers, width 128, 4 heads,
rotary positions) with mean pooling and a linear head, from random initialisation.

Tasks:
  sst2-small      trained on the training split, scored on dev (accuracy, %)
  sst2-small-val  trained on the training split less 2,000 held-out rows, scored on those
                  (for choosing settings; phrases of one sentence can land on both sides, so
                  it flatters absolute accuracy, not the comparison of settings)
Quick mode: 2,000 training rows, 200 scored rows, a 1,000-entry vocabulary, a 1-layer
width-32 encoder, one epoch: a few seconds, for tests. Full runs train two epochs.

Rows are stored padded to 80 tokens; the loss trims each batch to its longest row, and
`tokens_fn` counts real tokens, so FLOPs are per token. Each example's token count is its
difficulty (`difficulty`), the competence curriculum's classic choice (Platanios et al.
2019).

Where its result is shown: docs/benchmarks.md, "A lever stack at one budget: does not pass here".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.bench.harness import Recipe, register_task
from hasten.core.trainer import TrainConfig
from hasten.models.encoder import Backbone, EncoderConfig
from hasten.pretrain.lmeval.glue_tasks import read_task
from hasten.text.tokenizer import CRAM, cached_tokenizer

MAX_LEN = 80
VALIDATION_SIZE = 2000


class SentenceClassifier(nn.Module):
    """The encoder's backbone, mean-pooled over real tokens, then a linear head."""

    def __init__(self, cfg: EncoderConfig, num_labels: int = 2):
        super().__init__()
        self.config = cfg
        self.backbone = Backbone(cfg)
        self.head = nn.Linear(cfg.hidden, num_labels)
        for name, p in self.backbone.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=cfg.init_std)
            elif name.endswith("weight"):
                nn.init.ones_(p)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(ids, mask)
        m = mask.to(hidden.dtype)[..., None]
        return self.head((hidden * m).sum(1) / m.sum(1).clamp(min=1.0))


def encoder_config(quick: bool, small: bool = False) -> EncoderConfig:
    """The task's encoder (`small`: the proxy's, a quarter of the width, one layer)."""
    if quick:
        return EncoderConfig(vocab_size=1000, hidden=32, layers=1, heads=2, intermediate=64,
                             max_len=MAX_LEN)
    if small:
        return EncoderConfig(vocab_size=8192, hidden=32, layers=1, heads=2, intermediate=64,
                             max_len=MAX_LEN)
    return EncoderConfig(vocab_size=8192, hidden=128, layers=2, heads=4, intermediate=512,
                         max_len=MAX_LEN)


def _trim(batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids, lengths, labels = batch
    width = int(lengths.max())
    ids = ids[:, :width]
    mask = torch.arange(width, device=ids.device)[None, :] < lengths[:, None]
    return ids, mask, labels


def per_example_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """Cross-entropy of each sentence (the batch trimmed to its longest row)."""
    ids, mask, labels = _trim(batch)
    return F.cross_entropy(model(ids, mask), labels, reduction="none")


def count_tokens(batch: Any) -> int:
    """Real (unpadded) tokens of a batch."""
    return int(batch[1].sum())


def accuracy_on(data: TensorDataset, batch: int = 256):
    """An evaluate() function: accuracy in % on `data`."""
    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        correct = 0
        n = len(data)
        for lo in range(0, n, batch):
            rows = tuple(t[lo:lo + batch].to(device) for t in data.tensors)
            ids, mask, labels = _trim(rows)
            correct += int((model(ids, mask).argmax(1) == labels).sum())
        return {"accuracy": 100.0 * correct / n}
    return evaluate


@dataclass(frozen=True)
class SST2Data:
    train: TensorDataset
    test: TensorDataset
    name: str


def _encode(tok: Any, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = np.zeros((len(texts), MAX_LEN), dtype=np.int64)
    lengths = np.zeros(len(texts), dtype=np.int64)
    for i, enc in enumerate(tok.encode_batch(texts)):
        row = enc.ids[:MAX_LEN]
        ids[i, :len(row)] = row
        lengths[i] = len(row)
    return torch.from_numpy(ids), torch.from_numpy(lengths)


@cache
def load(quick: bool, validation: bool) -> SST2Data:
    """SST-2 tokenized (cached in-process). `validation`: train minus VALIDATION_SIZE held-out
    rows (a seeded draw), which become the scored split."""
    texts, _, labels = read_task("sst2", "train")
    dev_texts, _, dev_labels = read_task("sst2", "dev")
    held = VALIDATION_SIZE // 10 if quick else VALIDATION_SIZE
    if quick:  # 2,000 training rows (+ the held-out ones) and 200 dev rows
        texts, labels = texts[:2000 + held], labels[:2000 + held]
        dev_texts, dev_labels = dev_texts[:200], dev_labels[:200]
    order = np.random.default_rng(0).permutation(len(texts))
    train_rows = order[held:] if validation or quick else order
    if validation:
        dev_texts, dev_labels = [texts[i] for i in order[:held]], labels[order[:held]]
    train_texts = [texts[i] for i in train_rows]
    tok = cached_tokenizer(train_texts, CRAM, vocab_size=encoder_config(quick).vocab_size)
    x, lengths = _encode(tok, train_texts)
    dx, dlengths = _encode(tok, dev_texts)
    name = "sst2-small-val" if validation else "sst2-small"
    return SST2Data(TensorDataset(x, lengths, torch.as_tensor(labels[train_rows])),
                    TensorDataset(dx, dlengths, torch.as_tensor(dev_labels)), name)


def _task(validation: bool):
    def task(seed: int, quick: bool) -> Recipe:
        data = load(quick, validation)
        torch.manual_seed(seed)
        model = SentenceClassifier(encoder_config(quick))
        epochs = 1 if quick else 2
        cfg = TrainConfig(budget=f"{epochs * len(data.train)}ex", lr=1e-3, schedule="cosine",
                          schedule_params={"warmup": 0.06}, micro_batch=64, weight_decay=0.01,
                          betas=(0.9, 0.98), eps=1e-6, eval_every=0.04, clip=1.0)
        return Recipe(model=model, train_data=data.train, loss_fn=per_example_loss,
                      evaluate=accuracy_on(data.test), config=cfg, tokens_fn=count_tokens,
                      difficulty=data.train.tensors[1].numpy().astype(np.float64),
                      proxy_model=lambda: SentenceClassifier(encoder_config(quick, small=True)),
                      notes={"dataset": data.name, "model": "sst2-encoder", "quick": quick,
                             "val_task": "sst2-small-val",
                             "train_examples": len(data.train),
                             "test_examples": len(data.test), "epochs": epochs})
    task.__doc__ = ("SST-2, a 2-layer width-128 encoder from scratch, scored on "
                    + ("2,000 held-out training rows" if validation else "dev"))
    return task


register_task("sst2-small")(_task(False))
register_task("sst2-small-val")(_task(True))
