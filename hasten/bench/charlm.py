"""Character-level language modelling on Tiny Shakespeare: a small causal decoder, bits per
character (lower is better).

Data: Karpathy's Tiny Shakespeare (1,115,394 characters, 65 distinct), split as one text:
the first 90% trains, the next 5% validates (`shakespeare-char-val` scores on it), the last 5%
tests (`shakespeare-char`). Training examples are the non-overlapping windows of 129
characters of the training text (a model sees 128 and predicts the next of each), so every
lever that draws examples by index works on it. Model: `hasten.models.decoder` (4 layers,
width 128, 4 heads), AdamW 1e-3 with a 5% warm-up and cosine decay, batch 32, for 6 epochs
(quick: 512 windows, 1 epoch, 64 test windows). The task declares a difficulty (each window's
mean unigram surprisal: rare characters are harder) and a proxy (1 layer, width 64) for the
levers that need them.

Where it is shown: docs/tune.md (the evaluation of `hasten tune`, one of its four tasks).
"""

from __future__ import annotations

import math
from functools import cache

import torch
from torch import nn
from torch.utils.data import TensorDataset

from hasten.bench.harness import Recipe, register_task
from hasten.core.errors import DataError
from hasten.core.train_config import TrainConfig
from hasten.data.vision import data_root
from hasten.models.decoder import Decoder, DecoderConfig, per_sequence_loss

BLOCK = 128


@cache
def _text() -> tuple[torch.Tensor, int]:
    """The corpus as character ids, and the vocabulary size."""
    path = data_root() / "tinyshakespeare" / "input.txt"
    if not path.is_file():
        raise DataError(f"Tiny Shakespeare is missing: {path} (set HASTEN_DATA to the folder "
                        "holding tinyshakespeare/input.txt)")
    text = path.read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    return torch.tensor([index[c] for c in text], dtype=torch.long), len(chars)


def windows(ids: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """Non-overlapping windows of block + 1 ids, [N, block + 1]."""
    n = (len(ids) - 1) // block
    return torch.stack([ids[i * block:i * block + block + 1] for i in range(n)])


def splits() -> dict[str, torch.Tensor]:
    ids, _ = _text()
    a, b = int(0.9 * len(ids)), int(0.95 * len(ids))
    return {"train": windows(ids[:a]), "val": windows(ids[a:b]), "test": windows(ids[b:])}


def surprisal(rows: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Each window's mean unigram surprisal (nats) under the training text's character counts."""
    log_p = torch.log(counts.double() / counts.sum())
    return -log_p[rows].mean(1)


def bits_per_character(test: torch.Tensor, batch: int = 64):
    @torch.no_grad()
    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        total = 0.0
        for i in range(0, len(test), batch):
            total += float(per_sequence_loss(model, (test[i:i + batch].to(device),)).sum())
        return {"bpc": total / len(test) / math.log(2)}
    return evaluate


def _task(split: str):
    def task(seed: int, quick: bool) -> Recipe:
        parts = splits()
        train, test = parts["train"], parts[split]
        if quick:
            train, test = train[:512], test[:64]
        _, vocab = _text()
        counts = torch.bincount(train.flatten(), minlength=vocab)
        torch.manual_seed(seed)
        model = Decoder(DecoderConfig(vocab_size=vocab))
        epochs = 1 if quick else 6
        cfg = TrainConfig(budget=f"{epochs * len(train)}ex", lr=1e-3, schedule="cosine",
                          schedule_params={"warmup": 0.05}, micro_batch=32, weight_decay=0.1,
                          clip=1.0, eval_every=0.05, metric="bpc", higher_is_better=False)
        return Recipe(model=model, train_data=TensorDataset(train), loss_fn=per_sequence_loss,
                      evaluate=bits_per_character(test), config=cfg,
                      difficulty=surprisal(train, counts).numpy(),
                      proxy_model=lambda: Decoder(DecoderConfig(vocab_size=vocab, layers=1,
                                                                width=64)),
                      notes={"dataset": "tinyshakespeare", "model": "decoder",
                             "train_examples": len(train), "test_examples": len(test),
                             "epochs": epochs, "quick": quick, "val_task": "shakespeare-char-val"})
    task.__doc__ = (f"Tiny Shakespeare, a 4-layer character decoder, bits per character on the "
                    f"{split} split")
    return task


register_task("shakespeare-char")(_task("test"))
register_task("shakespeare-char-val")(_task("val"))
