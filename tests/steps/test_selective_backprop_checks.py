"""Selective backprop's functions and hook check their arguments first: a scalar loss (the
batch's mean, not one loss per example) is one ConfigError line saying so."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hasten.core.errors import ConfigError
from hasten.steps.selective_backprop import (
    LossHistory,
    SelectiveBackprop,
    select_biggest_losers,
    top_k_mask,
)

SCALAR = ("one loss per example, a non-empty 1-d tensor of numbers (compute the loss with "
          "reduction='none'), got a 0-d tensor (one number)")


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text.splitlines() == [text]
    return text


@pytest.mark.parametrize("fn, args, message", [
    (top_k_mask, (torch.tensor(0.7), 0.5), f"top_k_mask: losses must be {SCALAR}"),
    (top_k_mask, ([0.1, 0.2], 0.5), "top_k_mask: losses must be one loss per example, a "
                                    "non-empty 1-d tensor of numbers, got a list of 2 item(s)"),
    (top_k_mask, (torch.ones(4, 2), 0.5), "top_k_mask: losses must be one loss per example, a "
                                          "non-empty 1-d tensor of numbers, got a 2-d tensor "
                                          "of shape [4, 2]"),
    (top_k_mask, (torch.ones(4), 0), "top_k_mask: keep must be a finite number in (0, 1], got "
                                     "0 (int)"),
    (select_biggest_losers, (torch.tensor(0.7), LossHistory()),
     f"select_biggest_losers: losses must be {SCALAR}"),
    (select_biggest_losers, (torch.ones(4), 1024), "select_biggest_losers: history must be a "
                                                   "LossHistory (e.g. LossHistory(1024)), got "
                                                   "1024 (int)"),
    (select_biggest_losers, (torch.ones(4), LossHistory(), -1.0),
     "select_biggest_losers: beta must be a finite number > 0, got -1.0 (float)"),
    (select_biggest_losers, (torch.ones(4), LossHistory(), 3.0, 0.0, 7),
     "select_biggest_losers: generator must be a torch.Generator or None, got 7 (int)"),
    (LossHistory, ("1024",), "LossHistory: size must be an integer >= 1, got the string "
                             "'1024'"),
])
def test_selection_functions_check_their_arguments(fn, args, message):
    with pytest.raises(ConfigError) as err:
        fn(*args)
    assert one_line(err) == message


def test_a_scalar_loss_leaves_the_history_untouched():
    history = LossHistory(8)
    with pytest.raises(ConfigError):
        select_biggest_losers(torch.tensor(0.7), history)
    assert len(history.values) == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"selector": "top-k"}, "SelectiveBackprop: selector must be one of 'sb', 'topk', got the "
                            "string 'top-k'"),
    ({"keep": 1.5}, "SelectiveBackprop: keep must be a finite number in (0, 1], got 1.5 "
                    "(float)"),
    ({"staleness": 1.0}, "SelectiveBackprop: staleness must be an integer >= 0, got 1.0 "
                         "(float)"),
    ({"scorer": lambda x: x}, "SelectiveBackprop: scorer must be a torch nn.Module or None, "
                              "got a function"),
    ({"backward_batch": 0}, "SelectiveBackprop: backward_batch must be an integer >= 1 or "
                            "None, got 0 (int)"),
])
def test_the_hook_checks_its_arguments(kwargs, message):
    with pytest.raises(ConfigError) as err:
        SelectiveBackprop(**kwargs)
    assert one_line(err) == message


def test_what_it_accepts_still_selects():
    assert top_k_mask(torch.tensor([0.1, 0.9, 0.5, 0.2]), 0.5).tolist() == [False, True, True,
                                                                           False]
    hook = SelectiveBackprop(selector="topk", keep=0.5, scorer=nn.Linear(2, 2))
    assert hook.keep == 0.5
