"""A `Recipe` checks its fields when it is made, so a task of one's own with a wrong field
fails in one line where it is written, not deep inside a run."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from hasten import Recipe, TrainConfig
from hasten.core.errors import ConfigError

X = torch.zeros(8, 2)
DATA = TensorDataset(X, torch.zeros(8, dtype=torch.long))


def loss(model, batch):
    return torch.zeros(len(batch[0]))


def evaluate(model):
    return {"accuracy": 0.0}


@pytest.mark.parametrize("change, message", [
    ({"train_data": {"x": X}}, "Recipe: train_data must be a dataset, not a dict of columns "
                               "(wrap them: TensorDataset(x, y), or datasets.Dataset."
                               "from_dict(columns)), got a dict with keys 'x'"),
    ({"model": None}, "Recipe: model must be a torch nn.Module, got None"),
    ({"config": "2steps"}, "Recipe: config must be a TrainConfig, got the string '2steps'"),
    ({"config": TrainConfig(micro_batch="64")}, "Recipe: micro_batch must be an integer, got "
                                                "the string '64'"),
    ({"hooks": None}, "Recipe: hooks must be a list of hooks (subclasses of hasten.core."
                      "trainer.Hook), got None"),
    ({"sampler": [0, 1]}, "Recipe: sampler must be a sampler with sample(n, progress), "
                          "state_dict() and load_state_dict() (e.g. ShuffledSampler) or None, "
                          "got a list of 2 item(s)"),
    ({"overhead_seconds": -1.0}, "Recipe: overhead_seconds must be a finite number >= 0, got "
                                 "-1.0 (float)"),
    ({"notes": None}, "Recipe: notes must be a dict, got None"),
])
def test_a_recipe_checks_its_fields_when_made(change, message):
    fields = {"model": nn.Linear(2, 2), "train_data": DATA, "loss_fn": loss,
              "evaluate": evaluate, "config": TrainConfig(budget="2steps"), **change}
    with pytest.raises(ConfigError) as err:
        Recipe(**fields)
    text = str(err.value)
    assert text.splitlines() == [text] and text == message


def test_a_recipe_may_leave_data_and_loss_to_a_method():
    recipe = Recipe(nn.Linear(2, 2), None, None, None, TrainConfig())
    assert recipe.train_data is None and recipe.hooks == []
