"""The training loop behind `hasten.core.trainer.train`: steps, evaluations, checkpoints, stops.

Each optimizer step: project where the budget will be when it ends, set the LR and the
number of micro-batches, run them (checking stop signals and a seconds budget between
micro-batches: a step cut short applies the gradient of the micro-batches it ran), check
the loss and gradients for NaN/Inf, step, count work. Between steps the ranks of a DDP
job agree on the clock, the last step's cost and any stop signal with one all-reduce, so
every decision after it (evaluate, checkpoint, stop) is the same on every rank.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from hasten.core import distributed
from hasten.core.errors import ConfigError
from hasten.core.eval_plan import EvalPlan, takes_deadline, takes_keyword, takes_shard
from hasten.core.guards import (
    SLOW_STEP_SHARE,
    Interrupted,
    StopSignals,
    TimedOut,
    clip_and_check,
    nonfinite_step,
    slow_step_line,
    time_limit,
)
from hasten.core.resume import rollback, save_run
from hasten.core.runlog import RunLog
from hasten.core.sampling import Sampler, batch_size, gather, to_device
from hasten.core.schedules import batch_multiple
from hasten.core.train_state import EvalFn, Hook, TrainState, autocast_for


@dataclass
class Run:
    """One process's view of a run in progress (what the loop's parts share)."""

    state: TrainState
    data: Dataset
    sampler: Sampler
    schedule: Callable[[float], float]
    evaluate: EvalFn | None
    hooks: Sequence[Hook]
    tokens_fn: Callable[[Any], int] | None
    log: RunLog
    out: Path | None
    signals: StopSignals
    plan: EvalPlan
    wall_started: float
    wall_deadline: float | None = None  # monotonic time the final evaluation ends by
    first_step: int = 0
    step_cost: float = 0.0  # the last step's cost in the budget's unit
    stop_code: int = 0  # stop signal agreed by every rank at the last sync
    next_eval: float = 0.0
    warned_slow: bool = False
    loss_sum: Any = 0.0  # finite step losses since the last train row (a tensor)
    loss_n: int = 0
    autocast: Any = field(default=None)

    @property
    def budget(self) -> Any:
        return self.state.budget


def run_loop(run: Run) -> str:
    """Train until the budget is spent or a stop comes; returns RunResult.stopped."""
    s, cfg, budget = run.state, run.state.config, run.state.budget
    run.autocast = autocast_for(cfg, s.dist.device)
    run.first_step = s.step
    run.next_eval = (math.floor(budget.progress() / cfg.eval_every + 1e-9) + 1) * cfg.eval_every
    s.model.train()
    _sync(run)
    while True:
        if run.stop_code:
            return _stop_for_signal(run)
        overrun = budget.exhausted() and budget.is_wall_clock and s.progress < 1.0
        if budget.exhausted() and not (overrun and s.step > run.first_step):
            break
        last_step, accum = _begin_step(run, overrun)
        loss, norm, bad = _train_step(run, accum)
        if bad and _nonfinite(run, loss, norm):
            return "nonfinite"
        if not bad:
            run.loss_sum, run.loss_n = run.loss_sum + loss, run.loss_n + 1
        for h in run.hooks:
            h.on_step_end(s)
        _sync(run)
        _log_step(run, last_step)
        if budget.progress() >= run.next_eval - 1e-12:
            if not last_step and not budget.exhausted() and not _maybe_evaluate(run):
                return _stop_for_signal(run)
            while run.next_eval <= budget.progress() + 1e-12:
                run.next_eval += cfg.eval_every
        if run.out is not None and cfg.checkpoint_every and s.step % cfg.checkpoint_every == 0:
            save_run(s, run.sampler, run.hooks, run.plan, run.out, run.wall_started)
        # a wall-clock run keeps stepping at the schedule's end until its time is used up
        # (a step projected to be the last can finish early when the one before was slow)
        if last_step and (not budget.is_wall_clock or budget.exhausted()):
            break
    if run.evaluate is not None:
        run.log.progress(1.0, f"step {s.step} evaluating", eta=run.plan.cost)
        if not _evaluate(run, final=True):
            return _stop_for_signal(run)
    run.log.progress(1.0, f"step {s.step} done", eta=0.0)
    return "budget"


def _sync(run: Run) -> None:
    """One clock, one step cost and one stop signal for the whole job."""
    s, budget = run.state, run.state.budget
    if not s.dist.enabled:
        run.stop_code = run.signals.code
        return
    shared = torch.tensor([budget.used() if budget.is_wall_clock else 0.0, run.step_cost,
                           float(run.signals.code)], dtype=torch.float64, device=s.dist.device)
    distributed.all_reduce(s.dist, shared, "max", doing="a step")
    if budget.is_wall_clock:
        budget.ledger.seconds["train"] += float(shared[0]) - budget.used()
    run.step_cost, run.stop_code = float(shared[1]), int(shared[2])
    run.signals.code = max(run.signals.code, run.stop_code)


def _begin_step(run: Run, overrun: bool) -> tuple[bool, int]:
    """Set the step's progress and LR; returns whether it is projected to be the last, and
    its number of micro-batches."""
    s, cfg, budget = run.state, run.state.config, run.state.budget
    accum = batch_multiple(budget.progress(), cfg.batch_start, cfg.batch_end, cfg.batch_ramp)
    planned = {"steps": 1.0, "examples": float(cfg.micro_batch * accum * s.dist.world_size)}
    # monotone: a slow step followed by a fast one must not move the schedule backwards
    p = max(s.progress, budget.projected_progress(planned.get(budget.unit, run.step_cost)))
    # A wall-clock step slower than the one before can use up the budget before a step
    # was projected to end it; then one more step runs at the schedule's end (final LR),
    # so every run ends its schedule, at the price of overrunning by one micro-batch.
    if overrun:
        p = 1.0
    s.progress, s.lr = p, cfg.lr * s.lr_scale * run.schedule(p)
    for group in s.optimizer.param_groups:
        group["lr"] = s.lr
    return p >= 1.0, accum


def _train_step(run: Run, accum: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Run the step's `accum` micro-batches and apply the update unless it is non-finite.
    Returns (mean loss, the gradient check, whether it was non-finite)."""
    s, cfg, budget, d = run.state, run.state.config, run.state.budget, run.state.dist
    before = budget.used()
    # with torch.compile the first step mostly compiles: it is booked apart, off the budget
    phase = "compile" if cfg.compile and s.step == run.first_step else "train"
    step_loss = torch.zeros((), device=d.device)
    done = 0
    with budget.ledger.phase(phase):
        for micro in range(accum):
            if micro > 0 and _should_cut(run):
                break
            started = time.perf_counter()
            step_loss += _micro_batch(run, sync=micro == accum - 1 or not d.enabled,
                                      accum=accum)
            done += 1
            _warn_if_slow(run, time.perf_counter() - started)
        if done < accum:
            _finish_early(run, done, accum)
        loss = step_loss / done
        grads = clip_and_check(s.raw_model, cfg.clip)
        reduce = (lambda t: distributed.all_reduce(d, t, "max")) if d.enabled else None
        bad = nonfinite_step(loss, grads, reduce)
        if not bad:
            s.optimizer.step()
        s.optimizer.zero_grad(set_to_none=True)
        s._commit_work()
        s.step += 1
    run.step_cost = budget.used() - before
    return loss, grads, bad


