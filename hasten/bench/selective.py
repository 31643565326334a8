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
reported on `fashion-mnist` (the 10,000 test images). Each method is a lever list
(`hasten.levers.selective`): the selection methods apply to any task with a per-example loss,
the proxy methods to tasks that declare a small model (`Recipe.proxy_model`).

Paper: Jiang et al., "Accelerating Deep Learning by Focusing on the Biggest Losers" (2019).
Results: docs/benchmarks.md, "Selective backprop: at half the FLOPs a trained proxy gains what a
smaller batch gains; the paper's scoring forward does not pay".
"""

from __future__ import annotations

from hasten.bench.harness import Recipe, Suite, register_method, register_suite
from hasten.levers import apply_levers

PROXY_LR = 3e-3  # the proxy's own learning rate on the vision tasks (AdamW's usual for them)
PROXY_STEPS = 200  # the proxy trains at least this many steps of 256 (sb-proxy's min_steps)


def _levers(doc: str, *levers: str):
    def method(recipe: Recipe) -> Recipe:
        return apply_levers(recipe, list(levers))
    method.__doc__ = doc
    return method


def _declares_a_proxy(task: str) -> bool:
    """The tasks whose recipes declare a small model (vision, SST-2, characters); the
    translation tasks declare none."""
    return not task.startswith("mt-")


PROXY = f"sb-proxy:lr={PROXY_LR}"
for _name, _doc, _levers_of in (
    ("sb", "Selective backprop: keep each example with probability percentile(loss) ** 3.",
     ["sb"]),
    ("stale-sb", "Selective backprop reusing each example's scored loss for 3 epochs.",
     ["stale-sb"]),
    ("topk", "Draw twice the batch, backpropagate the half with the highest losses.",
     ["sb-topk"]),
    ("proxy", "A small proxy trained first (one epoch, >= 200 steps; charged) picks the top "
     "half of each draw of twice the batch.", [PROXY]),
    ("proxy3", "`proxy` with a 3x draw: the proxy's top third is backpropagated.",
     [PROXY + ",pool=3"]),
    ("proxy-b128", "`proxy` keeping the top 128 of each 256 drawn: twice the steps per "
     "example backpropagated (the baseline's backward batch is 256).",
     ["micro-batch:size=128", PROXY]),
    ("proxy-b64", "`proxy` keeping the top 64 of each 128 drawn: four times the steps per "
     "example backpropagated.", ["micro-batch:size=64", PROXY]),
    ("proxy-long", "`proxy` with a better-trained proxy: 3 epochs (not 1).",
     [PROXY + ",epochs=3"]),
    ("baseline-b128", "Plain training with batch 128: the control for `proxy-b128` (how much "
     "of its gain is the smaller batch rather than the selection).", ["micro-batch:size=128"]),
    ("baseline-b64", "Plain training with batch 64: the control for `proxy-b64`.",
     ["micro-batch:size=64"]),
):
    _proxied = any(lever.startswith("sb-proxy") for lever in _levers_of)
    register_method(_name, applies=_declares_a_proxy if _proxied else None)(
        _levers(_doc, *_levers_of))


register_suite(Suite(
    name="selective", tasks=["fashion-mnist", "mnist1d"],
    methods=["baseline", "sb", "stale-sb", "topk", "proxy", "proxy-b64"], margin=0.5,
    budgets={"fashion-mnist": "150s", "mnist1d": "4s"},
    description="selective backprop variants at the baseline's wall-clock budget"))
