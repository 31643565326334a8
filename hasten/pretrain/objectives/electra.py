"""ELECTRA's replaced-token detection (Clark, Luong, Le & Manning 2020, "ELECTRA: Pre-training
Text Encoders as Discriminators Rather Than Generators", ICLR): corruption, losses, and the
`hasten cram --objective electra` plug-in. The networks are in `hasten.models.electra`.

The objective, as the paper and its code define it:
- `electra_masking`: pick 15% of the non-special positions (exactly round(rate x eligible) per
  row, as the official `max_predictions` count does; `exact=False` draws each independently);
  85% of them become [MASK], 15% stay unchanged, none becomes a random token.
- the generator is trained by MLM on the masked positions; one replacement per masked
  position is sampled from it without gradient (`hasten.models.electra.gumbel_sample`);
- a position is "replaced" only if it was masked *and* the sample differs from the original;
  tokens the generator gets right are labelled original;
- the discriminator predicts "replaced" per token: sigmoid cross-entropy over every
  non-padding token;
- loss = MLM + 50 x discriminator loss (`electra_step`, `electra_loss`, `make_electra_loss`).

`hasten.pretrain.objectives.electra_monitor` watches the game's health; the FLOPs of a step
(generator included) are `hasten.pretrain.objectives.flops.electra_flops_per_token`, and the
trainer's own `measure_flops` counts both networks too, since the loss runs both. Departure: the
generator and discriminator are the crammed encoder (pre-norm, GLU, rotary), not BERT's layers.
Results: docs/benchmarks.md ("ELECTRA: no gain over MLM that GLUE-small can see").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hasten.core.errors import ConfigError, DataError
from hasten.models.electra import Sparse
from hasten.text.masking import IGNORE

LossFn = Callable[[nn.Module, Any], torch.Tensor]


def electra_masking(ids: torch.Tensor, special_ids: Sequence[int], mask_id: int,
                    rate: float = 0.15, keep_unchanged: float = 0.15,
                    generator: torch.Generator | None = None, *, exact: bool = True,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """ELECTRA's corruption of token ids [B, S]: (inputs, labels), int64 on `ids`' device.

    Picks `rate` of the non-special positions (exactly round(rate x eligible) per row when
    `exact`, else each with probability `rate`); of those, a `keep_unchanged` fraction stays
    as is and the rest become `mask_id`; no random tokens. `labels` holds the original id at
    picked positions and -100 elsewhere. Draws from `generator` (CPU) when given."""
    if ids.dim() != 2:
        raise DataError(f"ids must be [batch, seq_len], got shape {list(ids.shape)}")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"mask rate must be in [0, 1], got {rate}")
    if not 0.0 <= keep_unchanged <= 1.0:
        raise ConfigError(f"keep_unchanged must be in [0, 1], got {keep_unchanged}")
    device = ids.device
    ids = ids.to("cpu", torch.long)
    specials = torch.tensor(sorted({int(s) for s in special_ids} | {int(mask_id)}))
    eligible = ~torch.isin(ids, specials)
    u = torch.rand(ids.shape, generator=generator)
    if exact:
        k = torch.round(rate * eligible.sum(dim=1).double()).long()
        score = torch.where(eligible, u, torch.full_like(u, 2.0))
        rank = score.argsort(dim=1).argsort(dim=1)
        picked = (rank < k[:, None]) & eligible
    else:
        picked = (u < rate) & eligible
    keep = torch.rand(ids.shape, generator=generator) < keep_unchanged
    inputs = torch.where(picked & ~keep, torch.full_like(ids, int(mask_id)), ids)
    labels = torch.where(picked, ids, torch.full_like(ids, IGNORE))
    return inputs.to(device), labels.to(device)


def electra_step(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor,
                 attention_mask: torch.Tensor | None = None, *, sparse: Sparse = "static",
                 static_count: int | None = None, bucket: int = 128,
                 sample_generator: torch.Generator | None = None,
                 temperature: float = 1.0) -> dict[str, torch.Tensor]:
    """One ELECTRA step on masked `input_ids` [B, S] and `labels` (original ids where masked,
    -100 elsewhere), through `model` (an `ElectraModel` or a DDP / compiled wrapper of one).
    Returns per-example `mlm` and `disc` [B] (each example's token-loss sum x B / the batch's
    token count, so their means are the batch's token means), and, detached: `disc_logits`
    (fp32), `replaced`, `masked`, `weights` (non-padding), `disc_input` (originals with the
    samples written in), `original`, `gen_correct` and `gen_count` (argmax accuracy on
    masked positions)."""
    out = model(input_ids, labels, attention_mask, sparse=sparse, static_count=static_count,
                bucket=bucket, sample_generator=sample_generator, temperature=temperature)
    b, s = labels.shape
    gen_logits, targets, pos = out["gen_logits"], out["targets"], out["pos"]
    valid = targets != IGNORE
    token_mlm = F.cross_entropy(gen_logits, targets, ignore_index=IGNORE, reduction="none")
    weights, logits = out["weights"], out["disc_logits"]
    token_disc = F.binary_cross_entropy_with_logits(
        logits, out["replaced"].float(), reduction="none") * weights
    mlm = torch.zeros(b, dtype=token_mlm.dtype, device=token_mlm.device)
    mlm.index_add_(0, torch.div(pos, s, rounding_mode="floor"), token_mlm)
    mlm = mlm * (b / valid.sum().clamp(min=1))
    disc = token_disc.sum(dim=1) * (b / weights.sum().clamp(min=1))
    with torch.no_grad():
        correct = ((gen_logits.argmax(dim=-1) == targets) & valid).sum()
    return {"mlm": mlm, "disc": disc, "disc_logits": logits.detach(),
            "replaced": out["replaced"], "masked": out["masked"], "weights": weights,
            "disc_input": out["disc_input"], "original": out["original"],
            "gen_correct": correct, "gen_count": valid.sum()}


def electra_loss(model: nn.Module, batch: Mapping[str, torch.Tensor],
                 disc_weight: float = 50.0, sparse: Sparse = "static",
                 monitor: Any = None,
                 sample_generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-example ELECTRA loss [B] = MLM + `disc_weight` x discriminator, scaled so the
    trainer's mean is mean MLM over masked tokens + 50 x mean BCE over non-padding tokens.
    `batch` holds masked `input_ids`, `labels` and optionally `attention_mask`. `monitor`
    gets the step's outputs; the Gumbel noise comes from `sample_generator` (the global RNG
    when None)."""
    out = electra_step(model, batch["input_ids"], batch["labels"], batch.get("attention_mask"),
                       sparse=sparse, sample_generator=sample_generator)
    if monitor is not None:
        monitor.update(out)
    return out["mlm"] + disc_weight * out["disc"]


def _rows(batch: Any) -> torch.Tensor:
    if isinstance(batch, Mapping):
        return batch["input_ids"]
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def make_electra_loss(special_ids: Sequence[int], mask_id: int, rate: float = 0.15,
                      keep_unchanged: float = 0.15, disc_weight: float = 50.0,
                      exact: bool = True, sparse: Sparse = "static", seed: int = 0,
                      monitor: Any = None, global_rng: bool = False,
                      ) -> Callable[[nn.Module, Any], torch.Tensor]:
    """A trainer `loss_fn(model, batch) -> [B]` over raw packed rows (a tensor, a (rows,)
    tuple, or a dict with `input_ids` and optionally `attention_mask`): masks them with
    `electra_masking` (CPU generator seeded by `seed`) and returns `electra_loss`. The Gumbel
    noise comes from a generator on the rows' device seeded by `seed + 1`, so a loss made
    with a fixed seed (a held-out evaluation) draws the same masks and noise every time and
    leaves the global RNG alone; `global_rng=True` draws it from torch's global RNG instead
    (which the trainer seeds and checkpoints; the masking generator is not checkpointed,
    as in `make_mlm_loss`)."""
    gen = torch.Generator().manual_seed(seed)
    noise: dict[torch.device, torch.Generator] = {}

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        rows = _rows(batch)
        inputs, labels = electra_masking(rows, special_ids, mask_id, rate,
                                         keep_unchanged, gen, exact=exact)
        masked = {"input_ids": inputs, "labels": labels}
        if isinstance(batch, Mapping) and batch.get("attention_mask") is not None:
            masked["attention_mask"] = batch["attention_mask"]
        sample_gen = None
        if not global_rng:
            if rows.device not in noise:
                noise[rows.device] = torch.Generator(rows.device).manual_seed(seed + 1)
            sample_gen = noise[rows.device]
        return electra_loss(model, masked, disc_weight, sparse, monitor, sample_gen)

    loss_fn.generator = gen  # type: ignore[attr-defined]
    return loss_fn
