"""The lean trainer: one loop, every schedule a function of the budget.

    result = train(model, train_data, per_example_loss, TrainConfig(budget="90s"),
                   evaluate=accuracy_on_test)

What it does, in order, each optimizer step:
  1. ask the budget where the run will be when this step ends (projected progress p);
  2. set the LR to peak x schedule(p) and the batch to micro-batch x batch_multiple(p);
  3. per micro-batch: draw indices from the sampler, gather, let hooks change the batch,
     forward under autocast, backward (DDP syncs only on the last micro-batch);
  4. clip, step, count work (examples forwarded / backpropagated, tokens, FLOPs);
  5. evaluate each time progress crosses another `eval_every`, checkpoint when due.

It stops within one optimizer step of the budget. Evaluation and checkpoint time are kept
off the training clock. Hooks (see `Hook`) let methods change batches and read state without
subclassing anything; every method also works in a plain loop without this trainer.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from hasten import distributed
from hasten.budget import Budget
from hasten.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_optimizer_state,
    optimizer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from hasten.data.sampling import (
    CollateFn,
    Sampler,
    ShuffledSampler,
    batch_size,
    gather,
    to_device,
)
from hasten.errors import CheckpointError, ConfigError, DataError
from hasten.flops import flop_counter
from hasten.runlog import RunLog
from hasten.schedules import batch_multiple, make_schedule

LossFn = Callable[[nn.Module, Any], torch.Tensor]
EvalFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainConfig:
    """Everything that shapes a run. Fractions are of the budget (0..1)."""

    budget: str = "1000steps"
    lr: float = 1e-3
    schedule: str = "cosine"
    schedule_params: dict[str, float] = field(default_factory=dict)
    micro_batch: int = 128
    batch_start: int = 1  # micro-batches per step at the start of the ramp
    batch_end: int = 1  # ... and at its end (gradient accumulation)
    batch_ramp: float = 0.0  # fraction of the budget over which the batch ramps
    optimizer: str = "adamw"  # adamw | sgd
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8  # AdamW's epsilon (Cramming uses 1e-12)
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0  # never applied to norms and biases (1-d parameters)
    clip: float | None = None
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    compile: bool = False
    fused: bool | None = None  # fused AdamW kernel; None lets torch choose
    foreach: bool | None = None  # multi-tensor AdamW; None lets torch choose
    channels_last: bool = False  # NHWC memory format for 4-d inputs and the model
    eval_every: float = 0.1
    metric: str = "accuracy"
    higher_is_better: bool = True
    seed: int = 0
    out_dir: str | None = None
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: only on SIGTERM)
    resume: bool = False
    log_every: int = 50
    quiet: bool = False
    tensorboard: bool = True
    device: str | None = None

    def validate(self) -> None:
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if self.micro_batch < 1:
            raise ConfigError(f"micro_batch must be >= 1, got {self.micro_batch}")
        if not 0 < self.eval_every <= 1:
            raise ConfigError(f"eval_every must be in (0, 1], got {self.eval_every}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"optimizer must be adamw or sgd, got {self.optimizer!r}")
        if self.clip is not None and self.clip <= 0:
            raise ConfigError(f"clip must be positive, got {self.clip}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.resume and not self.out_dir:
            raise ConfigError("resume needs an output folder (out_dir)")
        Budget(self.budget)
        make_schedule(self.schedule, **self.schedule_params)
        batch_multiple(0.0, self.batch_start, self.batch_end, self.batch_ramp)


@dataclass
class TrainState:
    """What hooks see. `model` is what the loss is computed with (DDP-wrapped or compiled);
    `raw_model` is the plain module, for side computations such as scoring forwards."""

    model: nn.Module
    raw_model: nn.Module
    optimizer: torch.optim.Optimizer
    budget: Budget
    config: TrainConfig
    dist: distributed.Dist
    loss_fn: LossFn
    train_data: Dataset
    step: int = 0
    lr: float = 0.0
    progress: float = 0.0
    last_loss: float = float("nan")
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[list[Any]] = field(default_factory=list)
    batch_indices: list[int] = field(default_factory=list)  # dataset indices of the batch
    # FLOPs of one unit's forward pass, and of its forward + backward, measured once on the
    # first batch. The unit is a token when the run counts tokens (a `tokens_fn`), so
    # variable-length batches cost what their tokens cost; else it is an example.
    flops_forward: float = 0.0
    flops_train: float = 0.0
    flops_unit: str = "example"
    # This rank's work in the current step, added to the counters (summed over ranks) when
    # the step ends: [examples forwarded only, examples forwarded and backpropagated, tokens,
    # FLOPs of every pass].
    pending: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    # how dataset items become a batch (None: tensors indexed directly, else torch's
    # default_collate); hooks that rebuild batches from items use it too
    collate_fn: CollateFn | None = None

    def units(self, examples: int, tokens: int) -> int:
        """How many FLOP units a pass over `examples` holding `tokens` tokens is."""
        return tokens if self.flops_unit == "token" else examples

    def count_forward(self, examples: int, tokens: int = 0, flops: float | None = None) -> None:
        """Record a forward-only pass on this rank (e.g. a selection method's scoring pass).
        Its FLOPs default to the model's own forward (pass `tokens` when the run counts
        them); `flops` gives a proxy's FLOPs per example instead."""
        self.pending[0] += examples
        self.pending[2] += tokens
        self.pending[3] += (examples * flops if flops is not None
                            else self.units(examples, tokens) * self.flops_forward)

    def _commit_work(self) -> None:
        """Add this step's work of every rank to the counters, so all ranks agree on them."""
        fwd_only, backprop, tokens, flops = self.pending
        if self.dist.enabled:
            t = torch.tensor(self.pending, dtype=torch.float64, device=self.dist.device)
            torch.distributed.all_reduce(t)
            fwd_only, backprop, tokens, flops = t.tolist()
        work = self.budget.work
        work.examples_forwarded += int(fwd_only + backprop)
        work.examples_backpropagated += int(backprop)
        work.tokens += int(tokens)
        work.flops += flops
        work.steps += 1
        self.pending = [0.0, 0.0, 0.0, 0.0]


