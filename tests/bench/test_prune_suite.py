"""The prune suite's methods: subset sizes, budgets in epochs of the subset, scoring charged."""

import pytest

import hasten.bench.prune as prune
from hasten.bench.harness import SUITES, run_one


def test_suite_lists_every_scorer_at_every_keep():
    methods = SUITES["prune"].methods
    assert methods[0] == "baseline" and len(methods) == 1 + 7 * 5
    assert {"random-0.1", "el2n-0.5", "forgetting-0.9", "aum-0.3", "ccs-0.1",
            "prototypes-0.7", "ccs-el2n-0.5"} <= set(methods)


@pytest.mark.parametrize("method,keep", [("random-0.3", 0.3), ("el2n-0.1", 0.1),
                                         ("ccs-0.1", 0.1)])
def test_pruned_run_trains_its_subset_for_the_same_epochs(method, keep):
    run, _ = run_one("fashion-prune", method, seed=0, quick=True)
    kept = round(keep * 60000)
    assert run["notes"]["kept"] == kept
    epochs = run["notes"]["epochs"]
    assert run["budget"] == f"{epochs * kept}ex"
    assert run["work"]["examples_backpropagated"] >= epochs * kept
    if method.startswith("random"):
        assert run["overhead_seconds"] == 0.0
    else:  # the scorer's time is charged on the curve
        assert run["overhead_seconds"] == run["notes"]["scoring_seconds"] > 0
        assert run["curve"][0][0] >= run["overhead_seconds"]


def test_ccs_reuses_the_aum_scores_of_the_same_seed():
    a = prune.scores_for("aum", 0, True, "fashion-prune")
    assert prune.scores_for("aum", 0, True) is a
    assert a.higher_is == "easier" and len(a) == 60000
