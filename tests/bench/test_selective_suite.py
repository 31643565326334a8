"""The selective suite's proxy variants: what each changes in the recipe, and a short run."""

from __future__ import annotations

import hasten.bench.selective  # noqa: F401  (registers the methods)
from hasten.bench.harness import METHODS, TASKS, run_one
from hasten.bench.selective import PROXY_STEPS
from hasten.steps.selective_backprop import SelectiveBackprop


def _apply(method: str):
    recipe = TASKS["mnist1d"](0, True)
    recipe.config.budget = "1000ex"
    return METHODS[method](recipe)


def _hook(recipe) -> SelectiveBackprop:
    # each lever's hooks are timed for its cost; the selection hook is inside
    (hook,) = [h.hook for h in recipe.hooks if isinstance(getattr(h, "hook", h),
                                                           SelectiveBackprop)]
    return hook


def test_proxy_draws_twice_the_backward_batch():
    recipe = _apply("proxy")
    assert recipe.config.micro_batch == 256 and _hook(recipe).backward_batch == 128
    assert _hook(recipe).keep == 0.5 and recipe.notes["proxy"]["pool"] == 2


def test_proxy_b128_keeps_128_of_256():
    recipe = _apply("proxy-b128")
    assert recipe.config.micro_batch == 256 and _hook(recipe).backward_batch == 128
    assert _hook(recipe).keep == 0.5


def test_proxy_long_trains_the_proxy_three_epochs_with_the_step_floor():
    recipe = _apply("proxy-long")
    n = recipe.notes["train_examples"]
    expected = max(3 * n, PROXY_STEPS * 256)
    assert recipe.notes["proxy"]["examples"] == expected
    assert recipe.notes["proxy"]["epochs"] == expected / n
    assert recipe.overhead_seconds > 0 and recipe.overhead_flops > 0


def test_proxy_run_backprops_full_batches_of_the_backward_size():
    run, _ = run_one("mnist1d", "proxy-b128", 0, quick=True, budget="2560ex")
    work = run["work"]
    assert work["examples_backpropagated"] == 128 * work["steps"]
    assert work["examples_forwarded"] >= 2 * work["examples_backpropagated"]


def test_baseline_b128_is_plain_training_at_batch_128():
    recipe = _apply("baseline-b128")
    assert recipe.config.micro_batch == 128 and recipe.hooks == []


def test_proxy_b64_and_its_control():
    recipe = _apply("proxy-b64")
    assert recipe.config.micro_batch == 128 and _hook(recipe).backward_batch == 64
    control = _apply("baseline-b64")
    assert control.config.micro_batch == 64 and control.hooks == []
