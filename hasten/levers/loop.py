"""A lever list in a loop hasten does not own: a plain PyTorch loop, and under the HF Trainer
and Lightning callbacks (`hasten.integrations`), which are built on it.

    loop = LeverLoop(["curriculum", "infobatch", "sb-topk"], data, per_example_loss, model,
                     budget, batch_size=64, difficulty=lengths)
    budget.start()
    for batch in loop:                     # drawn by the levers' sampler, then selected
        loss = loop.loss(model, batch)     # per-example losses, weighted, averaged
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        loop.step()                        # the levers update; the work is counted
    budget.stop()

It applies the levers exactly as hasten's trainer does (`hasten.levers.compose`), holds the
same `TrainState` the trainer's hooks see, draws each batch when it is about to be trained
(at the budget's progress then, after the previous step's levers updated, as the trainer
does), and counts the work the same way (examples forwarded and backpropagated, FLOPs
measured once on a probe batch), so a lever list makes the same selections here as in the
trainer. The HF and Lightning callbacks draw their batches through `next_batch` inside the
training step, not from the framework's data loader (which fetches ahead of the step).

Step levers act where the loop lets them: bf16 as autocast around the loss and selective
backprop's scoring; compile, channels-last, adamw, schedule and micro-batch are refused with
the loop's own switch named.

Nothing is a silent no-op: a lever that chooses examples by their losses refuses a step in
which no loss reached it (`step`). Where it is shown: docs/your-loop.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from hasten.core.budget import Budget
from hasten.core.checks import check_dataset
from hasten.core.distributed import Dist, rank_from_env, world_size_from_env
from hasten.core.errors import ConfigError
from hasten.core.recipe import Recipe
from hasten.core.sampling import CollateFn, ShuffledSampler, batch_size, gather, to_device
from hasten.core.train_config import TrainConfig
from hasten.core.train_state import LossFn, TrainState, precision_context
from hasten.core.trainer import measure_flops, probe_batch
from hasten.levers.base import Lever, check_lever_inputs, parse_levers
from hasten.levers.compose import apply_levers

# step levers a foreign loop cannot take from hasten, and the loop's own switch for each
OWN_SWITCH = {"compile": "torch.compile(model) (HF: TrainingArguments(torch_compile=True))",
              "channels-last": "model.to(memory_format=torch.channels_last)",
              "adamw": "your optimizer's fused=/foreach= arguments",
              "schedule": "hasten.budget_lr(optimizer, budget, shape) as the LR scheduler",
              "micro-batch": "the loop's own batch size"}


class LeverLoop:
    """Drive `levers` in a loop you own; see the module docstring.

    levers       spec strings or Lever objects, one list (`hasten.levers.compose`'s rules).
    data         a map-style dataset (batches are drawn by index).
    loss_fn      (model, batch) -> one loss per example, shape [B].
    model        the model trained (scored by selective backprop, probed for FLOPs).
    budget       the run's `Budget` (start and stop its clock around training yourself).
    batch_size   examples per backward batch per process (selective backprop draws its pool
                 of `pool` x this, as in the trainer).
    difficulty, proxy_model   what the curriculum and sb-proxy need, if listed.
    tokens_fn    counts a batch's tokens (then FLOPs are per token, as in the trainer).
    """

    def __init__(self, levers: str | Sequence[str | Lever], data: Dataset, loss_fn: LossFn,
                 model: nn.Module, budget: Budget, batch_size: int, *, seed: int = 0,
                 collate_fn: CollateFn | None = None, difficulty: Any = None,
                 proxy_model: Callable[[], nn.Module] | None = None, precision: str = "fp32",
                 tokens_fn: Callable[[Any], int] | None = None,
                 device: torch.device | str | None = None, loop: str = "your loop"):
        _check_arguments(data, loss_fn, model, budget, batch_size)
        check_lever_inputs("LeverLoop", difficulty=difficulty, proxy_model=proxy_model,
                           seed=seed)
        chosen = parse_levers(levers)
        for lever in chosen:
            if lever.name in OWN_SWITCH:
                raise ConfigError(f"lever {lever.name!r} cannot act in {loop}: use "
                                  f"{OWN_SWITCH[lever.name]}")
        config = TrainConfig(budget=budget.spec, micro_batch=batch_size, seed=seed,
                             precision=precision, quiet=True, tensorboard=False)
        recipe = Recipe(model=model, train_data=data, loss_fn=loss_fn, evaluate=None,
                        config=config, collate_fn=collate_fn, difficulty=difficulty,
                        proxy_model=proxy_model)
        apply_levers(recipe, chosen)
        device = torch.device(device) if device is not None else _device_of(model)
        rank, world = rank_from_env(), world_size_from_env()
        self.levers, self.recipe, self.budget, self.loss_fn = chosen, recipe, budget, loss_fn
        self.tokens_fn = tokens_fn
        self.sampler = recipe.sampler or ShuffledSampler(len(recipe.train_data), seed, rank,
                                                         world)
        self.hooks = recipe.hooks
        self.loss_driven = [x.name for x in chosen if "per_example_loss" in x.needs]
        self.state = TrainState(model=model, raw_model=model, optimizer=None,  # type: ignore
                                budget=budget, config=config,
                                dist=Dist(rank=rank, world_size=world, device=device),
                                loss_fn=loss_fn, train_data=recipe.train_data,
                                collate_fn=collate_fn)
        probe = probe_batch(recipe.train_data, config.micro_batch, device, collate_fn)
        probe_tokens = tokens_fn(probe) if tokens_fn else 0
        self.state.flops_unit = "token" if probe_tokens > 0 else "example"
        self.state.flops_forward, self.state.flops_train = measure_flops(model, loss_fn, probe,
                                                                         probe_tokens)
        self.autocast = precision_context(config.precision, device)
        self.losses_this_step = 0
        for hook in self.hooks:
            hook.on_start(self.state)

    @property
    def batch_size(self) -> int:
        """Examples per draw per process (after the levers)."""
        return self.state.config.micro_batch

    # -- one micro-batch ----------------------------------------------------------------

    def draw(self) -> list[int]:
        """The next draw's dataset indices, at the budget's progress now."""
        return [int(i) for i in self.sampler.sample(self.batch_size, self.budget.progress())]

    def select(self, batch: Any, ids: Sequence[int]) -> Any:
        """The rows to train on (None: selective backprop's queue is filling; draw again);
        `ids` are the batch's dataset indices (`batch_indices` then names the rows kept)."""
        self.state.batch_indices = list(ids)
        for hook in self.hooks:
            if batch is None:
                break
            batch = hook.on_batch(self.state, batch)
        return batch

    def next_batch(self) -> Any:
        """The next batch to train on, on the model's device: drawn, gathered and selected
        (drawing again while selective backprop's queue fills), as the trainer does."""
        data, collate = self.recipe.train_data, self.recipe.collate_fn
        batch = None
        while batch is None:
            ids = self.draw()
            batch = self.select(to_device(gather(data, ids, collate), self.state.dist.device),
                                ids)
        return batch

    @property
    def batch_indices(self) -> list[int]:
        """The dataset indices of the rows `select` returned last."""
        return self.state.batch_indices

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The training loss of `batch`: per-example losses weighted by the levers,
        averaged; its examples, tokens and FLOPs are counted."""
        with self.autocast:
            losses = self.loss_fn(model, batch)
        n = batch_size(batch)
        if not isinstance(losses, torch.Tensor) or losses.dim() != 1 or len(losses) != n:
            got = list(losses.shape) if isinstance(losses, torch.Tensor) else type(losses)
            raise ConfigError(f"loss_fn must return one loss per example (shape [{n}]), got "
                              f"{got}")
        for hook in self.hooks:
            losses = hook.on_loss(self.state, batch, losses)
        s = self.state
        tokens = self.tokens_fn(batch) if self.tokens_fn else 0
        s.pending[1] += n
        s.pending[2] += tokens
        s.pending[3] += s.units(n, tokens) * s.flops_train
        self.losses_this_step += 1
        return losses.float().mean()

    def step(self) -> None:
        """After the optimizer step: the levers update, the step's work is counted."""
        if self.loss_driven and not self.losses_this_step:
            raise ConfigError(f"levers {', '.join(self.loss_driven)} choose examples by their "
                              "losses, but no loss reached them this step: compute the "
                              "training loss with LeverLoop.loss (or the callback's model)")
        for hook in self.hooks:
            hook.on_step_end(self.state)
        self.state._commit_work()
        self.state.step += 1
        self.losses_this_step = 0

    # -- a plain loop ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        """Batches (`next_batch`) until the budget is spent."""
        while not self.budget.exhausted():
            yield self.next_batch()

    def state_dict(self) -> dict[str, Any]:
        """The sampler's and the levers' state, for your checkpoint (with the budget's)."""
        return {"sampler": self.sampler.state_dict(),
                "hooks": [h.state_dict() for h in self.hooks], "step": self.state.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state.get("hooks", [])) != len(self.hooks):
            raise ConfigError(f"lever state holds {len(state.get('hooks', []))} hooks, this "
                              f"lever list has {len(self.hooks)}: resume with the same levers")
        self.sampler.load_state_dict(state["sampler"])
        for hook, saved in zip(self.hooks, state["hooks"], strict=True):
            hook.load_state_dict(saved)
        self.state.step = int(state["step"])

    def work(self) -> dict[str, float]:
        """The work counted so far (the budget's counters)."""
        return self.budget.work.as_dict()


def _device_of(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _check_arguments(data: Any, loss_fn: Any, model: Any, budget: Any, size: Any) -> None:
    check_dataset("LeverLoop", "data", data)
    if not callable(loss_fn):
        raise ConfigError(f"LeverLoop: loss_fn must be (model, batch) -> per-example losses, "
                          f"got {type(loss_fn).__name__}")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"LeverLoop: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(budget, Budget):
        raise ConfigError(f"LeverLoop: budget must be a hasten Budget, got "
                          f"{type(budget).__name__}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"LeverLoop: batch_size must be an int >= 1, got {size!r}")
