"""Competence-based curriculum sampling (Platanios et al., "Competence-based Curriculum
Learning for Neural Machine Translation", NAACL 2019).

Each example has a difficulty d (sentence length, rarity, a model's loss, any array). It is
mapped through the empirical CDF of the training set, d_bar in (0, 1], so any score is on
the same scale as the model's *competence*

    c(t) = min(1, (t (1 - c0^p) / T + c0^p) ^ (1/p))      p = 1: c_linear, p = 2: c_sqrt

At step t the sampler admits the examples with d_bar <= c(t) and draws each batch uniformly
from them; from t = T on it is plain uniform sampling. c0 = 0.01 is the paper's value in
every configuration (T = 3k steps for its En-Vi RNN, 20k for its Transformers).

`CompetenceSampler` implements the trainer's sampler protocol (`sample(n, progress)`,
`state_dict`, `load_state_dict`, see `hasten.core.sampling`), so

    train(model, data, loss_fn, config, sampler=CompetenceSampler(scores, p=2, T=2000))

needs no other change. It never uses epochs: every draw is an independent uniform sample
(without replacement within one global batch) from the current admitted pool, seeded by
(seed, draw number), so a resumed run continues with exactly the batches it would have drawn.

Departures from the paper, on purpose:
- the CDF is exact (ties share one value, see `cdf_ranks`) where the reference code bins it
  into <= 1000 histogram bins;
- the pool never holds fewer examples than one global batch (`min_pool`): with c0 = 0.01
  and a length score whose shortest class holds > 1% of the data the paper's pool would be
  empty, and a tiny pool over-repeats a few sentences (the survey's pitfall 3). The extra
  examples are the easiest ones outside the pool, ties broken by a seeded shuffle.

Token-budget batches (`lengths=..., max_tokens=...`): each draw returns as many admitted
examples as fit in the token budget (many short sentences early in the curriculum, few long
ones later), capped at `n`, the trainer's `micro_batch`. `train()` already accepts a batch of
any size (it checks the loss against the gathered batch, not `micro_batch`), with three
caveats: the trainer averages per-example losses, so use a loss that weighs tokens (e.g.
`translation_loss(weighting="token")`) for a per-token mean within a micro-batch, while
micro-batches (accumulation) and DDP ranks are still weighted equally rather than by tokens;
an "examples" budget projects a step's cost as micro_batch x accumulation x world size; and
FLOPs per example are measured once on the first `micro_batch` examples. Prefer a "tokens"
or wall-clock budget (with `tokens_fn`) for token-budget runs.

Outside hasten's trainer, `hasten.data.CompetenceBatchSampler` turns it into a
`torch.utils.data.DataLoader` batch sampler that reads a `Budget`'s progress each batch
(docs/your-loop.md).

Results: docs/benchmarks.md, "Curricula for translation: the saving shrinks as the baseline trains
longer".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hasten.core.checks import check_int, check_number, check_values
from hasten.core.distributed import rank_from_env, world_size_from_env
from hasten.core.errors import ConfigError, DataError
from hasten.core.target import time_to_target
from hasten.select.per_example import Scores


def competence(t: float, T: float, p: float = 2.0, c0: float = 0.01) -> float:
    """The p-th-root competence at step t of a curriculum of length T: c0 at t = 0, 1 from
    t = T on. p = 1 is the paper's c_linear, p = 2 its c_sqrt."""
    if T <= 0:
        raise ConfigError(f"curriculum length T must be positive, got {T}")
    if p <= 0:
        raise ConfigError(f"competence power p must be positive, got {p}")
    if not 0.0 < c0 <= 1.0:
        raise ConfigError(f"initial competence c0 must be in (0, 1], got {c0}")
    if t >= T:
        return 1.0  # exactly: the float formula can land a hair below 1 at t = T
    t = max(0.0, float(t))
    c0p = c0 ** p
    return min(1.0, (t * (1.0 - c0p) / T + c0p) ** (1.0 / p))


