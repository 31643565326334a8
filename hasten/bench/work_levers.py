"""Suites that decide a lever by its quality at reduced work (`hasten.bench.evidence`).

Every arm of these suites is evaluated at the same points of work (every 2% of the
baseline's), on a fixed fifth of the test set, the final evaluation on all of it; a record's
verdict lines (`hasten bench`, `hasten report`) pair each lever at fraction F with the
baseline at full work, seed by seed, and with `baseline@F`, under its plan's status. Both
run on `fashion-10k` (`hasten.bench.vision`: 10,000 Fashion-MNIST training images,
ConvNet-3 16 wide, 20 epochs, batch 128, fp32; `fashion-10k-w32` 32 wide, so that a proxy
16 wide is smaller), in the papers' multi-epoch regime.

  dynprune-work   InfoBatch (Qin et al. 2024) and its controls `random-drop` and
                  `drop-easiest` (`hasten.bench.dynprune`) at 0.6, 0.7 and 0.8 of the
                  baseline's examples; work is examples backpropagated. Each fraction runs
                  with its own prune ratio (`--prune-ratio`), set on the validation twin
                  `fashion-10k-val` so that the share of each epoch trained lands on F: the
                  budget's F of the examples then spans the baseline's 20 epochs.
  selective-work  selective backprop with a trained proxy (`proxy`, `proxy-b64`) and its
                  batch-size control `baseline-b64` (`hasten.bench.selective`) on
                  `fashion-10k-w32` at half the baseline's FLOPs, the proxy's training and
                  scoring forwards included (a FLOPs budget; the proxy's training comes out
                  of it).

Margin: Fashion-MNIST 0.3 points. The `untrained` method (one optimizer step) is the
no-training control that shows the metric can tell a trained model from none.

Where their results are shown: docs/benchmarks.md, "How a lever is decided".
"""

from __future__ import annotations

from typing import Any

import hasten.bench.selective  # noqa: F401  (registers proxy, proxy-b64, baseline-b64)
from hasten.bench.dynprune import InfoBatchOptions
from hasten.bench.evidence import DATA_WORK, STEP_WORK, decision_lines, dense_eval
from hasten.bench.harness import Recipe, Suite, register_method, register_suite

# the fashion-10k-w32 baseline's FLOPs (20 epochs of 10,000 images, forward and backward, as
# the trainer's counter measures them)
SELECTIVE_FLOPS = "2.3670528e12flop"  # 200,000 examples x 11,835,264 FLOPs


@register_method("untrained")
def untrained(recipe: Recipe) -> Recipe:
    """The no-training control: one optimizer step, then the final evaluation."""
    recipe.config.budget = "1steps"
    recipe.config.eval_every = 1.0
    return recipe


def _verdict(counter: str) -> Any:
    def verdict(results: dict[str, Any]) -> tuple[int, list[str]]:
        return 0, decision_lines(results, counter)
    return verdict


FRACTIONS = (0.6, 0.7, 0.8)
register_suite(Suite(
    name="dynprune-work", tasks=["fashion-10k"],
    methods=["baseline", *(f"baseline@{f}" for f in FRACTIONS),
             *(f"{m}@{f}" for f in FRACTIONS for m in ("infobatch", "random-drop",
                                                       "drop-easiest"))],
    margin=0.3, options=InfoBatchOptions, prepare=dense_eval(0.02, 5),
    verdict=_verdict(DATA_WORK),
    description="InfoBatch and its controls decided by quality at 0.6-0.8 of the examples"))
register_suite(Suite(
    name="selective-work", tasks=["fashion-10k-w32"],
    methods=["baseline", "baseline@0.5", "proxy-b64@0.5", "baseline-b64@0.5", "proxy@0.5"],
    margin=0.3, budgets={"fashion-10k-w32": SELECTIVE_FLOPS}, prepare=dense_eval(0.02, 5),
    verdict=_verdict(STEP_WORK),
    description="selective backprop with a proxy, and its batch control, at half the FLOPs"))
