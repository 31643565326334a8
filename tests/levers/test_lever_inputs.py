"""The lever adapters check what they are given when they are built: one ConfigError line
naming the adapter, the argument, what it got and what it accepts (the HF and Lightning
callbacks, LeverLoop, the lever list itself)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core.budget import Budget
from hasten.core.errors import ConfigError
from hasten.integrations.hf_levers import HastenHFCallback
from hasten.integrations.lightning_levers import HastenLightningCallback
from hasten.levers import parse_levers
from hasten.levers.loop import LeverLoop

DATA = TensorDataset(torch.randn(16, 3), torch.zeros(16, dtype=torch.long))


def loss(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"budget": 5}, "HastenHFCallback: budget must be a Budget or its spec, e.g. '20m', "
                    "'2000steps', '1e6ex', got 5 (int)"),
    ({"levers": [3]}, "a lever is a Lever or a spec string, got int"),
    ({"levers": ["nope"]}, "unknown lever 'nope'"),
    ({"per_example_loss": 3}, "HastenHFCallback: per_example_loss must be a function (model, "
                              "inputs) -> one loss per example or None, got 3 (int)"),
    ({"batch_size": 0}, "HastenHFCallback: batch_size must be an integer >= 1 or None, got 0"),
    ({"eval_every": 2}, "HastenHFCallback: eval_every must be a finite number in (0, 1] or "
                        "None, got 2 (int)"),
    ({"log_every": "a"}, "HastenHFCallback: log_every must be a finite number in (0, 1] or "
                         "None, got the string 'a'"),
    ({"difficulty": "x"}, "HastenHFCallback: difficulty must be one difficulty per training "
                          "example: a non-empty 1-d list, array or tensor of finite numbers"),
    ({"proxy_model": 3}, "HastenHFCallback: proxy_model must be a function () -> a fresh small "
                         "model or None, got 3 (int)"),
    ({"seed": 1.5}, "HastenHFCallback: seed must be an integer or None, got 1.5"),
])
def test_the_hf_callback_checks_its_arguments(kwargs, message):
    args = {"budget": "1m", "levers": ["sb"], **kwargs}
    with pytest.raises(ConfigError) as err:
        HastenHFCallback(args.pop("budget"), args.pop("levers"), **args)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"budget": 5}, "HastenLightningCallback: budget must be a Budget or its spec"),
    ({"loss_fn": None}, "HastenLightningCallback: levers choose and weight examples by their "
                        "losses: give loss_fn=(module, batch) -> one loss per example"),
    ({"loss_fn": "ce"}, "HastenLightningCallback: loss_fn must be a function (module, batch) "
                        "-> one loss per example or None, got the string 'ce'"),
    ({"batch_size": True}, "HastenLightningCallback: batch_size must be an integer >= 1"),
    ({"save_every": 0}, "HastenLightningCallback: save_every must be a finite number in (0, 1]"),
    ({"difficulty": [[1.0, 2.0]]}, "HastenLightningCallback: difficulty must be one difficulty "
                                   "per training example"),
    ({"checkpoint_dir": 7}, "HastenLightningCallback: checkpoint_dir must be a folder path, "
                            "got 7 (int)"),
])
def test_the_lightning_callback_checks_its_arguments(kwargs, message):
    args = {"budget": "1m", "levers": ["sb"], "loss_fn": loss, **kwargs}
    with pytest.raises(ConfigError) as err:
        HastenLightningCallback(args.pop("budget"), args.pop("levers"), **args)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"data": {"x": 1}}, "LeverLoop: data must be a dataset, not a dict of columns"),
    ({"budget": "1m"}, "LeverLoop: budget must be a hasten Budget, got str"),
    ({"difficulty": torch.ones(4, 2)}, "LeverLoop: difficulty must be one difficulty per "
                                       "training example"),
    ({"proxy_model": nn.Linear(3, 2)}, "LeverLoop: proxy_model must be a function () -> a "
                                       "fresh small model (e.g. lambda: SmallNet()), not a "
                                       "model, got a Linear"),
    ({"seed": "0"}, "LeverLoop: seed must be an integer or None, got the string '0'"),
])
def test_the_plain_loop_driver_checks_its_arguments(kwargs, message):
    args = {"levers": ["sb"], "data": DATA, "loss_fn": loss, "model": nn.Linear(3, 2),
            "budget": Budget("4steps"), "batch_size": 4, **kwargs}
    with pytest.raises(ConfigError) as err:
        LeverLoop(args.pop("levers"), args.pop("data"), args.pop("loss_fn"), args.pop("model"),
                  args.pop("budget"), args.pop("batch_size"), **args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_lever_list_of_the_wrong_kind_is_one_line():
    for bad, message in ((5, "levers must be a list of levers or spec strings, got int"),
                         ("infobatch:prune=2", "infobatch: prune must be in [0, 1), got 2.0")):
        with pytest.raises(ConfigError, match=r"^" + message.replace("(", r"\(").replace(
                ")", r"\)").replace("[", r"\[")):
            parse_levers(bad)
