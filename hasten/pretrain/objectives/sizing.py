"""A model sized to its budget: shape, micro-batch and batch from what the budget buys.

The rule (`choose_size`), stated once and used by `hasten cram` (`size="auto"`) and by the
pretraining ladder (`hasten.bench.ladder`):

1. Candidate shapes are `MENU`: layers x hidden from 2 x 128 to Cramming's 16 x 768, heads
   of 64 dimensions, GLU input width 4 x hidden (Cramming's 768 -> 3072). The vocabulary is
   part of the shape: 8192 up to hidden 256, Cramming's 32768 above (with hidden 128 a
   32768-token table holds 13 times the layers' parameters and its update dominates a CPU
   step; this split is our choice).
2. Tokens the budget buys, D, for each shape: a token budget is D itself; a FLOP budget gives
   D = C / (3 x forward FLOPs per token); a wall-clock budget gives D = seconds x rows per
   second x seq_len, from a probe (`probe_step_seconds`: one warm-up and two timed
   micro-steps of 16 rows, forward, backward and AdamW under the run's precision). A step
   of m rows is taken to cost the probe's time up to 16 rows and to grow in proportion
   above (both err on the slow side).
3. The shape is the largest candidate with D >= 20 x N, N its non-embedding parameters: the
   compute-optimal ratio of Hoffmann et al. 2022 ("Training Compute-Optimal Large Language
   Models", about 20 tokens per parameter). A larger model is cut short before it pays off;
   Cramming's own finding at small budgets is the same: the loss is set by the tokens seen,
   so a model too large to see enough of them loses. When even the smallest fails the rule,
   the smallest is used. Probing stops at the first shape that fails.
4. Micro-batch: the recipe's, cut to what fits in memory (`memory_bytes` <= half of the free
   memory: weights, gradients and AdamW moments at 16 bytes per parameter, activations by
   Korthikanti et al. 2022's 34 x seq x hidden + 5 x heads x seq^2 bytes per sequence and
   layer in 16-bit, doubled in fp32).
5. Batch (sequences per optimizer step, the end of the ramp), at most Cramming's 8192:
   - wall clock: a step may take at most T = seconds / max(min_steps, 1 / step_fraction),
     so the run makes at least `min_steps` steps and no step takes more than 2% of the
     budget (a stop signal or the budget's end never waits long). The micro-batch is the
     most rows that fit in T, the batch as many micro-batches as fit in T. When the probe
     step alone exceeds T, one micro-batch of 16 rows is the step (fewer steps than asked);
   - tokens or FLOPs: the largest power of two with D / (batch x seq_len) >= `min_steps`.

Every choice can be overridden (`--set hidden=...`); `describe(size)` is the one line
`hasten cram` prints. A probe is measured once per shape and machine and then read back
(`cached_probe`, in `$HASTEN_CACHE/probes`): the same command on the same machine chooses the
same shape, micro-batch and batch, and the summary records the probe's seconds.
Results: docs/benchmarks.md ("Cramming at 60 seconds").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil
import torch

from hasten.core.atomic import atomic_write
from hasten.core.budget import parse_budget
from hasten.core.errors import ConfigError
from hasten.core.trainer import param_groups, precision_context
from hasten.models.encoder import CrammedEncoder, EncoderConfig
from hasten.pretrain.objectives.flops import flops_per_token, non_embedding_parameters
from hasten.pretrain.objectives.mlm import make_mlm_loss

TOKENS_PER_PARAMETER = 20.0  # Hoffmann et al. 2022
MAX_BATCH = 8192  # Cramming's final batch (sequences)


@dataclass(frozen=True)
class Shape:
    """An encoder shape and its vocabulary (heads of 64 and GLU width 4 x hidden unless
    given)."""

    layers: int
    hidden: int
    vocab_size: int
    n_heads: int = 0
    glu_width: int = 0

    @property
    def heads(self) -> int:
        return self.n_heads or max(1, self.hidden // 64)

    @property
    def intermediate(self) -> int:
        return self.glu_width or 4 * self.hidden

    def config(self, seq_len: int = 128) -> EncoderConfig:
        return EncoderConfig(vocab_size=self.vocab_size, hidden=self.hidden, layers=self.layers,
                             heads=self.heads, intermediate=self.intermediate,
                             max_len=max(512, seq_len))

    def as_recipe(self) -> dict[str, int]:
        return {"layers": self.layers, "hidden": self.hidden, "heads": self.heads,
                "intermediate": self.intermediate, "vocab_size": self.vocab_size}


MENU = (Shape(2, 128, 8192), Shape(4, 256, 8192), Shape(6, 384, 32768),
        Shape(8, 512, 32768), Shape(12, 768, 32768), Shape(16, 768, 32768))


@dataclass(frozen=True)
class Size:
    """What `choose_size` picked, and the numbers behind it."""

    shape: Shape
    micro_batch: int
    batch: int
    tokens: float  # D, the tokens the budget buys at this shape
    steps: int  # expected optimizer steps at the full batch
    parameters: int  # non-embedding N
    probe_seconds: float | None  # a probe micro-step's seconds (wall-clock budgets)
    reason: str


def tokens_bought(shape: Shape, unit: str, amount: float, seq_len: int,
                  row_seconds: float | None = None, predicted_fraction: float = 0.25) -> float:
    """D: tokens a budget of `amount` `unit`s buys at `shape` (see the module docstring)."""
    if unit == "tokens":
        return amount
    if unit == "flops":
        return amount / (3 * flops_per_token(shape.config(seq_len), seq_len, predicted_fraction))
    if unit == "seconds":
        if row_seconds is None or row_seconds <= 0:
            raise ConfigError("a wall-clock budget needs a measured step time")
        return amount / row_seconds * seq_len
    raise ConfigError(f"a budget in {unit} cannot size a model; give the shape with --set "
                      "(layers, hidden, ...) or a budget in seconds, tokens or FLOPs")


def pick_batch(tokens: float, seq_len: int, min_steps: int) -> int:
    """The largest power of two <= tokens / (seq_len x min_steps), in [1, 8192]."""
    best = tokens / (seq_len * max(1, min_steps))
    if best < 1:
        return 1
    return int(min(MAX_BATCH, 2 ** math.floor(math.log2(best))))


def memory_bytes(shape: Shape, micro_batch: int, seq_len: int, precision: str) -> float:
    """Estimated training memory: 16 bytes per parameter plus activations (module
    docstring, rule 4) plus the head's fp32 logits on a quarter of the tokens."""
    params = non_embedding_parameters(shape.config(seq_len)) + shape.vocab_size * shape.hidden
    per_layer = micro_batch * seq_len * (34 * shape.hidden + 5 * shape.heads * seq_len)
    act = shape.layers * per_layer * (1 if precision == "bf16" else 2)
    logits = 0.25 * micro_batch * seq_len * shape.vocab_size * 4 * 2
    return 16.0 * params + act + logits


