"""Masked-language-model corruption and the positions of sparse token prediction.

- `mask_tokens` picks positions to predict at `rate` (BERT, Devlin et al. 2019: 15%; Cramming,
  Geiping & Goldstein 2023: 25%) and corrupts them by the 80/10/10 rule: 80% become [MASK], 10%
  a random non-special token, 10% stay. Special tokens ([CLS], [SEP], [PAD], ...) are never
  picked (Cramming's collator does not exclude them; we do, as BERT does). `exact=True` picks
  exactly round(rate x eligible) positions per row, as Cramming's collator does, so every batch
  predicts the same number of tokens (static shapes); the default draws each position
  independently.
- `sparse_positions` lists the predicted positions of a batch, for a head that runs only on
  them (sparse token prediction, Izsak et al. 2021 and Cramming): variable length (boolean
  selection, as HF ModernBERT does) or a fixed count (Cramming's static top-k), where missing
  rows are filled with unpredicted positions whose target is -100 and extra rows are dropped.
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hasten.core.errors import ConfigError, DataError

IGNORE = -100


def mask_tokens(ids: torch.Tensor, rate: float, special_ids: Sequence[int], mask_id: int,
                vocab_size: int, rule: tuple[float, float, float] = (0.8, 0.1, 0.1),
                generator: torch.Generator | None = None, *, exact: bool = False,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt token ids [B, S] for MLM. Returns (inputs int64, labels int64 with -100 where
    nothing is predicted), on the device of `ids`. `rule` = (mask, random, keep) fractions of
    the picked positions; random replacements are drawn uniformly from non-special ids."""
    if ids.dim() != 2:
        raise DataError(f"ids must be [batch, seq_len], got shape {list(ids.shape)}")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"mask rate must be in [0, 1], got {rate}")
    if len(rule) != 3 or min(rule) < 0 or abs(sum(rule) - 1.0) > 1e-6:
        raise ConfigError(f"rule must be three fractions (mask, random, keep) summing to 1, "
                          f"got {rule}")
    specials = torch.tensor(sorted(set(int(s) for s in special_ids) | {int(mask_id)}),
                            dtype=torch.long)
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    allowed[specials[specials < vocab_size]] = False
    replacement = torch.nonzero(allowed).flatten()
    if rule[1] > 0 and len(replacement) == 0:
        raise ConfigError("no non-special token to use as a random replacement")
    device = ids.device  # masking runs on the CPU (generator), results go back to `device`
    ids = ids.to("cpu", torch.long)
    eligible = ~torch.isin(ids, specials)
    u = torch.rand(ids.shape, generator=generator)
    if exact:
        k = torch.round(rate * eligible.sum(dim=1).double()).long()  # per row
        score = torch.where(eligible, u, torch.full_like(u, 2.0))
        rank = score.argsort(dim=1).argsort(dim=1)
        picked = (rank < k[:, None]) & eligible
    else:
        picked = (u < rate) & eligible
    labels = torch.where(picked, ids, torch.full_like(ids, IGNORE))
    v = torch.rand(ids.shape, generator=generator)
    to_mask = picked & (v < rule[0])
    to_random = picked & (v >= rule[0]) & (v < rule[0] + rule[1])
    inputs = ids.clone()
    inputs[to_mask] = mask_id
    n_rand = int(to_random.sum())
    if n_rand:
        pick = torch.randint(len(replacement), (n_rand,), generator=generator)
        inputs[to_random] = replacement[pick]
    return inputs.to(device), labels.to(device)


def sparse_positions(labels: torch.Tensor, static_count: int | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat positions (into labels.view(-1)) of the predicted tokens and their targets.

    `static_count=None`: every predicted position, in order (variable length). An int: exactly
    that many rows, predicted positions first in order; missing rows are unpredicted positions
    with target -100 (ignored by the loss), extra predicted positions are dropped.
    """
    flat = labels.reshape(-1)
    hit = flat != IGNORE
    if static_count is None:
        pos = torch.nonzero(hit).flatten()
    else:
        if static_count < 1 or static_count > flat.numel():
            raise ConfigError(f"static_count must be in [1, {flat.numel()}], got {static_count}")
        # a stable sort of "not predicted" puts predicted positions first, in order
        pos = torch.argsort((~hit).to(torch.uint8), stable=True)[:static_count]
    return pos, flat[pos]
