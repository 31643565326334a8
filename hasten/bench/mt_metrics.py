"""Translation quality: corpus BLEU with sacrebleu on detokenised output.

BLEU is Papineni et al. 2002 as computed by sacrebleu (Post 2018, "A Call for Clarity in
Reporting BLEU Scores"): corpus-level, default 13a tokenizer, on plain detokenised text, so
scores compare with the numbers papers report through sacrebleu. (The Platanios et al. 2019
curriculum results use the same corpus BLEU.) `translate` decodes a whole dataset in
length-sorted batches and returns strings in the original order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from hasten.data.translation import BPETokenizer, TranslationData
from hasten.models.transformer import decode_batch


def bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> float:
    """Corpus BLEU (0..100) of `hypotheses` against one reference each."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)],
                                       tokenize=tokenize).score)


@torch.no_grad()
def translate(model: nn.Module, data: TranslationData, tokenizer: BPETokenizer, beam: int = 1,
              batch_size: int = 128, length_penalty_alpha: float = 0.6,
              limit: int | None = None) -> list[str]:
    """Detokenised translations of the first `limit` (default all) source sentences of
    `data`, in dataset order. Runs in eval mode; the caller picks the precision."""
    raw = getattr(model, "module", model)
    was_training = raw.training
    raw.eval()
    device = next(raw.parameters()).device
    src_all = data.tensors[0]
    n = len(data) if limit is None else min(limit, len(data))
    order = np.argsort(-data.src_lengths[:n], kind="stable")  # long first: fewer pad columns
    out: list[str] = [""] * n
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        src = src_all[torch.as_tensor(idx)].to(device)
        ids = decode_batch(raw, src, beam, length_penalty_alpha)
        for j, seq in zip(idx.tolist(), ids, strict=True):
            out[j] = tokenizer.decode(seq)
    raw.train(was_training)
    return out


def bleu_evaluator(data: TranslationData, references: Sequence[str], tokenizer: BPETokenizer,
                   beam: int = 1, batch_size: int = 128, limit: int | None = None
                   ) -> Callable[[nn.Module], dict[str, float]]:
    """An `evaluate(model)` for the trainer: {"bleu": corpus BLEU} on `data`."""
    refs = list(references)

    def evaluate(model: nn.Module) -> dict[str, float]:
        hyps = translate(model, data, tokenizer, beam, batch_size, limit=limit)
        return {"bleu": bleu(hyps, refs[: len(hyps)])}

    return evaluate