def _micro_batch(run: Run, sync: bool, accum: int) -> torch.Tensor:
    """Draw, forward and backward one micro-batch; returns its mean loss (detached)."""
    s, cfg, budget = run.state, run.state.config, run.state.budget
    batch = None
    while batch is None:
        s.batch_indices = run.sampler.sample(cfg.micro_batch, budget.progress())
        batch = to_device(gather(run.data, s.batch_indices, s.collate_fn), s.dist.device,
                          cfg.channels_last)
        for h in run.hooks:
            batch = h.on_batch(s, batch) if batch is not None else None
    n = batch_size(batch)
    with (nullcontext() if sync else s.model.no_sync()), run.autocast:
        losses = s.loss_fn(s.model, batch)
    if losses.dim() != 1 or losses.shape[0] != n:
        raise ConfigError(f"loss_fn must return one loss per example (shape [{n}]), "
                          f"got shape {list(losses.shape)}")
    for h in run.hooks:
        losses = h.on_loss(s, batch, losses)
    loss = losses.float().mean()
    (loss / accum).backward()
    tokens = run.tokens_fn(batch) if run.tokens_fn else 0
    s.pending[1] += n
    s.pending[2] += tokens
    s.pending[3] += s.units(n, tokens) * s.flops_train
    return loss.detach()


