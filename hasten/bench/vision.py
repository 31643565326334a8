"""The vision suite: small image and signal classifiers that train in minutes on a CPU.

Tasks (each a baseline recipe that later methods change):
  digits        scikit-learn's 8x8 digits (embedded), ConvNet (width 32, depth 2)
  mnist1d       MNIST-1D (generated offline), 1-D CNN
  fashion-mnist Fashion-MNIST (IDX files from $HASTEN_DATA), ConvNet-3
  fashion-mnist-val  the same, trained on 55,000 images, scored on 5,000 held out (for tuning)
  fashion-10k   10,000 of Fashion-MNIST's training images, ConvNet-3 (16 wide), 20 epochs, in
                fp32 (the decisions of `hasten.bench.work_levers` run here); fashion-10k-w32
                the same 32 wide (room for a smaller proxy); "-val": their validation twins

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
from hasten.core.paths import data_root
from hasten.core.trainer import TrainConfig, shard_bounds, sharded_eval
from hasten.data.vision import VisionData, holdout_split, load_vision, training_subset
from hasten.levers import apply_levers
from hasten.models.vision import build_model

# tasks whose batches are (x, y) class-labelled examples: the methods that select or reweigh
# examples by their losses apply to these (suites with such tasks add theirs)
CLASSIFICATION_TASKS: set[str] = {"digits", "mnist1d", "fashion-mnist", "fashion-mnist-val",
                                  "fashion-10k", "fashion-10k-val", "fashion-10k-w32",
                                  "fashion-10k-w32-val"}
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
SUBSET_SIZE = 10_000  # training images kept by the "-10k" sets


def _data(name: str) -> VisionData:
    """A dataset by name; "<name>-val" holds VALIDATION_SIZE training images out as its test
    split (for choosing methods and settings without looking at the test set); "<name>-10k"
    keeps SUBSET_SIZE of its training images (a fixed draw), the same test split. Loaded once
    per process and data folder (`HASTEN_DATA`)."""
    return _data_from(name, str(data_root()))


@cache
def _data_from(name: str, root: str) -> VisionData:
    if name.endswith("-val"):
        return holdout_split(_data(name[:-len("-val")]), VALIDATION_SIZE)
    if name.endswith("-10k"):
        return training_subset(_data(name[:-len("-10k")]), SUBSET_SIZE)
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
    """sklearn's 8x8 digits, a ConvNet-3 (width 32, depth 2), 40 epochs (quick: 15)."""
    data = _data("digits")
    cfg = TrainConfig(budget=_epochs(data, 15 if quick else 40), lr=3e-3, schedule="cosine",
                      schedule_params={"warmup": 0.05}, micro_batch=64, weight_decay=0.05,
                      eval_every=0.1)
    return _recipe(data, data.test, "convnet3", cfg, seed, width=32, depth=2)


@register_task("mnist1d")
def mnist1d(seed: int, quick: bool) -> Recipe:
    """MNIST-1D (40-point signals), a 1-d CNN, 60 epochs (quick: 25)."""
    data = _data("mnist1d")
    cfg = TrainConfig(budget=_epochs(data, 25 if quick else 60), lr=3e-3, schedule="cosine",
                      schedule_params={"warmup": 0.05}, micro_batch=128, weight_decay=0.05,
                      eval_every=0.05)
    return _recipe(data, data.test, "cnn1d", cfg, seed)


@register_task("fashion-mnist")
def fashion_mnist(seed: int, quick: bool, name: str = "fashion-mnist") -> Recipe:
    """Fashion-MNIST, ConvNet-3, 4 epochs in bf16, one-cycle (quick: 0.2 epochs, 2,000 test
    images)."""
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


def _fashion_10k(seed: int, quick: bool, name: str, width: int) -> Recipe:
    """10,000 Fashion-MNIST training images, ConvNet-3 (`width` wide, 2 blocks), 20 epochs
    (quick: 2, scored on 2,000 test images), fp32: bf16 has no hardware support on this
    machine's CPU and costs several times fp32 there."""
    data = _data(name)
    test = data.test if not quick else TensorDataset(*(t[:2000] for t in data.test.tensors))
    cfg = TrainConfig(budget=_epochs(data, 2 if quick else 20), lr=2e-3, schedule="one-cycle",
                      schedule_params={"peak_at": 0.2}, micro_batch=128, weight_decay=0.05,
                      precision="fp32", eval_every=0.02)
    recipe = _recipe(data, test, "convnet3", cfg, seed, width=width, depth=2)
    recipe.notes["width"] = width
    recipe.notes["val_task"] = "fashion-10k" + ("-w32" if width == 32 else "") + "-val"
    return recipe


def _ten_k_task(source: str, width: int, doc: str) -> Any:
    def task(seed: int, quick: bool) -> Recipe:
        return _fashion_10k(seed, quick, source, width)
    task.__doc__ = doc
    return task


for _name, _source, _width, _doc in (
        ("fashion-10k", "fashion-mnist-10k", 16, "10,000 Fashion-MNIST training images, "
         "ConvNet-3 16 wide, 20 epochs, fp32, scored on the 10,000 test images"),
        ("fashion-10k-val", "fashion-mnist-val-10k", 16, "fashion-10k's validation twin: "
         "10,000 of fashion-mnist-val's 55,000 images, scored on the 5,000 it holds out"),
        ("fashion-10k-w32", "fashion-mnist-10k", 32, "fashion-10k with ConvNet-3 32 wide"),
        ("fashion-10k-w32-val", "fashion-mnist-val-10k", 32, "fashion-10k-val with "
         "ConvNet-3 32 wide")):
    register_task(_name)(_ten_k_task(_source, _width, _doc))


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
