"""What the pretraining ladder costs: each row's training FLOPs per CPU-second, measured on
one thread (`measure_rates`), and the core-hours of a ladder plan from them (`estimate`).

The rows are FLOP budgets (`hasten.bench.ladder`), so their results do not depend on the
machine's speed; their wall time does, and a plan states it before it runs. FLOPs come from
torch's counter, time from the main thread's CPU clock (with one thread the compute runs
there, so other jobs on the machine do not enter). Results: docs/pretraining.md (the ladder's
cost) and benchmarks/plans/pretrain-verdicts.md (the plan's core-hours).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from hasten.bench.ladder import (
    ROWS,
    LadderOptions,
    plan,
    precision_of,
    row_recipe,
    rung_size,
    task_name,
)
from hasten.core.flops import flop_counter
from hasten.core.trainer import param_groups, precision_context
from hasten.pretrain.objectives import Vocab, get_objective


def measure_rates(options: LadderOptions, rows: tuple[str, ...] = (
        "crammed", "original-setup", "original-arch", "minimal-arch", "electra"),
                  steps: int = 3, threads: int = 1) -> dict[str, dict[str, float]]:
    """Training FLOPs per CPU-second of each row's model at each rung's shape, on `threads`
    threads: `steps` timed micro-steps after one warm-up, FLOPs by torch's counter, time by
    the main thread's CPU clock (with one thread the compute runs there; other jobs on the
    machine do not enter). For `estimate`."""
    torch.set_num_threads(threads)
    vocab = Vocab(size=options.vocab_size, pad=0, unk=1, cls=2, sep=3, mask=4)
    out: dict[str, dict[str, float]] = {}
    for rung in sorted(set(options.rungs)):
        size = rung_size(rung, options)
        key = f"{size.shape.layers}x{size.shape.hidden}"
        if key in out:
            continue
        out[key] = {}
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(5, options.vocab_size, (size.micro_batch, options.seq_len),
                            generator=g)
        for name in rows:
            r, _ = row_recipe(ROWS[name], rung, options)
            obj = get_objective(ROWS[name].objective)
            model = obj.build_model(r, vocab).train()
            loss_fn = obj.make_loss(r, vocab, 0)
            opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4)
            counter = flop_counter()
            cpu = 0.0
            for i in range(steps + 2):
                c0 = time.thread_time()
                with counter if i == 0 else _nothing():
                    with precision_context(precision_of(options), torch.device("cpu")):
                        loss = loss_fn(model, (ids,)).mean()
                    loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                if i >= 2:
                    cpu += time.thread_time() - c0
            out[key][name] = counter.get_total_flops() * steps / cpu
    return out


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def estimate(options: LadderOptions, rates: dict[str, dict[str, float]],
             eval_seconds: float = 0.0) -> dict[str, Any]:
    """Core-hours of the ladder: each row's FLOPs over the FLOP/s of its model at its rung's
    shape (`measure_rates`' output: `rates["2x128"]["crammed"]`; a row without its own rate
    takes the one of the row it is a variant of, else crammed's), plus `eval_seconds` per
    row run."""
    like = {"original-data": "crammed", "minimal-train": "original-setup",
            "electra@0.5": "electra", "electra@0.25": "electra"}
    per_rung: dict[str, float] = {}
    for rung, row, _ in plan(options):
        s = rung_size(rung, options).shape
        shape_rates = rates[f"{s.layers}x{s.hidden}"]
        rate = shape_rates.get(row.name) or shape_rates.get(like.get(row.name, "crammed")) \
            or shape_rates["crammed"]
        seconds = (rung * row.fraction / rate if row.trains else 0.0) + eval_seconds
        per_rung[task_name(rung)] = per_rung.get(task_name(rung), 0.0) + seconds
    return {"core_hours_per_rung": {k: v / 3600 for k, v in per_rung.items()},
            "core_hours": sum(per_rung.values()) / 3600}


