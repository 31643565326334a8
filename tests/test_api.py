"""The top-level API stays importable as `from hasten import ...`, and `import hasten` is light."""

import subprocess
import sys

import pytest
from conftest import ROOT

import hasten


def test_stable_names_are_the_implementations():
    from hasten import Budget, Recipe, TrainConfig, budget_lr, train, tune
    from hasten.bench.harness import Recipe as HarnessRecipe
    from hasten.core.budget import Budget as CoreBudget
    from hasten.core.recipe import Recipe as CoreRecipe
    from hasten.core.schedules import budget_lr as schedules_budget_lr
    from hasten.core.trainer import TrainConfig as CoreConfig
    from hasten.levers.run import train as lever_train
    from hasten.tuning.tuner import tune as tuner

    assert (Budget, Recipe, TrainConfig, budget_lr, train, tune) == (
        CoreBudget, CoreRecipe, CoreConfig, schedules_budget_lr, lever_train, tuner)
    assert Recipe is HarnessRecipe  # where it used to live, it still is
    assert set(hasten.__all__) <= set(dir(hasten))


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="module 'hasten' has no attribute 'Trainer'"):
        hasten.Trainer  # noqa: B018


def test_import_hasten_loads_no_torch_and_keeps_the_version():
    code = "import hasten, sys; print('torch' in sys.modules, hasten.__version__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT)}, timeout=120, check=True)
    version = (ROOT / "pyproject.toml").read_text().split('version = "', 1)[1].split('"')[0]
    assert out.stdout.split() == ["False", version]
