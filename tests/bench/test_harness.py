import subprocess

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten import __version__
from hasten.bench.harness import (
    METHODS,
    SUITES,
    TASKS,
    Recipe,
    Suite,
    code_version,
    plan,
    register_method,
    register_suite,
    register_task,
    run_suite,
    scale_budget,
    split_method,
)
from hasten.bench.report import merge_results
from hasten.core.errors import ConfigError
from hasten.core.trainer import TrainConfig


@pytest.fixture
def tiny_suite():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    data = TensorDataset(x, (x[:, 0] > 0).long())

    @register_task("tiny")
    def tiny(seed: int, quick: bool) -> Recipe:
        torch.manual_seed(seed)
        model = nn.Linear(6, 2)

        def evaluate(m):
            return {"accuracy": 100.0 * (m(x).argmax(1) == data.tensors[1]).float().mean().item()}

        return Recipe(model, data, lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"),
                      evaluate, TrainConfig(budget="50steps", lr=0.05, micro_batch=32))

    @register_method("half-lr")
    def half_lr(recipe: Recipe) -> Recipe:
        recipe.config.lr /= 2
        recipe.overhead_seconds = 1.0
        recipe.overhead_flops = 1e6
        return recipe

    register_suite(Suite("tiny-suite", tasks=["tiny"], methods=["baseline", "half-lr"],
                         margin=1.0, budgets={"tiny": "20steps"},
                         overrides={"eval_every": 0.5}))
    yield
    TASKS.pop("tiny"), METHODS.pop("half-lr"), SUITES.pop("tiny-suite")


def test_plan_interleaves_seeds_tasks_methods(tiny_suite):
    order = plan(SUITES["tiny-suite"], seeds=2)
    assert order == [(0, "tiny", "baseline"), (0, "tiny", "half-lr"),
                     (1, "tiny", "baseline"), (1, "tiny", "half-lr")]
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        plan(SUITES["tiny-suite"], 1, methods=["nope"])
    assert plan(SUITES["tiny-suite"], seeds=2, first_seed=3) == [
        (3, "tiny", "baseline"), (3, "tiny", "half-lr"),
        (4, "tiny", "baseline"), (4, "tiny", "half-lr")]
    with pytest.raises(ConfigError, match="--first-seed must be >= 0"):
        plan(SUITES["tiny-suite"], 1, first_seed=-1)


def test_run_suite_applies_budgets_overrides_and_overhead(tiny_suite):
    results = run_suite("tiny-suite", seeds=2, command="test")
    runs = results["runs"]
    assert [(r["seed"], r["method"]) for r in runs] == [(0, "baseline"), (0, "half-lr"),
                                                         (1, "baseline"), (1, "half-lr")]
    for r in runs:
        assert r["steps"] == 20 and r["budget"] == "20steps"
        assert [c[1]["steps"] for c in r["curve"]] == [10, 20]  # eval_every 0.5
    half, base = runs[1], runs[0]
    assert half["overhead_seconds"] == 1.0
    assert half["curve"][0][0] >= 1.0  # the overhead is charged on the curve
    # ... and its FLOPs on the FLOPs counter (same model and steps as the baseline's)
    assert half["work"]["flops"] == base["work"]["flops"] + 1e6
    assert half["curve"][0][1]["flops"] == base["curve"][0][1]["flops"] + 1e6
    assert half["work"]["examples_backpropagated"] == base["work"]["examples_backpropagated"]
    base_finals = sorted(r["final"] for r in runs if r["method"] == "baseline")
    assert runs[0]["target"] == pytest.approx(sum(base_finals) / 2 - 1.0)
    assert results["command"] == "test" and results["suite"] == "tiny-suite"


def test_method_at_fraction_runs_on_part_of_the_budget(tiny_suite):
    assert split_method("proxy") == ("proxy", 1.0)
    assert split_method("proxy@0.5") == ("proxy", 0.5)
    assert scale_budget("150s", 0.5) == "75s"
    assert scale_budget("100s", 1 / 3) == "33.333s"
    assert scale_budget("25m", 0.5) == "750s"
    assert scale_budget("1000ex", 0.3) == "300ex"
    assert scale_budget("20steps", 0.01) == "1steps"  # never zero
    for bad in ("proxy@0", "proxy@1.5", "proxy@half"):
        with pytest.raises(ConfigError, match="budget fraction after '@' must be in"):
            split_method(bad)
    results = run_suite("tiny-suite", seeds=1, methods=["baseline", "half-lr@0.5"],
                        command="test")
    base, half = results["runs"]
    assert (base["steps"], base["budget"]) == (20, "20steps")
    assert (half["steps"], half["budget"], half["method"]) == (10, "10steps", "half-lr@0.5")
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        plan(SUITES["tiny-suite"], 1, methods=["nope@0.5"])


def test_methods_split_across_parts_merge_against_the_named_baseline(tiny_suite):
    """`baseline=` lets a part without the baseline's runs join the part that has them."""
    whole = run_suite("tiny-suite", seeds=1, command="whole")
    base_part = run_suite("tiny-suite", seeds=1, methods=["baseline"], command="a")
    other = run_suite("tiny-suite", seeds=1, methods=["half-lr"], baseline="baseline",
                      command="b")
    (run,) = other["runs"]
    assert run["baseline"] == "baseline" and run["target"] is None  # no baseline runs here
    merged = merge_results([base_part, other])
    # parts given in any order: the columns follow the suite's method order
    assert [r["method"] for r in merge_results([other, base_part])["runs"]] == [
        "baseline", "half-lr"]
    got = {r["method"]: r for r in merged["runs"]}
    want = {r["method"]: r for r in whole["runs"]}
    for method in ("baseline", "half-lr"):  # wall times differ between runs; work does not
        for key in ("target", "final", "work_to_target", "relative_work"):
            assert got[method][key] == want[method][key], (method, key)
    assert got["baseline"]["relative_time"] == 1.0
    assert got["baseline"]["target"] == pytest.approx(got["baseline"]["final"] - 1.0)
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        run_suite("tiny-suite", seeds=1, methods=["half-lr"], baseline="nope")


def test_results_name_the_code_they_came_from(tmp_path, tiny_suite):
    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    assert code_version(tmp_path) == f"hasten {__version__}"  # not a git checkout
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-qm", "one")
    head = git("rev-parse", "--short", "HEAD").strip()
    assert code_version(tmp_path) == head
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_version(tmp_path) == f"{head} + uncommitted changes"
    assert run_suite("tiny-suite", seeds=1, methods=["baseline"])["code"] == code_version()
