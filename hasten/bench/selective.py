"""The selective-backprop suite: which examples deserve a backward pass?

Methods on Fashion-MNIST (ConvNet-3) and MNIST-1D (1-D CNN), each run at the same
wall-clock budget as the baseline:
  baseline   every example forward and backward
  sb         the paper's selector: keep with probability percentile ** 3 over the last 1024
             losses, full backward batches from a queue, the first 10% of the budget primed
  stale-sb   sb reusing each example's scored loss for 3 epochs (no scoring forward then)
  topk       draw 2x the batch, backprop the top half by loss (airbench-style)
  proxy      topk, but a small model trained first (one epoch, >= 200 steps) scores; its
             training time is charged to the method (and taken out of a wall-clock budget)
  proxy3     proxy drawing 3x the batch and keeping the top third
  proxy-b128 proxy keeping the top 128 of each 256 drawn (twice the steps per example)
  proxy-b64  proxy keeping the top 64 of each 128 drawn
  proxy-long proxy trained for 3 epochs instead of 1
  baseline-b128  plain training at batch 128 (the control for proxy-b128)
  baseline-b64   plain training at batch 64 (the control for proxy-b64)

Settings are chosen on `fashion-mnist-val` (55,000 training images, 5,000 held out), then
reported on `fashion-mnist` (the 10,000 test images). The selection methods apply to tasks of
class-labelled (x, y) batches; the proxy methods to the vision suite's own tasks, whose
models have a small proxy here.

Paper: Jiang et al., "Accelerating Deep Learning by Focusing on the Biggest Losers" (2019).
Results: docs/benchmarks.md, "Selective backprop: a trained proxy pays, the paper's scoring forward
does not".
"""

from __future__ import annotations

import time

from hasten.bench.harness import Recipe, Suite, register_method, register_suite
from hasten.bench.vision import (
    CLASSIFICATION_TASKS,
    VISION_TASKS,
    _data,
    per_example_cross_entropy,
)
from hasten.core.budget import Budget, seconds_spec
from hasten.core.trainer import TrainConfig, train
from hasten.models.vision import build_model
from hasten.steps.selective_backprop import SelectiveBackprop

PRIME = 0.1  # fraction of the budget trained on every example before selection starts
SELECTING = CLASSIFICATION_TASKS.__contains__  # where the selection methods apply


@register_method("sb", applies=SELECTING)
def sb(recipe: Recipe) -> Recipe:
    """Selective backprop: keep each example with probability percentile(loss) ** 3."""
    recipe.hooks.append(SelectiveBackprop("sb", beta=3.0, prime=PRIME, seed=recipe.config.seed))
    return recipe


@register_method("stale-sb", applies=SELECTING)
def stale_sb(recipe: Recipe) -> Recipe:
    """Selective backprop reusing each example's scored loss for 3 epochs."""
    recipe.hooks.append(SelectiveBackprop("sb", beta=3.0, prime=PRIME, staleness=3,
                                          seed=recipe.config.seed))
    return recipe


def _draw_pool(recipe: Recipe, pool: int = 2, backward: int | None = None) -> int:
    """Draw `pool` x the backward batch per step; returns the backward batch (default: the
    recipe's micro-batch)."""
    backward = backward or recipe.config.micro_batch
    recipe.config.micro_batch = pool * backward
    return backward


@register_method("topk", applies=SELECTING)
def topk(recipe: Recipe) -> Recipe:
    """Draw twice the batch, backpropagate the half with the highest losses."""
    backward = _draw_pool(recipe)
    recipe.hooks.append(SelectiveBackprop("topk", keep=0.5, prime=PRIME, backward_batch=backward))
    return recipe


PROXY_STEPS = 200
PROXIES = {"convnet3": ("convnet3", {"width": 16, "depth": 2}),
           "cnn1d": ("cnn1d", {"channels": 8})}


