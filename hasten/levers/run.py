"""`train` with a lever list: hasten's trainer, given a recipe (or its parts) and levers.

    result = train(recipe, levers=["curriculum", "infobatch", "sb-topk"])
    result = train(model, data, per_example_loss, TrainConfig(budget="10m"), levers=["bf16"])

The levers are applied to the recipe (`hasten.levers.compose.apply_levers`: checked first,
one line for what cannot combine or what a task lacks), then `hasten.core.trainer.train`
runs it. The result carries each lever's costs (one-off seconds and FLOPs, hook seconds per
step) in `RunResult.levers`; one-off costs are also the recipe's overhead. Where it is shown:
docs/your-loop.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from hasten.core.errors import ConfigError
from hasten.core.recipe import Recipe
from hasten.core.sampling import CollateFn, Sampler
from hasten.core.train_config import TrainConfig
from hasten.core.train_state import EvalFn, Hook, LossFn, RunResult
from hasten.core.trainer import train as train_loop
from hasten.levers.base import Lever
from hasten.levers.compose import apply_levers, lever_costs


def train(target: Recipe | nn.Module, train_data: Dataset | None = None,
          loss_fn: LossFn | None = None, config: TrainConfig | None = None, *,
          levers: str | Sequence[str | Lever] = (), evaluate: EvalFn | None = None,
          hooks: Sequence[Hook] = (), sampler: Sampler | None = None,
          tokens_fn: Callable[[Any], int] | None = None, collate_fn: CollateFn | None = None
          ) -> RunResult:
    """Train a `Recipe` (or a model with its data, per-example loss and config) with
    `levers` applied; see the module docstring."""
    recipe = _recipe(target, train_data, loss_fn, config, evaluate, hooks, sampler, tokens_fn,
                     collate_fn)
    if levers:
        apply_levers(recipe, levers)
    result = train_loop(recipe.model, recipe.train_data, recipe.loss_fn, recipe.config,
                        evaluate=recipe.evaluate, hooks=recipe.hooks, sampler=recipe.sampler,
                        tokens_fn=recipe.tokens_fn, collate_fn=recipe.collate_fn)
    result.levers = lever_costs(recipe, result.steps)
    return result


def _recipe(target: Any, train_data: Any, loss_fn: Any, config: Any, evaluate: Any,
            hooks: Sequence[Hook], sampler: Any, tokens_fn: Any, collate_fn: Any) -> Recipe:
    if isinstance(target, Recipe):
        given = [name for name, value in (("train_data", train_data), ("loss_fn", loss_fn),
                                          ("config", config), ("evaluate", evaluate),
                                          ("sampler", sampler), ("tokens_fn", tokens_fn),
                                          ("collate_fn", collate_fn)) if value is not None]
        if given or hooks:
            raise ConfigError(f"train(recipe, ...): the recipe holds {', '.join(given) or 'hooks'}"
                              "; set them on the recipe instead")
        return target
    if not isinstance(target, nn.Module):
        raise ConfigError(f"train: the first argument is a Recipe or an nn.Module, got "
                          f"{type(target).__name__}")
    missing = [name for name, value in (("train_data", train_data), ("loss_fn", loss_fn),
                                        ("config", config)) if value is None]
    if missing:
        raise ConfigError(f"train(model, ...) needs {', '.join(missing)}")
    return Recipe(model=target, train_data=train_data, loss_fn=loss_fn, evaluate=evaluate,
                  config=config, hooks=list(hooks), sampler=sampler, tokens_fn=tokens_fn,
                  collate_fn=collate_fn)