class Hook:
    """Override what a method needs; every call has a no-op default.

    on_start(state)            once, after set-up and any resume, before the first step.
    on_batch(state, batch)     before a micro-batch's forward: return the batch to train on
                               (possibly a subset or a new batch), or None to skip it and
                               draw another (e.g. while a selection queue fills up). A hook
                               that changes which examples the batch holds sets
                               `state.batch_indices` to the dataset indices of its rows.
    on_loss(state, batch, losses)  after the forward: return the per-example losses
                               (shape [B]) to average, e.g. reweighted; read them to keep
                               per-example statistics keyed by `state.batch_indices`.
    on_step_end(state)         after each optimizer step.
    on_eval(state, metrics)    after each evaluation.
    state_dict / load_state_dict   saved in and restored from checkpoints.
    """

    def on_start(self, state: TrainState) -> None: ...
    def on_batch(self, state: TrainState, batch: Any) -> Any:
        return batch
    def on_loss(self, state: TrainState, batch: Any, losses: torch.Tensor) -> torch.Tensor:
        return losses
    def on_step_end(self, state: TrainState) -> None: ...
    def on_eval(self, state: TrainState, metrics: dict[str, float]) -> None: ...
    def state_dict(self) -> dict[str, Any]:
        return {}
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class RunResult:
    """What a finished (or stopped) run returns; `curve` rows are [train s, work, metric]."""

    metric: str
    final: float | None
    metrics: dict[str, float]
    curve: list[list[Any]]
    work: dict[str, float]
    ledger: dict[str, float]
    steps: int
    stopped: str  # "budget" or "sigterm"
    config: dict[str, Any]

    @property
    def train_seconds(self) -> float:
        return self.ledger["train"]


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


