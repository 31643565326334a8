"""The lean trainer: one loop, every schedule a function of the budget.

    result = train(model, train_data, per_example_loss, TrainConfig(budget="90s"),
                   evaluate=accuracy_on_test)

What it does, in order, each optimizer step (`hasten.core.train_loop`):
  1. ask the budget where the run will be when this step ends (projected progress p);
  2. set the LR to peak x schedule(p) and the batch to micro-batch x batch_multiple(p);
  3. per micro-batch: draw indices from the sampler, gather, let hooks change the batch,
     forward under autocast, backward (DDP syncs only on the last micro-batch); stop
     signals and a seconds budget are checked between micro-batches;
  4. check the loss and gradients for NaN/Inf (`on_nonfinite`), clip, step, count work
     (examples forwarded / backpropagated, tokens, FLOPs);
  5. evaluate each time progress crosses another `eval_every` (with a seconds budget, as
     many as fit in `eval_share` of it; `hasten.core.eval_plan`), checkpoint when due.

It stops within one optimizer step of the budget. Evaluation and checkpoint time are kept
off the training clock, and a seconds budget also bounds them, so the user's wait stays
close to the budget. SIGTERM and SIGINT stop at a step boundary with a checkpoint; a resume
continues from the newest checkpoint that verifies (`hasten.core.resume`). Hooks (see `Hook`)
let methods change batches and read state without subclassing anything; every method also
works in a plain loop without this trainer. docs/reliability.md says what is promised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from hasten.core import distributed
from hasten.core.budget import Budget
from hasten.core.checks import check_train_args
from hasten.core.errors import ConfigError, DataError
from hasten.core.eval_plan import (
    WRITE_RESERVE,
    EvalPlan,
    mark_run_end,
    shard_bounds,
    sharded_eval,
    wall_since,
)
from hasten.core.flops import flop_counter
from hasten.core.guards import (
    EXIT_CODES,
    StopSignals,
    check_memory,
    peak_memory,
)
from hasten.core.lock import folder_lock
from hasten.core.resume import open_run
from hasten.core.runlog import RunLog
from hasten.core.sampling import CollateFn, Sampler, ShuffledSampler, batch_size, gather, to_device
from hasten.core.schedules import make_schedule
from hasten.core.train_config import TrainConfig
from hasten.core.train_loop import Run, run_loop
from hasten.core.train_state import (
    STOP_REASONS,
    EvalFn,
    Hook,
    LossFn,
    RunResult,
    TrainState,
    autocast_for,
    precision_context,
)

__all__ = ["EXIT_CODES", "STOP_REASONS", "EvalFn", "Hook", "LossFn", "RunResult",
           "TrainConfig", "TrainState", "autocast_for", "make_optimizer", "measure_flops",
           "param_groups", "precision_context", "probe_batch", "shard_bounds",
           "sharded_eval", "train", "wall_limit"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices and kernels, none on norms and biases (1-d tensors)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps,
                             fused=config.fused, foreach=config.foreach)


def probe_batch(data: Dataset, size: int, device: torch.device,
                collate_fn: CollateFn | None = None) -> Any:
    """The first `size` examples of `data` as a batch on `device` (for FLOP counting)."""
    return to_device(gather(data, list(range(min(len(data), size))), collate_fn), device)


def measure_flops(model: nn.Module, loss_fn: LossFn, batch: Any, units: int = 0
                  ) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs of one example, or of one of `units` (e.g. the
    batch's tokens) when given, counted by torch's FlopCounterMode (with CPU attention,
    `hasten.core.flops`) on one real batch; the gradients are cleared afterwards."""
    counter = flop_counter()
    was_training = model.training
    model.eval()  # same FLOPs, but batch-norm running statistics stay untouched
    with counter:
        loss = loss_fn(model, batch).mean()
        forward = counter.get_total_flops()
        loss.backward()
        total = counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    n = units or max(1, batch_size(batch))
    return forward / n, total / n


def wall_limit(budget: Budget) -> float | None:
    """The most wall seconds a seconds-budgeted run should take, setup to result: 1.25 x
    the budget + 15 s (None for other budgets)."""
    return 1.25 * budget.amount + 15.0 if budget.is_wall_clock else None


