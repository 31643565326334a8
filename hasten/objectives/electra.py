"""ELECTRA's replaced-token detection (Clark, Luong, Le & Manning 2020, "ELECTRA: Pre-training
Text Encoders as Discriminators Rather Than Generators", ICLR) on the crammed encoder.

The objective, as the paper and its code define it:
- `electra_masking`: pick 15% of the non-special positions (exactly round(rate x eligible) per
  row, as the official `max_predictions` count does; `exact=False` draws each independently);
  85% of them become [MASK], 15% stay unchanged, none becomes a random token.
- a generator of the discriminator's depth and 1/4 (paper; Base 1/3) of its width, trained by
  MLM on the masked positions;
- `gumbel_sample`: one replacement per masked position by the Gumbel-max trick on the fp32
  logits at temperature 1, without gradient (the discrete sample stops it anyway);
- a position is "replaced" only if it was masked *and* the sample differs from the original;
  tokens the generator gets right are labelled original;
- the discriminator (a standard `CrammedEncoder`) reads the originals with the samples written
  in and predicts "replaced" per token: sigmoid cross-entropy over every non-padding token;
- loss = MLM + 50 x discriminator loss (`electra_loss`, `make_electra_loss`).

Embedding sharing. The paper shares token, position and type embeddings and lets the
generator's softmax reuse the token table. Our encoder has rotary positions (no position
table) and no token types, so what is shared is the discriminator's whole `Embeddings` module:
the token table [V, H_d] and the bias-free embedding LayerNorm (electra_pytorch found tying
the norm matters). The generator holds that very module (`ProjectedEmbeddings.shared`), so the
parameters are one tensor (`is`), updated by both losses. When the generator is narrower, a
bias-free linear `project` maps H_d to H_g after the norm (the paper's `embeddings_project`,
used when embedding size != hidden size), and the generator's MLM head maps back: dense
H_g -> H_d, GELU, LayerNorm(H_d), then the tied decoder [V, H_d] (the official head also
projects to the embedding size before the tied softmax). `EncoderConfig` thus needs no
separate `embedding_size`: the embedding size *is* the discriminator's width, and the exported
discriminator stays a plain ModernBERT (`export_discriminator` -> `export_hf`).

The discriminator's binary head is its own ModernBERT prediction head (`head`: dense, GELU,
LayerNorm) followed by `ElectraModel.disc_out` (Linear(H_d, 1) with bias, Xavier init as
electra_pytorch does). So the exported `head` is trained (HF's ModernBERT sequence classifier
reuses it); the exported MLM logits are meaningless (the decoder is the bare token table).

`ElectraMonitor` tracks the health of the game (discriminator AUC, precision/recall on
replaced tokens, replaced fraction, generator accuracy) and warns when the generator gets too
strong or the discriminator collapses to "all original" (the paper's pitfalls).
`electra_flops_per_token` counts both objectives; the trainer's own `measure_flops` also
counts both, since `loss_fn` runs the generator and the discriminator.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from hasten.distributed import unwrap_model
from hasten.errors import ConfigError, DataError
from hasten.models.encoder import (
    Backbone,
    CrammedEncoder,
    Embeddings,
    EncoderConfig,
    export_hf,
    flops_per_token,
)
from hasten.text.masking import IGNORE
from hasten.trainer import Hook, TrainState

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from hasten.objectives import Vocab

LossFn = Callable[[nn.Module, Any], torch.Tensor]

Sparse = Literal["static", "variable"] | None

# -----------------------------------------------------------------------------
# masking and sampling


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


@torch.no_grad()
def gumbel_sample(logits: torch.Tensor, generator: torch.Generator | None = None,
                  temperature: float = 1.0) -> torch.Tensor:
    """One id per row of `logits` [..., V] drawn from softmax(logits / temperature) by the
    Gumbel-max trick: argmax(logits / T - log(-log u)), in fp32 (electra_pytorch met an fp16
    bug in torch's `gumbel_softmax`) and without gradient. `generator` must live on the
    logits' device."""
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    x = logits.detach().float()
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    gumbel = -torch.log(-torch.log(u + 1e-9) + 1e-9)  # as the official sampler
    return torch.argmax(x / temperature + gumbel, dim=-1)


# -----------------------------------------------------------------------------
# the two models


class ProjectedEmbeddings(nn.Module):
    """The generator's embeddings: the discriminator's `Embeddings` module itself (token
    table and norm, shared) then a bias-free linear map to the generator's width (Identity
    when the widths agree)."""

    def __init__(self, shared: Embeddings, hidden: int) -> None:
        super().__init__()
        self.shared = shared
        width = shared.tok_embeddings.embedding_dim
        self.project: nn.Module = (nn.Identity() if width == hidden
                                   else nn.Linear(width, hidden, bias=False))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.project(self.shared(input_ids))


class GeneratorHead(nn.Module):
    """MLM head back to the embedding width: dense H_g -> H_d (no bias), GELU, LayerNorm."""

    def __init__(self, hidden: int, embedding_size: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, embedding_size, bias=False)
        self.norm = nn.LayerNorm(embedding_size, eps=eps, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.dense(x)))