@register_method("proxy", applies=VISION_TASKS)
def proxy(recipe: Recipe, pool: int = 2, backward: int | None = None,
          epochs: float = 1.0) -> Recipe:
    """Train a small proxy for `epochs` epochs or PROXY_STEPS steps, whichever is more (timed,
    charged as overhead), then let its losses pick the top 1/`pool` of each draw of `pool` x
    `backward` examples (default: the recipe's micro-batch) for the real model."""
    data = _data(recipe.notes["dataset"])
    name, kw = PROXIES[recipe.notes["model"]]
    small = build_model(name, data, **kw)
    # one epoch, but at least PROXY_STEPS steps: a barely trained proxy picks a class-biased,
    # frozen half of the data (MNIST-1D's one epoch is 16 steps: 72% instead of 97%)
    examples = max(int(epochs * len(data.train)), PROXY_STEPS * 256)
    cfg = TrainConfig(budget=f"{examples}ex", lr=3e-3, micro_batch=256, quiet=True,
                      seed=recipe.config.seed, precision=recipe.config.precision)
    start = time.perf_counter()
    result = train(small, data.train, per_example_cross_entropy, cfg)
    overhead = time.perf_counter() - start
    recipe.overhead_seconds += overhead
    recipe.overhead_flops += result.work["flops"]
    budget = Budget(recipe.config.budget)
    if budget.is_wall_clock:  # the proxy's time comes out of the same wall-clock budget
        recipe.config.budget = seconds_spec(max(1.0, budget.amount - overhead))
    elif budget.unit == "flops":  # ... and its FLOPs out of a FLOPs budget
        recipe.config.budget = f"{max(1.0, budget.amount - result.work['flops']):.6g}flop"
    recipe.notes["proxy"] = {"model": name, **kw, "train_seconds": result.train_seconds,
                             "examples": result.work["examples_backpropagated"],
                             "flops": result.work["flops"], "pool": pool,
                             "epochs": examples / len(data.train)}
    backward = _draw_pool(recipe, pool, backward)
    recipe.hooks.append(SelectiveBackprop("topk", keep=1.0 / pool, prime=0.0, scorer=small,
                                          backward_batch=backward))
    return recipe


@register_method("proxy3", applies=VISION_TASKS)
def proxy3(recipe: Recipe) -> Recipe:
    """`proxy` with a 3x draw: the proxy's top third of each draw is backpropagated."""
    return proxy(recipe, pool=3)


@register_method("proxy-b128", applies=VISION_TASKS)
def proxy_b128(recipe: Recipe) -> Recipe:
    """`proxy` keeping the top 128 of each 256 drawn: twice the steps per example
    backpropagated (the baseline's backward batch is 256)."""
    return proxy(recipe, backward=128)


@register_method("proxy-b64", applies=VISION_TASKS)
def proxy_b64(recipe: Recipe) -> Recipe:
    """`proxy` keeping the top 64 of each 128 drawn: four times the steps per example
    backpropagated."""
    return proxy(recipe, backward=64)


@register_method("baseline-b128", applies=SELECTING)
def baseline_b128(recipe: Recipe) -> Recipe:
    """Plain training with batch 128: the control for `proxy-b128` (how much of its gain is
    the smaller batch rather than the selection)."""
    recipe.config.micro_batch = 128
    return recipe


@register_method("baseline-b64", applies=SELECTING)
def baseline_b64(recipe: Recipe) -> Recipe:
    """Plain training with batch 64: the control for `proxy-b64`."""
    recipe.config.micro_batch = 64
    return recipe


@register_method("proxy-long", applies=VISION_TASKS)
def proxy_long(recipe: Recipe) -> Recipe:
    """`proxy` with a better-trained proxy: 3 epochs (not 1)."""
    return proxy(recipe, epochs=3.0)


register_suite(Suite(
    name="selective", tasks=["fashion-mnist", "mnist1d"],
    methods=["baseline", "sb", "stale-sb", "topk", "proxy", "proxy-b64"], margin=0.5,
    budgets={"fashion-mnist": "150s", "mnist1d": "4s"},
    description="selective backprop variants at the baseline's wall-clock budget"))