def _should_cut(run: Run) -> bool:
    """Between micro-batches: end the step now (a stop signal, or a seconds budget used
    up)? Every rank of a DDP job gets the same answer."""
    budget = run.state.budget
    if not run.state.dist.enabled:
        return bool(run.signals.code or (budget.is_wall_clock and budget.exhausted()))
    flags = torch.tensor([float(run.signals.code),
                          float(budget.is_wall_clock and budget.exhausted())],
                         dtype=torch.float64, device=run.state.dist.device)
    distributed.all_reduce(run.state.dist, flags, "max", doing="a step")
    return bool(flags.max() > 0)


def _finish_early(run: Run, done: int, accum: int) -> None:
    """A step cut after `done` of `accum` micro-batches: average the ranks' gradients (the
    micro-batches ran without DDP's sync) and rescale them to the mean over `done`."""
    d = run.state.dist
    for p in run.state.raw_model.parameters():
        if p.grad is None:
            continue
        if d.enabled:
            distributed.all_reduce(d, p.grad, "sum", doing="a step")
            p.grad.div_(d.world_size)
        p.grad.mul_(accum / done)


def _warn_if_slow(run: Run, seconds: float) -> None:
    budget = run.state.budget
    if (run.warned_slow or not budget.is_wall_clock or run.state.step == run.first_step
            or seconds <= SLOW_STEP_SHARE * budget.amount):
        return
    run.warned_slow = True
    run.log.notice(slow_step_line(seconds, budget.amount), kind="warning", step=run.state.step)


def _nonfinite(run: Run, loss: torch.Tensor, grads: torch.Tensor) -> bool:
    """Act on a step whose update was withheld; returns whether the run stops."""
    s, cfg = run.state, run.state.config
    s.skipped_steps += 1
    kind = "finite" if bool(torch.isfinite(grads)) else "non-finite"
    what = f"step {s.step}: loss {float(loss):.4g}, {kind} gradients"
    if cfg.on_nonfinite == "skip":
        if s.skipped_steps == 1:
            run.log.notice(f"{what}; update skipped (later skips are only counted)",
                           kind="nonfinite", step=s.step)
        return False
    if cfg.on_nonfinite == "rollback" and s.rollbacks == 0:
        back = rollback(s, run.sampler, run.hooks, run.out)
        if back is not None:
            run.log.notice(f"{what}; rolled back to step-{back} with the learning rate "
                           "halved", kind="nonfinite", step=s.step)
            return False
    again = " again after a rollback" if s.rollbacks else ""
    saved = ""
    if run.out is not None:
        save_run(s, run.sampler, run.hooks, run.plan, run.out, run.wall_started)
        saved = f"; the weights before it are saved in {run.out / 'checkpoints'}"
    run.log.notice(f"{what}{again}; stopped without applying it{saved}", kind="nonfinite",
                   step=s.step)
    return True


def _stop_for_signal(run: Run) -> str:
    if run.out is not None:
        save_run(run.state, run.sampler, run.hooks, run.plan, run.out, run.wall_started)
    return run.signals.reason or "sigterm"


def _log_step(run: Run, last_step: bool) -> None:
    s, cfg, budget = run.state, run.state.config, run.state.budget
    if s.step % cfg.log_every == 0 or last_step:
        if run.loss_n:
            s.last_loss = float(run.loss_sum) / run.loss_n
        run.loss_sum, run.loss_n = 0.0, 0
        run.log.log("train", s.step, {"loss": s.last_loss, "lr": s.lr,
                                      "progress": budget.progress(),
                                      "train_seconds": budget.ledger.current("train")})
    if run.log.shows_progress:
        info = f"step {s.step}"
        if math.isfinite(s.last_loss):
            info += f" loss {s.last_loss:.4f}"
        if s.metrics:
            info += f" {cfg.metric} {s.metrics.get(cfg.metric, float('nan')):.2f}"
        run.log.progress(budget.progress(), info, eta=eta_seconds(run))