class ElectraGenerator(nn.Module):
    """The small MLM generator: shared embeddings (+ projection), `cfg.layers` pre-norm layers
    of width `cfg.hidden`, final norm, `GeneratorHead`, decoder tied to the shared table."""

    def __init__(self, cfg: EncoderConfig, embeddings: Embeddings) -> None:
        super().__init__()
        if embeddings.tok_embeddings.num_embeddings != cfg.vocab_size:
            raise ConfigError(f"generator vocabulary {cfg.vocab_size} differs from the shared "
                              f"embedding's {embeddings.tok_embeddings.num_embeddings}")
        self.config = cfg
        width = embeddings.tok_embeddings.embedding_dim
        self.model = Backbone(cfg)
        self.model.embeddings = ProjectedEmbeddings(embeddings, cfg.hidden)  # drops its own
        self.head = GeneratorHead(cfg.hidden, width, cfg.norm_eps)
        self.decoder = nn.Linear(width, cfg.vocab_size, bias=False)
        self.decoder.weight = embeddings.tok_embeddings.weight
        shared = {id(p) for p in embeddings.parameters()}
        for name, p in self.named_parameters():  # Cramming's init, shared tensors untouched
            if id(p) in shared:
                continue
            if p.dim() >= 2:
                nn.init.normal_(p, std=cfg.init_std)
            else:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)

    @property
    def shared_embeddings(self) -> Embeddings:
        return self.model.embeddings.shared

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final-normed hidden states [B, S, H_g]."""
        return self.model(input_ids, attention_mask)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of hidden rows [..., H_g]."""
        return self.decoder(self.head(hidden))


def generator_config(disc_cfg: EncoderConfig, width_ratio: float = 0.25) -> EncoderConfig:
    """The generator's shape: the discriminator's depth, vocabulary, positions and specials;
    width `width_ratio` x hidden rounded to whole heads of the discriminator's head size
    (64 in Base, so heads = hidden / 64 as in the paper); the GLU width scaled alike."""
    if not 0 < width_ratio <= 1:
        raise ConfigError(f"gen_width_ratio must be in (0, 1], got {width_ratio}")
    head_dim = disc_cfg.hidden // disc_cfg.heads
    heads = max(1, round(disc_cfg.hidden * width_ratio / head_dim))
    hidden = heads * head_dim
    inter = max(2, 2 * round(disc_cfg.intermediate * hidden / disc_cfg.hidden / 2))
    return replace(disc_cfg, hidden=hidden, heads=heads, intermediate=inter)