def curriculum_length_from_curve(curve: Sequence[tuple[float, float]],
                                 fraction: float = 0.9) -> float:
    """The paper's rule of thumb for T: where a baseline's validation curve first reaches
    `fraction` of its best value.

    curve   (x, metric) points of a run without a curriculum, higher metric is better; x is
            whatever T should be measured in: steps, seconds, or progress in [0, 1] (then
            the result is a `T_fraction`).
    Uses the best value rather than the last, so a noisy final evaluation does not move T.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    points = sorted((float(x), float(m)) for x, m in curve)
    if not points:
        raise ConfigError("the baseline curve is empty: run the baseline with evaluations first")
    best = max(m for _, m in points)
    if not best > 0.0:
        raise ConfigError(f"the baseline curve never rises above 0 (best {best}): "
                          "it gives no curriculum length")
    x = time_to_target([(x, {}, m) for x, m in points], fraction * best).seconds  # best reaches it
    if x <= 0.0:
        raise ConfigError("the baseline reached the fraction at x = 0: "
                          "it gives no curriculum length")
    return x


def cdf_ranks(difficulty: Scores | Sequence[float] | np.ndarray) -> np.ndarray:
    """The empirical CDF of each example's difficulty, F(d_i) = #{j : d_j <= d_i} / N.

    Values lie in (0, 1]; the hardest example(s) get exactly 1. Ties share the *highest*
    rank of their group (the right-continuous CDF), so tied examples are always admitted
    together and the order of the dataset never matters. A `Scores` is oriented by its
    `higher_is` first, so "easier" scores (e.g. mean log-likelihood) work as well.
    """
    d = _hardness(difficulty)
    sorted_d = np.sort(d, kind="stable")
    return np.searchsorted(sorted_d, d, side="right").astype(np.float64) / len(d)


def _hardness(difficulty: Scores | Sequence[float] | np.ndarray) -> np.ndarray:
    if isinstance(difficulty, Scores):
        d = difficulty.hardness()
    else:
        d = np.asarray(difficulty, dtype=np.float64).reshape(-1)
    if d.size == 0:
        raise DataError("difficulty has no values: the curriculum needs one per example")
    if not np.all(np.isfinite(d)):
        raise DataError(f"difficulty has {int((~np.isfinite(d)).sum())} non-finite values")
    return d


def _dist_place(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size

    r, w = rank_from_env(), world_size_from_env()
    return (r if rank is None else rank), (w if world_size is None else world_size)


class CompetenceSampler:
    """Batches drawn uniformly from the examples the current competence admits.

    difficulty   one value per example (higher = harder) or a `Scores` (any direction).
    p, c0        competence power (1 linear, 2 sqrt, any p > 0) and initial competence.
    T            curriculum length in draws (one draw = one `sample` call = one micro-batch,
                 i.e. one optimizer step without gradient accumulation), or
    T_fraction   the length as a fraction of the budget: t / T = progress / T_fraction, so
                 the curriculum scales with any budget (steps, tokens, seconds...).
    seed         draws are seeded by (seed, draw number): resumable and rank-independent.
    rank, world_size   default to the torch.distributed group or torchrun's env variables.
    min_pool     the fewest examples the pool holds; default one global batch.
    lengths, max_tokens   token-budget batches (see `sample`).

    DDP: every rank computes the same global draw and keeps its own slice, so ranks see
    disjoint examples of one shared pool at the same step (whenever the pool holds at least
    one global batch, which `min_pool` ensures by default). With `T_fraction` the ranks'
    progress values are all-reduced (max) at each draw, because a wall-clock budget's
    progress differs by microseconds between processes; the competence never decreases.
    """

    def __init__(self, difficulty: Scores | Sequence[float] | np.ndarray, p: float = 2.0,
                 c0: float = 0.01, T: float | None = None, T_fraction: float | None = None,
                 seed: int = 0, rank: int | None = None, world_size: int | None = None,
                 min_pool: int | None = None, lengths: Sequence[int] | np.ndarray | None = None,
                 max_tokens: int | None = None):
        where = "CompetenceSampler"
        if not isinstance(difficulty, Scores):
            check_values(where, "difficulty", difficulty, "one difficulty per example")
        check_number(where, "p", p, 0, low_open=True)
        check_number(where, "c0", c0, 0, 1, low_open=True)
        check_number(where, "T", T, 0, low_open=True, none=True)
        check_number(where, "T_fraction", T_fraction, 0, 1, low_open=True, none=True)
        check_int(where, "seed", seed)
        check_int(where, "rank", rank, low=0, none=True)
        check_int(where, "world_size", world_size, low=1, none=True)
        check_int(where, "min_pool", min_pool, low=0, none=True)
        check_int(where, "max_tokens", max_tokens, low=1, none=True)
        if lengths is not None:
            check_values(where, "lengths", lengths, "one token count per example",
                         integer=True)
        if (T is None) == (T_fraction is None):
            raise ConfigError("give the curriculum length as exactly one of T (draws) or "
                              "T_fraction (of the budget)")
        if T_fraction is not None and not 0.0 < T_fraction <= 1.0:
            raise ConfigError(f"T_fraction must be in (0, 1], got {T_fraction}")
        competence(0.0, T if T is not None else 1.0, p, c0)  # validates T, p, c0
        self.cdf = cdf_ranks(difficulty)
        self.size = len(self.cdf)
        self.p, self.c0, self.T, self.T_fraction = float(p), float(c0), T, T_fraction
        self.seed = seed
        self.rank, self.world_size = _dist_place(rank, world_size)
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank {self.rank} is outside world size {self.world_size}")
        self.min_pool = min_pool
        # easiest first; ties in a seeded random order (not dataset order)
        tiebreak = np.random.default_rng(seed).permutation(self.size)
        self.order = np.lexsort((tiebreak, self.cdf))
        self._sorted_cdf = self.cdf[self.order]
        self.lengths: np.ndarray | None = None
        self.max_tokens = max_tokens
        if max_tokens is not None:
            if lengths is None:
                raise ConfigError("max_tokens needs lengths (one token count per example)")
            if max_tokens < 1:
                raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
            self.lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
            if len(self.lengths) != self.size:
                raise ConfigError(f"CompetenceSampler: lengths has {len(self.lengths)} values "
                                  f"for {self.size} examples (difficulty has one per example)")
        self.draws = 0
        self.last_competence = 0.0  # the highest competence used so far (monotone)

    # -- the curriculum -----------------------------------------------------------------

    def competence_at(self, draws: int, progress: float = 0.0) -> float:
        """c(t) for draw number `draws` (T mode) or budget `progress` (T_fraction mode)."""
        if self.T is not None:
            return competence(draws, self.T, self.p, self.c0)
        return competence(progress, self.T_fraction, self.p, self.c0)

    def admitted(self, c: float) -> int:
        """How many examples the paper admits at competence c: #{i : d_bar_i <= c}."""
        return int(np.searchsorted(self._sorted_cdf, c + 1e-12, side="right"))

    def pool(self, c: float, global_batch: int = 1) -> np.ndarray:
        """The admitted example indices at competence c, easiest first, topped up to
        `min_pool` (default `global_batch`) with the next-easiest ones."""
        floor = self.min_pool if self.min_pool is not None else global_batch
        k = min(self.size, max(self.admitted(c), floor, 1))
        return self.order[:k]

    def _synced_progress(self, progress: float) -> float:
        if (self.T_fraction is not None and self.world_size > 1
                and torch.distributed.is_available() and torch.distributed.is_initialized()):
            t = torch.tensor([float(progress)], dtype=torch.float64)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            return float(t[0])
        return float(progress)

    # -- the sampler protocol -----------------------------------------------------------

    def sample(self, n: int, progress: float = 0.0) -> list[int]:
        """This rank's next batch.

        Fixed size: `n` indices, drawn with the other ranks' as one global batch of
        n * world_size distinct examples of the pool. Token budget (`max_tokens` set): as
        many examples as fit in `max_tokens`, counted as padded tokens (examples x longest
        `lengths` in the batch), at most `n` of them and at least one; the global draw is
        dealt out to rank 0's batch first, then rank 1's, ... so batches stay disjoint.
        """
        if n < 1:
            raise ValueError(f"batch size must be >= 1, got {n}")
        progress = self._synced_progress(progress)
        c = max(self.last_competence, self.competence_at(self.draws, progress))
        self.last_competence = c
        global_n = n * self.world_size
        pool = self.pool(c, global_n)
        g = np.random.default_rng([self.seed, self.draws])
        self.draws += 1
        picks = pool[_distinct(len(pool), global_n, g)]
        if self.max_tokens is None:
            return picks[self.rank * n:(self.rank + 1) * n].tolist()
        return self._token_batches(picks, n, pool, g)[self.rank]

    def _token_batches(self, picks: np.ndarray, n: int, pool: np.ndarray,
                       g: np.random.Generator) -> list[list[int]]:
        assert self.lengths is not None and self.max_tokens is not None
        batches: list[list[int]] = [[] for _ in range(self.world_size)]
        r, longest, stream, pos = 0, 0, picks, 0
        while r < self.world_size:
            if pos == len(stream):  # pool smaller than the draw needs: draw again
                stream, pos = pool[_distinct(len(pool), len(pool), g)], 0
            i = int(stream[pos])
            width = max(longest, int(self.lengths[i]))
            batch = batches[r]
            if batch and (len(batch) >= n or (len(batch) + 1) * width > self.max_tokens):
                r, longest = r + 1, 0  # this rank's batch is full: the example goes on
                continue
            batch.append(i)
            longest, pos = width, pos + 1
        return batches

    def state_dict(self) -> dict[str, Any]:
        return {"draws": self.draws, "seed": self.seed, "size": self.size,
                "last_competence": self.last_competence}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["size"]) != self.size:
            raise DataError(f"curriculum state is for {state['size']} examples, this sampler "
                            f"has {self.size}")
        if int(state["seed"]) != self.seed:
            raise ConfigError(f"curriculum state was saved with seed {state['seed']}, this "
                              f"sampler has seed {self.seed}")
        self.draws = int(state["draws"])
        self.last_competence = float(state["last_competence"])


def _distinct(k: int, m: int, g: np.random.Generator) -> np.ndarray:
    """m positions in [0, k), distinct while m <= k (then every position, reshuffled, as
    often as needed), uniformly at random in random order."""
    if m >= k:
        reps = math.ceil(m / k)
        return np.concatenate([g.permutation(k) for _ in range(reps)])[:m]
    if k <= 8 * m:
        return g.permutation(k)[:m]
    out = np.empty(0, dtype=np.int64)
    while len(out) < m:  # sparse case: rejection avoids a permutation of the whole pool
        cand = np.concatenate([out, g.integers(0, k, size=2 * m)])
        _, first = np.unique(cand, return_index=True)
        out = cand[np.sort(first)]
    return out[:m]
