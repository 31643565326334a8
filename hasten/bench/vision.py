"""The vision suite: small image and signal classifiers that train in minutes on a CPU.

Tasks (each a baseline recipe that later methods change):
  digits        scikit-learn's 8x8 digits (embedded), ConvNet (width 32, depth 2)
  mnist1d       MNIST-1D (generated offline), 1-D CNN
  fashion-mnist Fashion-MNIST (IDX files from $HASTEN_DATA), ConvNet-3
  fashion-mnist-val  the same, trained on 55,000 images, scored on 5,000 held out (for tuning)

Quick mode shortens the budgets (and evaluates Fashion-MNIST on a 2,000-image test subset)
so the suite doubles as a smoke test and as `hasten demo`. The step options (`bf16`,
`compile`, the AdamW kernels, ...) apply to any task; `channels-last` to the image tasks.

Results: docs/benchmarks.md, "Vision baselines: the targets every lever must reach" and
"Step options: bf16 and torch.compile pay on a ConvNet, not on a tiny CNN".
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.bench.harness import Recipe, Suite, register_method, register_suite, register_task
from hasten.core.trainer import TrainConfig, shard_bounds, sharded_eval
from hasten.data.vision import VisionData, holdout_split, load_vision
from hasten.levers import apply_levers
from hasten.models.vision import build_model

# tasks whose batches are (x, y) class-labelled examples: the methods that select or reweigh
# examples by their losses apply to these (suites with such tasks add theirs)
CLASSIFICATION_TASKS: set[str] = {"digits", "mnist1d", "fashion-mnist", "fashion-mnist-val"}
VISION_TASKS = frozenset(CLASSIFICATION_TASKS)  # this module's own tasks


def per_example_cross_entropy(model: nn.Module, batch: Any) -> torch.Tensor:
    """Cross-entropy of each example: the per-example loss every method can select on."""
    x, y = batch
    return F.cross_entropy(model(x), y, reduction="none")


def accuracy_on(test: TensorDataset, batch: int = 1000):
    """An evaluate() function: top-1 accuracy in % and mean cross-entropy on `test` (the
    trainer runs it in the run's precision, under no_grad, in eval mode). Under DDP each
    rank scores its share of `test` and the counts are summed (`sharded_eval`), so every
    rank reports the same numbers."""
    x_all, y_all = test.tensors

    def sums(model: nn.Module, rank: int, world_size: int) -> dict[str, float]:
        device = next(model.parameters()).device
        lo, hi = shard_bounds(len(y_all), rank, world_size)
        correct, losses = 0, 0.0
        for i in range(lo, hi, batch):
            j = min(i + batch, hi)
            x, y = x_all[i:j].to(device), y_all[i:j].to(device)
            logits = model(x).float()
            correct += int((logits.argmax(1) == y).sum())
            losses += float(F.cross_entropy(logits, y, reduction="sum"))
        return {"correct": correct, "loss": losses, "count": hi - lo}

    def finish(total: dict[str, float]) -> dict[str, float]:
        return {"accuracy": 100.0 * total["correct"] / total["count"],
                "test_loss": total["loss"] / total["count"]}

    return sharded_eval(sums, finish)


VALIDATION_SIZE = 5000  # training images held out by the "-val" tasks


@cache
def _data(name: str) -> VisionData:
    """A dataset by name; "<name>-val" holds VALIDATION_SIZE training images out as its test
    split (for choosing methods and settings without looking at the test set)."""
    if name.endswith("-val"):
        return holdout_split(_data(name[:-len("-val")]), VALIDATION_SIZE)
    return load_vision(name)


# each model's small proxy for selective backprop (`Recipe.proxy_model`)
PROXIES = {"convnet3": ("convnet3", {"width": 16, "depth": 2}),
           "cnn1d": ("cnn1d", {"channels": 8}), "mlp": ("mlp", {"hidden": (64,)})}


def _recipe(data: VisionData, test: TensorDataset, model: str, config: TrainConfig,
            seed: int, **model_kw: Any) -> Recipe:
    torch.manual_seed(seed)
    net = build_model(model, data, **model_kw)
    name, kw = PROXIES[model]
    return Recipe(model=net, train_data=data.train, loss_fn=per_example_cross_entropy,
                  evaluate=accuracy_on(test), config=config,
                  proxy_model=lambda: build_model(name, data, **kw),
                  notes={"dataset": data.name, "model": model,
                         "train_examples": len(data.train), "test_examples": len(test)})


def _epochs(data: VisionData, epochs: float) -> str:
    return f"{int(epochs * len(data.train))}ex"


@register_task("digits")
def digits(seed: int, quick: bool) -> Recipe:
    data = _data("digits")
    cfg = TrainConfig(budget=_epochs(data, 15 if quick else 40), lr=3e-3, schedule="cosine",
                      schedule_params={"warmup": 0.05}, micro_batch=64, weight_decay=0.05,
                      eval_every=0.1)
    return _recipe(data, data.test, "convnet3", cfg, seed, width=32, depth=2)


@register_task("mnist1d")
def mnist1d(seed: int, quick: bool) -> Recipe:
    data = _data("mnist1d")
    cfg = TrainConfig(budget=_epochs(data, 25 if quick else 60), lr=3e-3, schedule="cosine",
                      schedule_params={"warmup": 0.05}, micro_batch=128, weight_decay=0.05,
                      eval_every=0.05)
    return _recipe(data, data.test, "cnn1d", cfg, seed)


@register_task("fashion-mnist")
def fashion_mnist(seed: int, quick: bool, name: str = "fashion-mnist") -> Recipe:
    data = _data(name)
    test = data.test
    if quick:
        test = TensorDataset(*(t[:2000] for t in test.tensors))
    cfg = TrainConfig(budget=_epochs(data, 0.2 if quick else 4), lr=2e-3, schedule="one-cycle",
                      schedule_params={"peak_at": 0.2}, micro_batch=256, weight_decay=0.05,
                      precision="bf16", eval_every=0.1)
    return _recipe(data, test, "convnet3", cfg, seed)


@register_task("fashion-mnist-val")
def fashion_mnist_val(seed: int, quick: bool) -> Recipe:
    """The fashion-mnist task trained on 55,000 images and scored on the 5,000 held out:
    for choosing a method's settings; report on `fashion-mnist`."""
    return fashion_mnist(seed, quick, "fashion-mnist-val")


@register_method("bf16")
def bf16(recipe: Recipe) -> Recipe:
    """bf16 autocast for forward, backward and evaluation (weights and optimizer stay fp32)."""
    return apply_levers(recipe, ["bf16"])


@register_method("fp32")
def fp32(recipe: Recipe) -> Recipe:
    """Full fp32, no autocast."""
    recipe.config.precision = "fp32"
    return recipe


register_suite(Suite(
    name="vision", tasks=["digits", "mnist1d", "fashion-mnist"], methods=["baseline"],
    margin=0.5, description="baselines of the vision workloads"))
register_suite(Suite(
    name="demo", tasks=["digits", "mnist1d"], methods=["fp32", "bf16"], margin=0.5,
    description="embedded data only; fp32 vs bf16 autocast"))


# -----------------------------------------------------------------------------
# step options: each against fp32 eager, the same recipe otherwise


def _fp32_with(doc: str, lever: str):
    def method(recipe: Recipe) -> Recipe:
        return apply_levers(fp32(recipe), [lever])
    method.__doc__ = doc
    return method


register_method("channels-last")(
    _fp32_with("fp32 with NHWC memory format for images and the model", "channels-last"))
register_method("compile")(_fp32_with("fp32 with torch.compile", "compile"))
register_method("foreach-adamw")(_fp32_with("fp32, multi-tensor AdamW", "adamw:impl=foreach"))
register_method("fused-adamw")(_fp32_with("fp32, fused AdamW kernel", "adamw:impl=fused"))
register_method("for-loop-adamw")(_fp32_with("fp32, AdamW one tensor at a time",
                                             "adamw:impl=for-loop"))
register_suite(Suite(
    name="steps", tasks=["fashion-mnist", "mnist1d"],
    methods=["fp32", "bf16", "channels-last", "compile", "for-loop-adamw", "foreach-adamw",
             "fused-adamw"],
    margin=0.5, budgets={"fashion-mnist": "30000ex", "mnist1d": "100000ex"},
    overrides={"eval_every": 0.25},
    description="faster steps: each option alone against fp32 eager"))