class ElectraModel(nn.Module):
    """Generator and discriminator for replaced-token detection. `forward(input_ids, labels)`
    runs the whole step (MLM, sampling, labels, discriminator) and returns a dict of tensors,
    so DDP and `torch.compile` wrap this module as a whole."""

    def __init__(self, generator: ElectraGenerator, discriminator: CrammedEncoder) -> None:
        super().__init__()
        if generator.shared_embeddings is not discriminator.model.embeddings:
            raise ConfigError("the generator must hold the discriminator's Embeddings module "
                              "(build it with build_electra)")
        self.generator = generator
        self.discriminator = discriminator
        self.disc_out = nn.Linear(discriminator.config.hidden, 1)
        nn.init.xavier_uniform_(self.disc_out.weight)
        nn.init.zeros_(self.disc_out.bias)

    @property
    def config(self) -> EncoderConfig:
        """The discriminator's config (what is exported)."""
        return self.discriminator.config

    def disc_logits(self, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Replaced-token logits [B, S] (positive: replaced)."""
        hidden = self.discriminator(input_ids, attention_mask)
        return self.disc_out(self.discriminator.head(hidden)).squeeze(-1)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor,
                attention_mask: torch.Tensor | None = None, *, sparse: Sparse = "static",
                static_count: int | None = None, bucket: int = 128,
                sample_generator: torch.Generator | None = None,
                temperature: float = 1.0) -> dict[str, torch.Tensor]:
        """One ELECTRA step on masked `input_ids` [B, S] and `labels` (original ids where
        masked, -100 elsewhere). Returns per-example `mlm` and `disc` [B] (each example's
        token-loss sum x B / the batch's token count, so their means are the batch's token
        means), and, detached: `disc_logits` (fp32), `replaced`, `masked`, `weights`
        (non-padding), `disc_input` (originals with the samples written in), `original`,
        `gen_correct` and `gen_count` (argmax accuracy on masked positions)."""
        if labels.shape != input_ids.shape or labels.dim() != 2:
            raise DataError(f"input_ids {list(input_ids.shape)} and labels "
                            f"{list(labels.shape)} must both be [batch, seq_len]")
        b, s = labels.shape
        masked = labels != IGNORE
        original = torch.where(masked, labels, input_ids)
        # generator: MLM on the masked positions only (sparse prediction)
        flat_h = self.generator(input_ids, attention_mask).reshape(b * s, -1)
        flat_labels = labels.reshape(-1)
        if sparse is None:
            pos = torch.arange(b * s, device=labels.device)
        elif sparse in ("static", "variable"):
            count = None
            if sparse == "static":
                n = int(masked.sum())
                count = static_count or max(1, min(b * s, -(-n // bucket) * bucket))
            hit = flat_labels != IGNORE
            pos = (torch.nonzero(hit).flatten() if count is None
                   else torch.argsort((~hit).to(torch.uint8), stable=True)[:count])
        else:
            raise ConfigError(f"sparse must be 'static', 'variable' or None, got {sparse!r}")
        targets = flat_labels.index_select(0, pos)
        valid = targets != IGNORE
        gen_logits = self.generator.logits(flat_h.index_select(0, pos)).float()
        token_mlm = F.cross_entropy(gen_logits, targets, ignore_index=IGNORE, reduction="none")
        # sampling under stop-gradient; a position is replaced iff the sample differs
        sampled = gumbel_sample(gen_logits, sample_generator, temperature)
        flat_orig = original.reshape(-1)
        written = torch.where(valid, sampled, flat_orig.index_select(0, pos))
        disc_input = flat_orig.scatter(0, pos, written).view(b, s)
        replaced = disc_input != original
        weights = original != self.discriminator.config.pad_id
        if attention_mask is not None:
            weights = weights & attention_mask.bool()
        # discriminator: per-token sigmoid cross-entropy over non-padding tokens
        logits = self.disc_logits(disc_input, attention_mask).float()
        token_disc = F.binary_cross_entropy_with_logits(
            logits, replaced.float(), reduction="none") * weights
        mlm = torch.zeros(b, dtype=token_mlm.dtype, device=token_mlm.device)
        mlm.index_add_(0, torch.div(pos, s, rounding_mode="floor"), token_mlm)
        mlm = mlm * (b / valid.sum().clamp(min=1))
        disc = token_disc.sum(dim=1) * (b / weights.sum().clamp(min=1))
        with torch.no_grad():
            correct = ((gen_logits.argmax(dim=-1) == targets) & valid).sum()
        return {"mlm": mlm, "disc": disc, "disc_logits": logits.detach(), "replaced": replaced,
                "masked": masked, "weights": weights, "disc_input": disc_input,
                "original": original, "gen_correct": correct, "gen_count": valid.sum()}


def build_electra(disc_cfg: EncoderConfig, gen_width_ratio: float = 0.25,
                  gen_cfg: EncoderConfig | None = None) -> ElectraModel:
    """A discriminator `CrammedEncoder(disc_cfg)` and a generator of the same depth and
    `gen_width_ratio` of its width (paper: 1/4, Base 1/3; `gen_cfg` overrides the shape),
    sharing the token embedding and embedding norm as one set of tensors."""
    gen_cfg = gen_cfg or generator_config(disc_cfg, gen_width_ratio)
    for name in ("vocab_size", "max_len", "pad_id", "mask_id"):
        if getattr(gen_cfg, name) != getattr(disc_cfg, name):
            raise ConfigError(f"generator and discriminator differ in {name}")
    disc = CrammedEncoder(disc_cfg)
    return ElectraModel(ElectraGenerator(gen_cfg, disc.model.embeddings), disc)


# -----------------------------------------------------------------------------
# the loss


def electra_loss(model: nn.Module, batch: Mapping[str, torch.Tensor],
                 disc_weight: float = 50.0, sparse: Sparse = "static",
                 monitor: ElectraMonitor | None = None,
                 sample_generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-example ELECTRA loss [B] = MLM + `disc_weight` x discriminator, scaled so the
    trainer's mean is mean MLM over masked tokens + 50 x mean BCE over non-padding tokens.
    `batch` holds masked `input_ids`, `labels` and optionally `attention_mask`; `model` is an
    `ElectraModel` (or a DDP / compiled wrapper of one). `monitor` gets the step's outputs;
    the Gumbel noise comes from `sample_generator` (the global RNG when None)."""
    out = model(batch["input_ids"], batch["labels"], batch.get("attention_mask"),
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
                      monitor: ElectraMonitor | None = None, global_rng: bool = False,
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

    return loss_fn


# -----------------------------------------------------------------------------
# monitoring


def binary_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Exact ROC AUC by the Mann-Whitney U statistic: P(score of a positive > score of a
    negative) + 0.5 P(tie), from average ranks (fp64). NaN without both classes."""
    s = scores.detach().reshape(-1).double().cpu()
    y = labels.detach().reshape(-1).bool().cpu()
    if s.numel() != y.numel():
        raise DataError(f"{s.numel()} scores but {y.numel()} labels")
    n_pos = int(y.sum())
    n_neg = y.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = torch.unique(s, sorted=True, return_inverse=True, return_counts=True)
    c = counts.double()
    avg_rank = c.cumsum(0) - (c - 1) / 2  # 1-based average rank of each tie group
    rank_sum = float(avg_rank[inverse][y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


class ElectraMonitor(Hook):
    """Accumulates the replaced-token-detection game's health and warns when it degenerates.

    `update(out)` takes an `ElectraModel.forward` output (or `add` raw scores); `compute()`
    returns `disc_auc` (exact, over the non-padding tokens kept), `disc_precision` and
    `disc_recall` on replaced tokens at probability 0.5, `disc_accuracy`,
    `disc_positive_rate`, `replaced_fraction` (of non-padding tokens; the paper's ~6% at
    15% masking), `replaced_of_masked` and `gen_accuracy` (argmax, on masked positions).

    As a trainer hook, `on_eval` checks the evaluation's metrics when they hold these keys
    (`make_electra_eval`), else what `update` gathered from training batches since the last
    evaluation, and warns (`warnings.warn`) once per streak when for `patience` evaluations
    in a row the replaced fraction is below `min_replaced` (generator too strong) or the
    recall on replaced tokens is below `min_recall` (the discriminator says "all original").
    `scores_per_update` caps the scores kept per update for the AUC (a random subset; counts
    stay exact)."""

    def __init__(self, min_replaced: float = 0.01, min_recall: float = 0.01,
                 patience: int = 3, scores_per_update: int | None = 4096,
                 seed: int = 0) -> None:
        if patience < 1:
            raise ConfigError(f"patience must be >= 1, got {patience}")
        self.min_replaced, self.min_recall, self.patience = min_replaced, min_recall, patience
        self.scores_per_update = scores_per_update
        self._gen = torch.Generator().manual_seed(seed)
        self.streaks = {"generator_too_strong": 0, "discriminator_collapsed": 0}
        self.warned: list[str] = []
        self.reset()

    def reset(self) -> None:
        self._scores: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        # tokens, true positives, predicted positives, replaced, correct, generator right,
        # generator predictions, masked positions
        self._counts = torch.zeros(8, dtype=torch.float64)

    def add(self, scores: torch.Tensor, labels: torch.Tensor,
            weights: torch.Tensor | None = None, masked: int = 0, gen_correct: int = 0,
            gen_count: int = 0) -> None:
        """Add per-token logits (or probabilities above/below 0.5: use logits) and labels."""
        s, y = scores.detach().float().reshape(-1).cpu(), labels.detach().reshape(-1).bool().cpu()
        if weights is not None:
            w = weights.detach().reshape(-1).bool().cpu()
            s, y = s[w], y[w]
        pred = s > 0
        tp, pp, pos = int((pred & y).sum()), int(pred.sum()), int(y.sum())
        right = int((pred == y).sum())
        self._counts += torch.tensor([s.numel(), tp, pp, pos, right, gen_correct, gen_count,
                                      masked], dtype=torch.float64)
        k = self.scores_per_update
        if k is not None and s.numel() > k:
            keep = torch.randperm(s.numel(), generator=self._gen)[:k]
            s, y = s[keep], y[keep]
        self._scores.append(s)
        self._labels.append(y)

    def update(self, out: Mapping[str, torch.Tensor]) -> None:
        """Add an `ElectraModel.forward` output."""
        self.add(out["disc_logits"], out["replaced"], out["weights"],
                 masked=int(out["masked"].sum()), gen_correct=int(out["gen_correct"]),
                 gen_count=int(out["gen_count"]))

    def compute(self) -> dict[str, float]:
        """The metrics of everything added since `reset`."""
        n, tp, pp, pos, right, g_ok, g_n, masked = self._counts.tolist()
        nan = float("nan")
        scores = torch.cat(self._scores) if self._scores else torch.zeros(0)
        labels = torch.cat(self._labels) if self._labels else torch.zeros(0, dtype=torch.bool)
        return {
            "disc_auc": binary_auc(scores, labels),
            "disc_precision": tp / pp if pp else 0.0,
            "disc_recall": tp / pos if pos else nan,
            "disc_accuracy": right / n if n else nan,
            "disc_positive_rate": pp / n if n else nan,
            "replaced_fraction": pos / n if n else nan,
            "replaced_of_masked": pos / masked if masked else nan,
            "gen_accuracy": g_ok / g_n if g_n else nan,
        }

    def check(self, metrics: Mapping[str, float]) -> list[str]:
        """Update the streaks with one evaluation's metrics; warn and return the messages of
        streaks that just reached `patience`."""
        replaced = metrics.get("replaced_fraction", float("nan"))
        recall = metrics.get("disc_recall", float("nan"))
        bad = {"generator_too_strong": math.isfinite(replaced) and replaced < self.min_replaced,
               "discriminator_collapsed": math.isfinite(recall) and recall < self.min_recall}
        messages = []
        for key, is_bad in bad.items():
            self.streaks[key] = self.streaks[key] + 1 if is_bad else 0
            if self.streaks[key] == self.patience:
                if key == "generator_too_strong":
                    msg = (f"ELECTRA: the generator is too strong: only {replaced:.2%} of tokens "
                           f"were replaced for {self.patience} evaluations (threshold "
                           f"{self.min_replaced:.2%}); use a smaller generator")
                else:
                    msg = (f"ELECTRA: the discriminator collapsed to 'all original': recall on "
                           f"replaced tokens {recall:.2%} for {self.patience} evaluations "
                           f"(AUC {metrics.get('disc_auc', float('nan')):.3f})")
                warnings.warn(msg, RuntimeWarning, stacklevel=2)
                self.warned.append(msg)
                messages.append(msg)
        return messages

    def on_eval(self, state: TrainState, metrics: dict[str, float]) -> None:
        if "disc_recall" in metrics and "replaced_fraction" in metrics:
            self.check(metrics)
        elif self._counts[0] > 0:
            self.check(self.compute())
        self.reset()

    def state_dict(self) -> dict[str, Any]:
        return {"streaks": dict(self.streaks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.streaks.update(state.get("streaks", {}))


def make_electra_eval(rows: torch.Tensor, special_ids: Sequence[int], mask_id: int,
                      rate: float = 0.15, keep_unchanged: float = 0.15,
                      disc_weight: float = 50.0, batch_size: int = 64, seed: int = 0,
                      ) -> Callable[[nn.Module], dict[str, float]]:
    """A trainer `evaluate(model)` on held-out packed `rows` [N, S]: the same masking and
    sampling every call (seeded; the global RNG is untouched) and the `ElectraMonitor`
    metrics plus `mlm_loss`, `disc_loss` and `electra_loss` (token means over all rows)."""
    if rows.dim() != 2 or len(rows) == 0:
        raise DataError(f"eval rows must be a non-empty [N, seq_len], got {list(rows.shape)}")
    inputs, labels = electra_masking(rows, special_ids, mask_id, rate, keep_unchanged,
                                     torch.Generator().manual_seed(seed))

    def evaluate(model: nn.Module) -> dict[str, float]:
        dev = next(model.parameters()).device
        gen = torch.Generator(device=dev).manual_seed(seed)
        mon = ElectraMonitor(scores_per_update=None)
        mlm_sum = disc_sum = 0.0
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                x, y = inputs[i:i + batch_size].to(dev), labels[i:i + batch_size].to(dev)
                out = model(x, y, sparse="variable", sample_generator=gen)
                mlm_sum += float(out["mlm"].sum()) / len(x) * int(out["gen_count"])
                disc_sum += float(out["disc"].sum()) / len(x) * int(out["weights"].sum())
                mon.update(out)
        m = mon.compute()
        n_mlm = max(1, int((labels != IGNORE).sum()))
        n_disc = max(1.0, mon._counts[0].item())
        m["mlm_loss"], m["disc_loss"] = mlm_sum / n_mlm, disc_sum / n_disc
        m["electra_loss"] = m["mlm_loss"] + disc_weight * m["disc_loss"]
        return m

    return evaluate


# -----------------------------------------------------------------------------
# FLOPs and export


def electra_flops_per_token(disc_cfg: EncoderConfig, gen_cfg: EncoderConfig, seq_len: int,
                            mask_rate: float = 0.15, forward_only: bool = False) -> float:
    """Matmul FLOPs per token of one ELECTRA training step (forward + backward = 3 x forward
    unless `forward_only`): the generator (projection in, its layers, head to the embedding
    width and tied decoder on the `mask_rate` fraction of tokens it predicts) plus the
    discriminator (its layers, head dense and binary output on every token). Sampling and
    norms are not matmuls and are not counted, as in `flops_per_token`."""
    e, v, g = disc_cfg.hidden, disc_cfg.vocab_size, gen_cfg.hidden
    gen = flops_per_token(gen_cfg, seq_len, 0.0) + (2 * e * g if g != e else 0)
    gen += 2 * (g * e + e * v) * mask_rate
    disc = flops_per_token(disc_cfg, seq_len, 0.0) + 2 * (e * e + e)
    return float(gen + disc) * (1 if forward_only else 3)


def export_discriminator(model: nn.Module, tokenizer: Tokenizer | None,
                         out_dir: str | Path) -> Path:
    """Export the discriminator alone with `export_hf` (a ModernBERT folder that
    `AutoModel` / `AutoModelForMaskedLM` load without remote code), plus
    `electra_head.safetensors` (the binary output layer) and `electra.json` (both configs).
    `model` is an `ElectraModel`, or a DDP / compiled wrapper of one."""
    from safetensors.torch import save_file

    raw = unwrap_model(model)
    if not isinstance(raw, ElectraModel):
        raise ConfigError(f"export_discriminator needs an ElectraModel, got {type(raw).__name__}")
    out = export_hf(raw.discriminator, tokenizer, out_dir)
    head = {k: v.detach().to("cpu", torch.float32).contiguous()
            for k, v in raw.disc_out.state_dict().items()}
    save_file(head, str(out / "electra_head.safetensors"), metadata={"format": "pt"})
    (out / "electra.json").write_text(json.dumps(
        {"discriminator": asdict(raw.discriminator.config),
         "generator": asdict(raw.generator.config)}, indent=1))
    return out


# -----------------------------------------------------------------------------
# the `hasten cram --objective electra` plug-in


class Electra:
    """The ELECTRA objective for `hasten cram` (`hasten.objectives.Objective`).

    Recipe keys read: the discriminator's shape (`hidden`, `layers`, `heads`, `intermediate`,
    `max_len`, `norm_eps`, `init_std`), `mask_rate` (set to the paper's 0.15 for Small and
    Base over the crammed recipe's 0.25; `--set mask_rate=0.25` is Large's), `exact_masking`,
    `sparse`, and the
    extra keys in `defaults`: `gen_width_ratio` (1/4), `disc_weight` (50), `keep_unchanged`
    (0.15). `arch` must be "crammed". The held-out loss cram reports is the ELECTRA loss
    (MLM + 50 x discriminator). Optional extras for cram: `make_eval` (the monitor's metrics
    on held-out rows) and `hooks` (an `ElectraMonitor` that warns on a degenerate game)."""

    name = "electra"
    defaults: dict[str, Any] = {"gen_width_ratio": 0.25, "disc_weight": 50.0,
                                "keep_unchanged": 0.15}
    recipe_values: dict[str, Any] = {"mask_rate": 0.15}

    def build_model(self, recipe: Mapping[str, Any], vocab: Vocab) -> nn.Module:
        if recipe.get("arch", "crammed") != "crammed":
            raise ConfigError(f"the electra objective needs arch 'crammed', got "
                              f"{recipe['arch']!r}")
        cfg = EncoderConfig(
            vocab_size=vocab.size, hidden=recipe["hidden"], layers=recipe["layers"],
            heads=recipe["heads"], intermediate=recipe["intermediate"],
            max_len=recipe["max_len"], norm_eps=recipe["norm_eps"],
            init_std=recipe["init_std"], pad_id=vocab.pad, cls_id=vocab.cls, sep_id=vocab.sep,
            mask_id=vocab.mask)
        return build_electra(cfg, recipe.get("gen_width_ratio", 0.25))

    def make_loss(self, recipe: Mapping[str, Any], vocab: Vocab, seed: int) -> LossFn:
        return make_electra_loss(
            vocab.specials, vocab.mask, rate=recipe["mask_rate"],
            keep_unchanged=recipe.get("keep_unchanged", 0.15),
            disc_weight=recipe.get("disc_weight", 50.0),
            exact=recipe.get("exact_masking", True), sparse=recipe.get("sparse", "static"),
            seed=seed)

    def export(self, model: nn.Module, tokenizer: Any, out_dir: str | Path,
               recipe: Mapping[str, Any]) -> Path:
        return export_discriminator(model, tokenizer, out_dir)

    def make_eval(self, recipe: Mapping[str, Any], vocab: Vocab, rows: torch.Tensor,
                  seed: int = 1234) -> Callable[[nn.Module], dict[str, float]]:
        return make_electra_eval(rows, vocab.specials, vocab.mask, rate=recipe["mask_rate"],
                                 keep_unchanged=recipe.get("keep_unchanged", 0.15),
                                 disc_weight=recipe.get("disc_weight", 50.0), seed=seed)

    def hooks(self, recipe: Mapping[str, Any]) -> list[Hook]:
        return [ElectraMonitor()]


OBJECTIVE = Electra()