def _deadline(budget: Budget, started: float) -> float | None:
    """When a seconds-budgeted run's final evaluation should end (`time.monotonic()`): its
    wall limit counted from `wall_since()` (else from `started`, a `perf_counter` time),
    less a reserve for writing results."""
    limit = wall_limit(budget)
    if limit is None:
        return None
    since = wall_since()
    if since is None:
        since = time.monotonic() - (time.perf_counter() - started)
    return since + limit - WRITE_RESERVE


def _check_countable(budget: Budget, tokens_fn: Callable[[Any], int] | None) -> None:
    if budget.unit == "tokens" and tokens_fn is None:
        raise ConfigError(f"budget {budget.spec} counts tokens, but this run has no tokens_fn "
                          "to count them; use a seconds, steps or examples budget")


def _setup(model: nn.Module, train_data: Dataset, loss_fn: LossFn, config: TrainConfig,
           d: distributed.Dist, budget: Budget, sampler: Sampler | None,
           tokens_fn: Callable[[Any], int] | None, collate_fn: CollateFn | None
           ) -> tuple[TrainState, Sampler]:
    torch.manual_seed(config.seed)
    model.to(d.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    raw = model
    optimizer = make_optimizer(raw, config)
    sampler = sampler or ShuffledSampler(len(train_data), config.seed, d.rank, d.world_size)
    if config.memory_check:
        check_memory(raw, loss_fn,
                     lambda k: probe_batch(train_data, k, d.device, collate_fn),
                     config.micro_batch, config.optimizer, d.device,
                     autocast_for(config, d.device))
    probe = probe_batch(train_data, config.micro_batch, d.device, collate_fn)
    # per token when the run counts tokens: batches of short sentences cost less
    probe_tokens = tokens_fn(probe) if tokens_fn else 0
    if budget.unit == "tokens" and probe_tokens <= 0:
        raise ConfigError(f"budget {budget.spec} counts tokens, but tokens_fn counts none in "
                          "the first batch")
    flops_unit = "token" if probe_tokens > 0 else "example"
    flops_forward, flops_train = measure_flops(raw, loss_fn, probe, probe_tokens)
    if budget.unit == "flops" and flops_train <= 0:
        raise ConfigError(f"budget {budget.spec} counts FLOPs, but none were measured for "
                          "this model (no matrix products or convolutions)")
    if d.enabled:
        ddp_kw = {"device_ids": [d.device.index]} if d.device.type == "cuda" else {}
        model = nn.parallel.DistributedDataParallel(raw, **ddp_kw)
    if config.compile:
        model = torch.compile(model)
    state = TrainState(model=model, raw_model=raw, optimizer=optimizer, budget=budget,
                       config=config, dist=d, loss_fn=loss_fn, train_data=train_data,
                       flops_forward=flops_forward, flops_train=flops_train,
                       flops_unit=flops_unit, collate_fn=collate_fn)
    return state, sampler


def train(
    model: nn.Module,
    train_data: Dataset,
    loss_fn: LossFn,
    config: TrainConfig,
    evaluate: EvalFn | None = None,
    hooks: Sequence[Hook] = (),
    sampler: Sampler | None = None,
    tokens_fn: Callable[[Any], int] | None = None,
    collate_fn: CollateFn | None = None,
) -> RunResult:
    """Train `model` on `train_data` until `config.budget` is spent.

    `loss_fn(model, batch)` returns one loss per example (shape [B]); the trainer averages
    it, so methods that weigh or select examples need nothing else. `evaluate(model)` returns
    metrics including `config.metric`; one that takes a `shard=(rank, world_size)` keyword
    (see `sharded_eval`) is split across DDP ranks. `tokens_fn(batch)` counts a batch's real
    tokens: the run then counts tokens, and its FLOPs per token (for variable-length data).
    `collate_fn(items)` turns a list of dataset items into a batch (e.g. padding tokenized
    rows of different lengths); batches are fetched with one indexing call where the dataset
    supports it (see `hasten.core.sampling.gather`). Run it under `torchrun` for DDP.
    With `out_dir` the folder is locked for this run (`hasten.core.lock`).
    """
    started = time.perf_counter()
    check_train_args(model, train_data, loss_fn, config, evaluate, hooks, sampler, tokens_fn,
                     collate_fn, TrainConfig)
    config.validate()
    budget = Budget(config.budget)
    _check_countable(budget, tokens_fn)
    if len(train_data) == 0:
        raise DataError("the training set is empty")
    out = Path(config.out_dir) if config.out_dir else None
    if config.resume and out is not None and not out.is_dir():
        raise ConfigError(f"cannot resume: {out} does not exist")
    d = distributed.init(config.device, config.collective_timeout)
    with folder_lock(out, enabled=d.is_main):
        return _train_locked(model, train_data, loss_fn, config, evaluate, hooks, sampler,
                             tokens_fn, collate_fn, d, budget, out, started)


def _train_locked(model: nn.Module, train_data: Dataset, loss_fn: LossFn, config: TrainConfig,
                  evaluate: EvalFn | None, hooks: Sequence[Hook], sampler: Sampler | None,
                  tokens_fn: Callable[[Any], int] | None, collate_fn: CollateFn | None,
                  d: distributed.Dist, budget: Budget, out: Path | None, started: float
                  ) -> RunResult:
    schedule = make_schedule(config.schedule, **config.schedule_params)
    allowance = config.eval_share * budget.amount if budget.is_wall_clock else None
    plan = EvalPlan(config.eval_every, allowance)
    log: RunLog | None = None
    # a stop signal during set-up is kept for the loop, which then stops at once (with a
    # checkpoint): the whole run, from here to its result, is one stop-aware stretch
    with StopSignals() as signals:
        try:
            with budget.ledger.phase("setup"):
                state, sampler = _setup(model, train_data, loss_fn, config, d, budget,
                                        sampler, tokens_fn, collate_fn)
                lines, change = (open_run(state, sampler, hooks, plan, out)
                                 if out is not None else ([], None))
                # files are created only once set-up (and any resume) succeeded
                log = RunLog(out if d.is_main else None, enabled=d.is_main,
                             quiet=config.quiet, tensorboard=config.tensorboard,
                             progress_every=config.progress_every)
            for line in lines:
                log.notice(line, step=state.step)
            if change is not None:
                log.log("budget_change", state.step, change)
            for h in hooks:
                h.on_start(state)
            run = Run(state=state, data=train_data, sampler=sampler, schedule=schedule,
                      evaluate=evaluate, hooks=hooks, tokens_fn=tokens_fn, log=log, out=out,
                      signals=signals, plan=plan, wall_started=started,
                      wall_deadline=_deadline(budget, started))
            stopped = _run_guarded(run)
            result = _result(state, stopped, plan, started)
            if out is not None and d.is_main:
                log.log("end", state.step, {"final": result.final, "stopped": stopped,
                                            "work": result.work, "ledger": result.ledger,
                                            "seconds": result.seconds})
            return result
        finally:
            mark_run_end()
            if log is not None:
                log.close()


def _run_guarded(run: Run) -> str:
    """The loop, with a collective failure inside DDP's own code (a gradient all-reduce
    when a peer died) turned into the same one-line error as everywhere else."""
    try:
        return run_loop(run)
    except RuntimeError as err:
        d = run.state.dist
        text = str(err)
        if d.enabled and any(k in text for k in ("gloo", "Connection", "NCCL", "imed out",
                                                  "peer")):
            raise distributed.lost_peer(d, err, "a step") from None
        raise


def _result(state: TrainState, stopped: str, plan: EvalPlan, started: float) -> RunResult:
    cfg, budget = state.config, state.budget
    ledger = budget.ledger.state_dict()
    here = time.perf_counter() - started
    seconds = {"budget": budget.amount if budget.is_wall_clock else None,
               "limit": wall_limit(budget), "eval_allowance": plan.allowance, **ledger,
               "wall": state.wall_before + here, "wall_this_process": here}
    return RunResult(
        metric=cfg.metric, final=state.metrics.get(cfg.metric),
        metrics=dict(state.metrics), curve=state.curve, work=budget.work.as_dict(),
        ledger=ledger, steps=state.step, stopped=stopped, config=asdict(cfg),
        skipped_steps=state.skipped_steps, rollbacks=state.rollbacks,
        resumed_from=state.resumed_from, seconds=seconds, evaluations=plan.summary(),
        peak_memory=peak_memory(state.dist.device))
