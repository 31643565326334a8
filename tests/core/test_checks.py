"""The public entry points of the core check their arguments up front: `train`, `Budget`,
`budget_lr`, `ShuffledSampler` and the model-folder check answer a wrong type or shape with
one ConfigError (or CheckpointError) line naming the argument, what it got and what it
accepts, before any work."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import TensorDataset

from hasten import Budget, TrainConfig, budget_lr, train
from hasten.core.checks import check_fields, check_model_folder, described
from hasten.core.errors import CheckpointError, ConfigError
from hasten.core.sampling import ShuffledSampler
from hasten.core.trainer import Hook

X = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
DATA = TensorDataset(X, (X[:, 0] > 0).long())


def loss(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text.splitlines() == [text]
    return text


class Counting(Hook):
    def __init__(self):
        self.starts = 0

    def on_start(self, state):
        self.starts += 1


@pytest.mark.parametrize("change, message", [
    ({"train_data": {"x": X, "y": DATA.tensors[1]}},
     "train: train_data must be a dataset, not a dict of columns (wrap them: TensorDataset(x, "
     "y), or datasets.Dataset.from_dict(columns)), got a dict with keys 'x', 'y'"),
    ({"train_data": X}, "train: train_data must be a dataset, not one tensor or array (pair "
                        "inputs and targets: TensorDataset(x, y)), got a 2-d tensor of shape "
                        "[32, 3]"),
    ({"train_data": "data.npz"}, "train: train_data must be a dataset (len() and integer "
                                 "indexing, e.g. TensorDataset(x, y)), got the string "
                                 "'data.npz'"),
    ({"train_data": TensorDataset(X[:0])},
     "train: train_data must be a non-empty dataset, got a TensorDataset of 0 examples"),
    ({"model": "resnet"}, "train: model must be an nn.Module or a Recipe, got the string 'resnet'"),
    ({"loss_fn": "cross_entropy"}, "train: loss_fn must be a function (model, batch) -> one "
                                   "loss per example, got the string 'cross_entropy'"),
    ({"config": {"budget": "2steps"}}, "train: config must be a TrainConfig (e.g. "
                                       "TrainConfig(budget='90s')), got a dict with keys "
                                       "'budget'"),
    ({"config": TrainConfig(budget="2steps", lr="0.1")},
     "train: lr must be a finite number, got the string '0.1'"),
    ({"config": TrainConfig(budget="2steps", micro_batch=8.0)},
     "train: micro_batch must be an integer, got 8.0 (float)"),
    ({"config": TrainConfig(budget=90)}, "train: budget must be a string, got 90 (int)"),
    ({"evaluate": 1.0}, "train: evaluate must be a function (model) -> {metric: value} or "
                        "None, got 1.0 (float)"),
    ({"hooks": Counting()}, "train: hooks must be a list of hooks (subclasses of "
                            "hasten.core.trainer.Hook), got a Counting"),
    ({"hooks": [object()]}, "train: hooks[0] must be a hook (a subclass of hasten.core.trainer"
                            ".Hook; this one lacks on_start, on_batch, on_loss, on_step_end, "
                            "on_eval, state_dict, load_state_dict), got an object"),
    ({"sampler": range(32)}, "train: sampler must be a sampler with sample(n, progress), "
                             "state_dict() and load_state_dict() (e.g. ShuffledSampler) or "
                             "None, got a range of 32 examples"),
    ({"collate_fn": "pad"}, "train: collate_fn must be a function (list of items) -> batch or "
                            "None, got the string 'pad'"),
])
def test_train_checks_every_argument_before_any_work(change, message):
    hook = Counting()
    model = nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    args = {"model": model, "train_data": DATA, "loss_fn": loss,
            "config": TrainConfig(budget="2steps", micro_batch=8), "hooks": [hook], **change}
    with pytest.raises(ConfigError) as err:
        train(**args)
    assert one_line(err) == message
    assert hook.starts == 0  # nothing started
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_train_still_trains_on_what_it_accepts():
    result = train(nn.Linear(3, 2), list(zip(X, DATA.tensors[1], strict=True)), loss,
                   TrainConfig(budget="2steps", micro_batch=8, quiet=True), hooks=(Counting(),))
    assert result.steps == 2


@pytest.mark.parametrize("spec, message", [
    (45, "Budget: spec must be a string such as '90s', '20m', '2000steps', '1e6ex', '3e9tok' "
         "or '1e15flop', or a (unit, amount) pair, got 45 (int) (a number needs its unit: "
         "Budget('45steps') or Budget('45s'))"),
    (None, "Budget: spec must be a string such as '90s', '20m', '2000steps', '1e6ex', '3e9tok' "
           "or '1e15flop', or a (unit, amount) pair, got None (NoneType)"),
    ("0.5steps", "budget '0.5steps' counts whole optimizer steps: use a whole number, e.g. "
                 "1steps"),
    ("-5m", "budget '-5m' must be positive: a number above 0 and a unit, e.g. 90s, 20m, "
            "2000steps"),
    ("-5s", "budget '-5s' must be positive: a number above 0 and a unit, e.g. 90s, 20m, "
            "2000steps"),
    ("0.5ex", "budget '0.5ex' is less than one example: use at least 1ex"),
    (("steps", 2.5), "a steps budget counts whole steps, got 2.5"),
    (("steps", "2"), "Budget: spec must be a string such as '90s', '20m', '2000steps', '1e6ex', "
                     "'3e9tok' or '1e15flop', or a (unit, amount) pair, got ('steps', '2') "
                     "(tuple)"),
])
def test_budget_says_what_a_budget_is(spec, message):
    with pytest.raises(ConfigError) as err:
        Budget(spec)
    assert one_line(err) == message


def test_budget_keeps_what_it_took():
    assert Budget("1.5h").amount == 5400.0 and Budget("2steps").amount == 2.0
    assert Budget(("steps", 3)).spec == "3steps" and Budget("+20s").amount == 20.0


def _optimizer():
    return torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)


@pytest.mark.parametrize("args, kwargs, message", [
    ((_optimizer(), "2s"), {}, "budget_lr: budget must be a Budget, the one the loop counts its "
                               "steps in (Budget('2s'), shared with the loop), got the string "
                               "'2s'"),
    ((None, Budget("2s")), {}, "budget_lr: optimizer must be a torch optimizer (e.g. "
                               "torch.optim.AdamW(...)), got None"),
    ((_optimizer(), Budget("2s"), 3), {}, "budget_lr: schedule must be a schedule name "
                                          "(constant, linear, cosine, one-cycle, triangle, "
                                          "step), got 3 (int)"),
    ((_optimizer(), Budget("2s")), {"warmup": "5%"}, "budget_lr: warmup must be a finite "
                                                     "number, got the string '5%'"),
    ((_optimizer(), Budget("2s")), {"projected": "yes"}, "budget_lr: projected must be True or "
                                                         "False, got the string 'yes'"),
])
def test_budget_lr_checks_its_arguments(args, kwargs, message):
    with pytest.raises(ConfigError) as err:
        budget_lr(*args, **kwargs)
    assert one_line(err) == message


@pytest.mark.parametrize("args, message", [
    ((DATA,), "ShuffledSampler: size must be the number of examples, an int >= 1 (pass "
              "len(dataset)), got a TensorDataset of 32 examples"),
    ((0,), "ShuffledSampler: size must be the number of examples, an int >= 1, got 0 (int)"),
    ((32.0,), "ShuffledSampler: size must be the number of examples, an int >= 1, got 32.0 "
              "(float)"),
    ((32, "0"), "ShuffledSampler: seed must be an integer, got the string '0'"),
    ((32, 0, 2, 2), "ShuffledSampler: rank must be an integer in [0, 1], got 2 (int)"),
    ((32, 0, 0, 0), "ShuffledSampler: world_size must be an integer >= 1, got 0 (int)"),
])
def test_shuffled_sampler_takes_a_size_not_a_dataset(args, message):
    with pytest.raises(ConfigError) as err:
        ShuffledSampler(*args)
    assert one_line(err) == message


def test_fields_of_a_config_hold_their_types():
    check_fields("here", TrainConfig(budget="2steps", device=None, clip=None, lr=1))
    with pytest.raises(ConfigError, match=r"^here: clip must be a finite number or None, got "
                                          r"the string 'no'$"):
        check_fields("here", TrainConfig(clip="no"))
    with pytest.raises(ConfigError, match=r"^here: quiet must be True or False, got 1 \(int\)$"):
        check_fields("here", TrainConfig(quiet=1))


def test_described_is_short_and_says_what_a_value_is():
    assert described(torch.tensor(1.0)) == "a 0-d tensor (one number)"
    assert described("x" * 100) == f"the string '{'x' * 37}...'"
    assert described({}) == "an empty dict"
    assert described([1, 2]) == "a list of 2 item(s)"
    assert described(object()) == "an object"


# --- model folders -------------------------------------------------------------------------


def _folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    save_file({"w": torch.zeros(32, 32)}, str(folder / "model.safetensors"))
    return folder


def test_a_good_model_folder_passes(tmp_path):
    folder = _folder(tmp_path)
    assert check_model_folder(folder) == folder


@pytest.mark.parametrize("damage, fragment", [
    (lambda f: (f / "model.safetensors").write_bytes(os.urandom(300)),
     "model.safetensors is damaged (garbage or cut short: "),
    (lambda f: (f / "model.safetensors").write_bytes(
        (f / "model.safetensors").read_bytes()[:-100]),
     "model.safetensors is damaged (garbage or cut short: "),
    (lambda f: (f / "model.safetensors").write_bytes(b""),
     "model.safetensors is damaged (garbage or cut short: "),
    (lambda f: (f / "tokenizer.json").write_bytes(b"\xff\xfe{"), "tokenizer.json is damaged "
                                                                 "(not JSON: "),
    (lambda f: (f / "config.json").unlink(), "no config.json (not a transformers model folder)"),
])
def test_a_damaged_model_folder_is_one_line(tmp_path, damage, fragment):
    folder = _folder(tmp_path)
    damage(folder)
    with pytest.raises(CheckpointError) as err:
        check_model_folder(folder)
    assert fragment in one_line(err)


def test_a_missing_model_folder_is_one_line(tmp_path):
    with pytest.raises(CheckpointError) as err:
        check_model_folder(tmp_path / "nowhere")
    assert one_line(err) == f"model folder not found: {tmp_path / 'nowhere'}"