def precision_context(precision: str, device: torch.device) -> Any:
    """`precision` as a context: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def autocast_for(config: TrainConfig, device: torch.device) -> Any:
    """The run's precision as a context. Training, evaluation and methods' scoring passes
    all run under it."""
    return precision_context(config.precision, device)


def probe_batch(data: Dataset, size: int, device: torch.device,
                collate_fn: CollateFn | None = None) -> Any:
    """The first `size` examples of `data` as a batch on `device` (for FLOP counting)."""
    return to_device(gather(data, list(range(min(len(data), size))), collate_fn), device)


def measure_flops(model: nn.Module, loss_fn: LossFn, batch: Any, units: int = 0
                  ) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs of one example, or of one of `units` (e.g. the
    batch's tokens) when given, counted by torch's FlopCounterMode (with CPU attention,
    `hasten.flops`) on one real batch; the gradients are cleared afterwards."""
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


class _SigtermFlag:
    """Turns SIGTERM into a flag the loop checks at step boundaries (main thread only)."""

    def __init__(self) -> None:
        self.raised = False
        self._previous = None

    def __enter__(self) -> _SigtermFlag:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


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
    metrics including `config.metric`. `tokens_fn(batch)` counts a batch's real tokens: the
    run then counts tokens, and its FLOPs per token (for variable-length data).
    `collate_fn(items)` turns a list of dataset items into a batch (e.g. padding tokenized
    rows of different lengths); batches are fetched with one indexing call where the dataset
    supports it (see `hasten.data.sampling.gather`). Run it under `torchrun` for DDP.
    """
    config.validate()
    d = distributed.init(config.device)
    budget = Budget(config.budget)
    schedule = make_schedule(config.schedule, **config.schedule_params)
    if len(train_data) == 0:
        raise DataError("the training set is empty")
    out = Path(config.out_dir) if config.out_dir else None
    log: RunLog | None = None
    try:
        with budget.ledger.phase("setup"):
            torch.manual_seed(config.seed)
            model.to(d.device)
            if config.channels_last:
                model.to(memory_format=torch.channels_last)
            raw = model
            optimizer = make_optimizer(raw, config)
            sampler = sampler or ShuffledSampler(len(train_data), config.seed, d.rank,
                                                 d.world_size)
            probe = probe_batch(train_data, config.micro_batch, d.device, collate_fn)
            # per token when the run counts tokens: batches of short sentences cost less
            probe_tokens = tokens_fn(probe) if tokens_fn else 0
            flops_unit = "token" if probe_tokens > 0 else "example"
            flops_forward, flops_train = measure_flops(raw, loss_fn, probe, probe_tokens)
            if d.enabled:
                ddp_kw = {"device_ids": [d.device.index]} if d.device.type == "cuda" else {}
                model = nn.parallel.DistributedDataParallel(raw, **ddp_kw)
            if config.compile:
                model = torch.compile(model)
            state = TrainState(model=model, raw_model=raw, optimizer=optimizer, budget=budget,
                               config=config, dist=d, loss_fn=loss_fn, train_data=train_data,
                               flops_forward=flops_forward, flops_train=flops_train,
                               flops_unit=flops_unit, collate_fn=collate_fn)
            if config.resume and out is not None:
                _resume(state, sampler, hooks, out / "checkpoints")
            # files are created only once set-up (and any resume) succeeded
            log = RunLog(out if d.is_main else None, enabled=d.is_main, quiet=config.quiet,
                         tensorboard=config.tensorboard)
        for h in hooks:
            h.on_start(state)
        with _SigtermFlag() as stop_signal:
            stopped = _loop(state, train_data, sampler, schedule, evaluate, hooks, tokens_fn,
                            log, out, stop_signal)
        result = RunResult(
            metric=config.metric, final=state.metrics.get(config.metric),
            metrics=dict(state.metrics), curve=state.curve, work=budget.work.as_dict(),
            ledger=budget.ledger.state_dict(), steps=state.step, stopped=stopped,
            config=asdict(config))
        if out is not None and d.is_main:
            log.log("end", state.step, {"final": result.final, "stopped": stopped,
                                        "work": result.work, "ledger": result.ledger})
        return result
    finally:
        if log is not None:
            log.close()


def _resume(state: TrainState, sampler: Sampler, hooks: Sequence[Hook], folder: Path) -> None:
    path = latest_checkpoint(folder)
    if path is None:
        return
    body = load_checkpoint(path, state.raw_model)
    saved = body["state"]
    load_optimizer_state(state.optimizer, saved["optimizer"])
    state.budget.load_state_dict(saved["budget"])
    sampler.load_state_dict(saved["sampler"])
    state.step, state.curve, state.metrics = body["step"], saved["curve"], saved["metrics"]
    flops = saved["flops"]  # [forward, train] before the unit was saved: per example
    state.flops_forward, state.flops_train = flops[0], flops[1]
    state.flops_unit = flops[2] if len(flops) > 2 else "example"
    hook_states = saved.get("hooks", [])
    if len(hook_states) != len(hooks):
        raise CheckpointError(f"checkpoint {path} was saved with {len(hook_states)} hooks, "
                              f"this run has {len(hooks)}")
    for h, s in zip(hooks, hook_states, strict=True):
        h.load_state_dict(s)
    rng = saved["rng"]
    set_rng_state(rng[state.dist.rank] if isinstance(rng, list) else rng)


def _checkpoint(state: TrainState, sampler: Sampler, hooks: Sequence[Hook], out: Path) -> None:
    with state.budget.ledger.phase("checkpoint"):
        rngs: Any = rng_state()
        if state.dist.enabled:  # every rank's generators, gathered to the writer
            gathered: list[Any] = [None] * state.dist.world_size
            torch.distributed.all_gather_object(gathered, rngs)
            rngs = gathered
        if state.dist.is_main:
            payload = {
                "optimizer": optimizer_state(state.optimizer),
                "budget": state.budget.state_dict(),
                "sampler": sampler.state_dict(),
                "curve": state.curve,
                "metrics": state.metrics,
                "flops": [state.flops_forward, state.flops_train, state.flops_unit],
                "hooks": [h.state_dict() for h in hooks],
                "rng": rngs,
                "config": asdict(state.config),
            }
            save_checkpoint(out / "checkpoints", state.step, state.raw_model, payload)
        distributed.barrier(state.dist)


def _evaluate(state: TrainState, evaluate: EvalFn | None, hooks: Sequence[Hook],
              log: RunLog) -> None:
    if evaluate is None:
        return
    with state.budget.ledger.phase("eval"):
        was_training = state.raw_model.training
        state.raw_model.eval()
        with torch.no_grad(), autocast_for(state.config, state.dist.device):
            metrics = {k: float(v) for k, v in evaluate(state.raw_model).items()}
        state.raw_model.train(was_training)
    if state.config.metric not in metrics:
        raise ConfigError(f"evaluate() returned {sorted(metrics)}, which lacks the metric "
                          f"{state.config.metric!r}")
    state.metrics = metrics
    work = state.budget.work.as_dict()
    state.curve.append([state.budget.ledger.current("train"), work, metrics[state.config.metric]])
    log.log("eval", state.step, {**metrics, "train_seconds": state.curve[-1][0], "work": work})
    for h in hooks:
        h.on_eval(state, metrics)


def _loop(state: TrainState, data: Dataset, sampler: Sampler, schedule: Callable[[float], float],
          evaluate: EvalFn | None, hooks: Sequence[Hook], tokens_fn: Callable[[Any], int] | None,
          log: RunLog, out: Path | None, stop_signal: _SigtermFlag) -> str:
    cfg, budget, d, model = state.config, state.budget, state.dist, state.model
    autocast = autocast_for(cfg, d.device)
    next_eval = (math.floor(budget.progress() / cfg.eval_every + 1e-9) + 1) * cfg.eval_every
    step_cost = 0.0  # the last step's cost in the budget's unit, to project this one's end
    loss_sum, loss_n = torch.zeros((), device=d.device), 0
    first_step = state.step
    model.train()
    while True:
        if d.enabled:  # one clock, one step cost and one stop signal for the whole job
            shared = torch.tensor([budget.used() if budget.is_wall_clock else 0.0, step_cost,
                                   float(stop_signal.raised)], dtype=torch.float64,
                                  device=d.device)
            torch.distributed.all_reduce(shared, op=torch.distributed.ReduceOp.MAX)
            if budget.is_wall_clock:
                budget.ledger.seconds["train"] += float(shared[0]) - budget.used()
            step_cost, stop_signal.raised = float(shared[1]), bool(shared[2])
        if stop_signal.raised:
            if out is not None:
                _checkpoint(state, sampler, hooks, out)
            return "sigterm"
        # A wall-clock step slower than the one before can use up the budget before a step
        # was projected to end it; then one more step runs at the schedule's end (final LR),
        # so every run ends its schedule, at the price of overrunning by one step.
        overrun = budget.exhausted() and budget.is_wall_clock and state.progress < 1.0
        if budget.exhausted() and not (overrun and state.step > first_step):
            break
        accum = batch_multiple(budget.progress(), cfg.batch_start, cfg.batch_end, cfg.batch_ramp)
        planned = {"steps": 1.0, "examples": float(cfg.micro_batch * accum * d.world_size)}
        # monotone: a slow step followed by a fast one must not move the schedule backwards
        p = max(state.progress, budget.projected_progress(planned.get(budget.unit, step_cost)))
        if overrun:
            p = 1.0
        last_step = p >= 1.0
        state.progress, state.lr = p, cfg.lr * schedule(p)
        for group in state.optimizer.param_groups:
            group["lr"] = state.lr
        before = budget.used()
        # with torch.compile the first step mostly compiles: it is booked apart, off the budget
        phase = "compile" if cfg.compile and state.step == first_step else "train"
        with budget.ledger.phase(phase):
            for micro in range(accum):
                batch = None
                while batch is None:
                    state.batch_indices = sampler.sample(cfg.micro_batch, budget.progress())
                    batch = to_device(gather(data, state.batch_indices, state.collate_fn),
                                      d.device, cfg.channels_last)
                    for h in hooks:
                        batch = h.on_batch(state, batch) if batch is not None else None
                n = batch_size(batch)
                sync = micro == accum - 1 or not d.enabled
                with (nullcontext() if sync else model.no_sync()), autocast:
                    losses = state.loss_fn(model, batch)
                if losses.dim() != 1 or losses.shape[0] != n:
                    raise ConfigError(f"loss_fn must return one loss per example (shape [{n}]), "
                                      f"got shape {list(losses.shape)}")
                for h in hooks:
                    losses = h.on_loss(state, batch, losses)
                loss = losses.float().mean()
                (loss / accum).backward()
                loss_sum += loss.detach()
                loss_n += 1
                tokens = tokens_fn(batch) if tokens_fn else 0
                state.pending[1] += n
                state.pending[2] += tokens
                state.pending[3] += state.units(n, tokens) * state.flops_train
            if cfg.clip is not None:
                torch.nn.utils.clip_grad_norm_(state.raw_model.parameters(), cfg.clip)
            state.optimizer.step()
            state.optimizer.zero_grad(set_to_none=True)
            state._commit_work()
            state.step += 1
        step_cost = budget.used() - before
        for h in hooks:
            h.on_step_end(state)
        if state.step % cfg.log_every == 0 or last_step:
            state.last_loss = float(loss_sum) / max(1, loss_n)
            loss_sum.zero_()
            loss_n = 0
            log.log("train", state.step, {"loss": state.last_loss, "lr": state.lr,
                                          "progress": budget.progress(),
                                          "train_seconds": budget.ledger.current("train")})
        if log.shows_progress:
            info = f"step {state.step} loss {state.last_loss:.4f}"
            if state.metrics:
                info += f" {cfg.metric} {state.metrics.get(cfg.metric, float('nan')):.2f}"
            log.progress(budget.progress(), info)
        if budget.progress() >= next_eval - 1e-12:
            if not last_step and not budget.exhausted():
                _evaluate(state, evaluate, hooks, log)
            while next_eval <= budget.progress() + 1e-12:
                next_eval += cfg.eval_every
        if out is not None and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
            _checkpoint(state, sampler, hooks, out)
        # a wall-clock run keeps stepping at the schedule's end until its time is used up
        # (a step projected to be the last can finish early when the one before was slow)
        if last_step and (not budget.is_wall_clock or budget.exhausted()):
            break
    _evaluate(state, evaluate, hooks, log)
    log.progress(1.0, f"step {state.step} done")
    return "budget"