def free_memory(device: torch.device) -> float:
    """Free bytes on `device` (CUDA: the driver's count; CPU: available RAM)."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        return float(psutil.virtual_memory().available)
    except ImportError:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def fit_micro_batch(shape: Shape, wanted: int, seq_len: int, precision: str,
                    free: float) -> int:
    """The largest micro-batch <= `wanted` (halving) whose estimate fits half of `free`."""
    micro = max(1, wanted)
    while micro > 1 and memory_bytes(shape, micro, seq_len, precision) > 0.5 * free:
        micro //= 2
    return micro


PROBE_ROWS = 16  # rows of a timing probe: short for large shapes, past the fixed costs


def plan_wall_clock(seconds: float, probe_seconds: float, micro_cap: int, min_steps: int,
                    step_fraction: float, rows: int = PROBE_ROWS) -> tuple[int, int, float]:
    """(micro-batch, batch, tokens-per-second factor) for a wall-clock budget, from the
    seconds of one probe micro-step of `rows` rows. A micro-step of m rows is taken to cost
    probe_seconds x max(1, m / rows): the fixed part of a small step is not cheaper, the rest
    grows with the rows (both err on the slow side). A step may take at most
    T = seconds / max(min_steps, 1 / step_fraction); the micro-batch is the most rows that
    fit in T (at most `micro_cap`), the batch as many micro-batches as fit in T. When even the
    probe step exceeds T, one micro-batch of `rows` rows is a step (fewer steps than asked)."""
    per_row = probe_seconds / rows
    limit = seconds / max(min_steps, 1.0 / step_fraction)
    if probe_seconds >= limit:
        micro = min(micro_cap, rows)
        return micro, micro, 1.0 / max(per_row, probe_seconds / micro)
    micro = max(1, min(micro_cap, int(limit / per_row)))
    if micro >= 8:
        micro -= micro % 8
    step = probe_seconds * max(1.0, micro / rows)
    accum = max(1, min(int(limit / step), MAX_BATCH // micro))
    return micro, micro * accum, micro / step


def choose_size(budget: str | tuple[str, float], *, seq_len: int = 128, micro_batch: int = 128,
                min_steps: int = 200, step_fraction: float = 0.02, precision: str = "bf16",
                free_bytes: float | None = None, menu: tuple[Shape, ...] = MENU,
                step_seconds: Callable[[Shape, int], float] | None = None,
                predicted_fraction: float = 0.25) -> Size:
    """The shape, micro-batch and batch for `budget` (the module docstring's rule).

    `step_seconds(shape, rows)` measures the seconds of one micro-step of `rows` rows
    (wall-clock budgets only; `probe_step_seconds` is the real one, tests pass a
    deterministic one). `free_bytes` defaults to the CPU's available memory. `budget` is a
    budget string or one already parsed (`parse_budget`'s (unit, amount))."""
    unit, amount = parse_budget(budget) if isinstance(budget, str) else budget
    free = free_bytes if free_bytes is not None else free_memory(torch.device("cpu"))
    chosen: tuple[Shape, int, int, float, float | None] | None = None
    for shape in menu:
        micro = fit_micro_batch(shape, micro_batch, seq_len, precision, free)
        probe = None
        if unit == "seconds":
            if step_seconds is None:
                raise ConfigError("a wall-clock budget needs a measured step time")
            probe = step_seconds(shape, min(micro, PROBE_ROWS))
            micro, batch, rows_per_s = plan_wall_clock(amount, probe, micro, min_steps,
                                                       step_fraction, min(micro, PROBE_ROWS))
            d = amount * rows_per_s * seq_len
        else:
            d = tokens_bought(shape, unit, amount, seq_len, None, predicted_fraction)
            batch = pick_batch(d, seq_len, min_steps)
            micro = min(micro, batch)
            batch = max(micro, batch // micro * micro)
        fits = d >= TOKENS_PER_PARAMETER * non_embedding_parameters(shape.config(seq_len))
        if chosen is not None and not fits:
            break
        chosen = (shape, micro, batch, d, probe)
        if not fits:
            break
    assert chosen is not None
    shape, micro, batch, d, probe = chosen
    n = non_embedding_parameters(shape.config(seq_len))
    reason = (f"largest of {len(menu)} shapes with tokens >= {TOKENS_PER_PARAMETER:g} x "
              f"non-embedding parameters (Hoffmann et al. 2022)"
              + ("" if d >= TOKENS_PER_PARAMETER * n else "; none met it, so the smallest"))
    return Size(shape, micro, batch, d, int(d // (batch * seq_len)), n, probe, reason)


def describe(size: Size, budget: str) -> str:
    """The one line `hasten cram` prints about its choice."""
    s = size.shape
    return (f"size: {s.layers} x {s.hidden} ({s.heads} heads, vocabulary {s.vocab_size}), "
            f"{size.parameters / 1e6:.2f}M non-embedding parameters; micro-batch "
            f"{size.micro_batch}, batch {size.batch}; {budget} buys ~{size.tokens:.3g} tokens "
            f"= ~{size.steps} steps ({size.reason})")


def probe_step_seconds(shape: Shape, rows: int = PROBE_ROWS, *, seq_len: int = 128,
                       precision: str = "bf16", device: str | torch.device = "cpu",
                       steps: int = 2, seed: int = 0) -> float:
    """Seconds of one micro-step (forward, backward, AdamW) of the crammed encoder at `shape`
    on `rows` random rows: one warm-up step, then the best of `steps` timed ones."""
    dev = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    cfg = replace(shape.config(seq_len), attention="auto")
    model = CrammedEncoder(cfg).to(dev)
    opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4)
    loss_fn = make_mlm_loss([0, 1, 2, 3, 4], 4, shape.vocab_size, rate=0.25, seed=seed)
    ids = torch.randint(5, shape.vocab_size, (rows, seq_len), generator=g).to(dev)
    best = math.inf
    for i in range(steps + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        with precision_context(precision, dev):
            loss = loss_fn(model, (ids,)).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i:
            best = min(best, time.perf_counter() - t0)
    del model, opt
    return best


def shape_of(recipe: Any) -> Shape:
    """The `Shape` of a recipe (layers, hidden, vocab_size, heads, intermediate)."""
    return Shape(int(recipe.layers), int(recipe.hidden), int(recipe.vocab_size),
                 int(recipe.heads), int(recipe.intermediate))


def machine_key(device: torch.device) -> dict[str, Any]:
    """What a probe's seconds depend on besides the shape: the processor (or GPU), the
    cores and threads torch uses, torch's version."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
    return {"device": device.type, "name": name, "cores": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def cached_probe(shape: Shape, rows: int, *, seq_len: int, precision: str,
                 device: str | torch.device, seed: int, cache: str | Path
                 ) -> tuple[float, bool]:
    """(seconds, whether read from the cache) of `probe_step_seconds`, measured once per
    shape, setting and machine (`machine_key`) and kept in `cache` as JSON, so the same
    command on the same machine sizes its model, micro-batch and batch the same way every
    time (a fresh probe varies by tens of percent with the machine's load). Remove the
    folder to measure again."""
    dev = torch.device(device)
    body = {"shape": dataclasses.asdict(shape), "rows": rows, "seq_len": seq_len,
            "precision": precision, "seed": seed, "machine": machine_key(dev)}
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]
    path = Path(cache) / f"{key}.json"
    try:
        return float(json.loads(path.read_text())["seconds"]), True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    seconds = probe_step_seconds(shape, rows, seq_len=seq_len, precision=precision,
                                 device=dev, seed=seed)
    text = json.dumps({**body, "seconds": seconds}, indent=1)
    atomic_write(path, lambda fh: fh.write(text.encode()))
    return seconds, False


def cap_step(seconds: float, probe_seconds: float, micro_batch: int, batch: int,
             step_fraction: float = 0.02, rows: int = PROBE_ROWS) -> tuple[int, int]:
    """(micro-batch, batch) of a shape set by hand, cut so one optimizer step takes at most
    `step_fraction` of a wall-clock budget of `seconds` (rule 5, with the probe's cost
    model); the batch is never raised."""
    limit = step_fraction * seconds
    per_micro = probe_seconds * max(1.0, micro_batch / rows)
    if per_micro > limit:
        micro_batch = max(1, min(micro_batch, int(limit / probe_seconds * rows)))
        per_micro = probe_seconds * max(1.0, micro_batch / rows)
    accum = max(1, min(batch // max(1, micro_batch), int(limit / per_micro)))
    micro_batch = min(micro_batch, batch)
    return micro_batch, max(micro_batch, micro_batch * accum)