def eta_seconds(run: Run) -> float | None:
    """Expected seconds until the run ends: training left plus the evaluations still
    planned (None while unknown)."""
    budget = run.state.budget
    p = budget.progress()
    if budget.is_wall_clock:
        train_left = max(0.0, budget.amount - budget.used())
    elif p > 0:
        train_left = budget.ledger.current("train") * (1 - p) / p
    else:
        return None
    return train_left + (run.plan.seconds_left(p) if run.evaluate is not None else 0.0)


def _maybe_evaluate(run: Run) -> bool:
    """The intermediate evaluation due now, if the plan keeps it. False: a stop signal
    interrupted it."""
    if run.evaluate is None:
        return True
    if not run.plan.should_run(run.next_eval):
        run.plan.skip()
        return True
    return _evaluate(run, final=False)


def _evaluate(run: Run, final: bool) -> bool:
    """Run the evaluation (sharded across ranks when it takes `shard`); False when a stop
    signal interrupted it (single process only: under DDP ranks finish it together)."""
    s, cfg, budget, d = run.state, run.state.config, run.state.budget, run.state.dist
    assert run.evaluate is not None
    started = time.perf_counter()
    guard = run.signals.interruptible() if not d.enabled else nullcontext()
    # under DDP the ranks finish an evaluation together: none is cut short alone
    limit = run.plan.limit(final) if not d.enabled else None
    try:
        with budget.ledger.phase("eval"), guard, time_limit(limit):
            was_training = s.raw_model.training
            s.raw_model.eval()
            try:
                with torch.no_grad(), run.autocast:
                    raw = run.evaluate(s.raw_model, **_eval_kwargs(run, final))
            finally:
                s.raw_model.train(was_training)
    except Interrupted:
        return False
    except TimedOut:
        line = run.plan.cut(time.perf_counter() - started)
        run.log.log("eval_plan", s.step, run.plan.summary())
        if not cfg.quiet:
            run.log.notice(line, kind="eval_plan", step=s.step)
        return True
    metrics = {k: float(v) for k, v in raw.items()}
    _record_eval(run, time.perf_counter() - started, final)
    if final and "eval_fraction" in metrics and not cfg.quiet:
        run.log.notice(f"the final evaluation scored {metrics['eval_fraction']:.0%} of its set "
                       "to end within the budget's wall limit; a longer budget scores it all",
                       kind="eval_plan", step=s.step)
    if cfg.metric not in metrics:
        raise ConfigError(f"evaluate() returned {sorted(metrics)}, which lacks the metric "
                          f"{cfg.metric!r}")
    s.metrics = metrics
    work = budget.work.as_dict()
    s.curve.append([budget.ledger.current("train"), work, metrics[cfg.metric]])
    run.log.log("eval", s.step, {**metrics, "train_seconds": s.curve[-1][0], "work": work})
    for h in run.hooks:
        h.on_eval(s, metrics)
    return True


def _eval_kwargs(run: Run, final: bool) -> dict[str, Any]:
    """`shard` for an evaluate function that splits across ranks; `deadline` for a final
    evaluation of a seconds budget in one process, when the function takes it; `final`
    for one that scores the final evaluation otherwise (e.g. on all of a test set)."""
    d, kwargs = run.state.dist, {}
    if takes_shard(run.evaluate):
        kwargs["shard"] = (d.rank, d.world_size)
    if takes_keyword(run.evaluate, "final"):
        kwargs["final"] = final
    if final and not d.enabled and run.wall_deadline is not None and \
            takes_deadline(run.evaluate):
        kwargs["deadline"] = run.wall_deadline
    return kwargs


def _record_eval(run: Run, seconds: float, final: bool) -> None:
    d = run.state.dist
    if d.enabled:  # the slowest rank's time, so every rank plans alike
        t = torch.tensor([seconds], dtype=torch.float64, device=d.device)
        distributed.all_reduce(d, t, "max", doing="an evaluation")
        seconds = float(t[0])
    line = run.plan.record(seconds, 1.0 if final else run.state.budget.progress())
    if line is not None:
        run.log.log("eval_plan", run.state.step, run.plan.summary())
        if not run.state.config.quiet:
            run.log.notice(line, kind="eval_plan", step=run.state.step)
