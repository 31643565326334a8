"""The health of ELECTRA's replaced-token-detection game (Clark et al. 2020), and its
held-out evaluation.

`ElectraMonitor` tracks the discriminator's AUC, precision and recall on replaced tokens, the
replaced fraction and the generator's accuracy, and warns when the generator gets too strong
or the discriminator collapses to "all original" (the paper's pitfalls: without care the
discriminator "would sometimes fail to learn at all beyond the majority class").
`make_electra_eval` gives a trainer `evaluate(model)` on held-out rows with fixed masks and
noise. Results: docs/benchmarks.md ("ELECTRA: no gain over MLM that GLUE-small can see").
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hasten.core.errors import ConfigError, DataError
from hasten.core.trainer import Hook, TrainState
from hasten.pretrain.objectives.electra import electra_masking, electra_step
from hasten.text.masking import IGNORE


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
                out = electra_step(model, x, y, sparse="variable", sample_generator=gen)
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
