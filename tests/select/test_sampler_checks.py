"""InfoBatch and the curriculum's sampler check their arguments at construction: one
ConfigError line naming the argument, what it got and what it accepts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from hasten.core.errors import ConfigError
from hasten.select.curriculum import CompetenceSampler
from hasten.select.infobatch import InfoBatch

DATA = TensorDataset(torch.zeros(10, 2))


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text.splitlines() == [text]
    return text


@pytest.mark.parametrize("args, kwargs, message", [
    ((DATA,), {}, "InfoBatch: size must be the number of examples, an int >= 1 (pass "
                  "len(dataset)), got a TensorDataset of 10 examples"),
    ((0,), {}, "InfoBatch: size must be the number of examples, an int >= 1, got 0 (int)"),
    ((10,), {"ratio": "0.5"}, "InfoBatch: ratio must be a finite number, got the string "
                              "'0.5'"),
    ((10,), {"ratio": float("nan")}, "InfoBatch: ratio must be a finite number, got nan "
                                     "(float)"),
    ((10,), {"anneal": None}, "InfoBatch: anneal must be a finite number, got None"),
    ((10,), {"rule": ["infobatch"]}, "InfoBatch: rule must be a rule name (infobatch, "
                                     "random-drop, drop-easiest), got a list of 1 item(s)"),
    ((10,), {"seed": 0.5}, "InfoBatch: seed must be an integer, got 0.5 (float)"),
    ((10,), {"rank": 2, "world_size": 2}, "InfoBatch: rank must be an integer in [0, 1] "
                                          "(below world_size), got 2 (int)"),
    ((10,), {"ratio": 1.0}, "prune ratio must be in [0, 1), got 1.0"),
])
def test_infobatch_takes_a_size_and_numbers(args, kwargs, message):
    with pytest.raises(ConfigError) as err:
        InfoBatch(*args, **kwargs)
    assert one_line(err) == message


@pytest.mark.parametrize("args, kwargs, message", [
    (("easy",), {"T": 10}, "CompetenceSampler: difficulty must be one difficulty per example: "
                           "a non-empty 1-d list, array or tensor of finite numbers, got the "
                           "string 'easy'"),
    (([],), {"T": 10}, "CompetenceSampler: difficulty must be one difficulty per example: a "
                       "non-empty 1-d list, array or tensor of finite numbers, got a list of 0 "
                       "item(s)"),
    ((np.ones((3, 2)),), {"T": 10}, "CompetenceSampler: difficulty must be one difficulty per "
                                    "example: a non-empty 1-d list, array or tensor of finite "
                                    "numbers, got a 2-d array of shape [3, 2]"),
    (([1.0, float("inf")],), {"T": 10}, "CompetenceSampler: difficulty must be one difficulty "
                                        "per example: a non-empty 1-d list, array or tensor "
                                        "of finite numbers, got a list of 2 item(s)"),
    (([1.0, 2.0],), {"T": "10"}, "CompetenceSampler: T must be a finite number > 0 or None, "
                                 "got the string '10'"),
    (([1.0, 2.0],), {"T_fraction": 2}, "CompetenceSampler: T_fraction must be a finite number "
                                       "in (0, 1] or None, got 2 (int)"),
    (([1.0, 2.0],), {"T": 10, "p": 0}, "CompetenceSampler: p must be a finite number > 0, got "
                                       "0 (int)"),
    (([1.0, 2.0],), {"T": 10, "lengths": [3, 2.5], "max_tokens": 8},
     "CompetenceSampler: lengths must be one token count per example: a non-empty 1-d list, "
     "array or tensor of finite whole numbers, got a list of 2 item(s)"),
    (([1.0, 2.0],), {"T": 10, "lengths": [3], "max_tokens": 8},
     "CompetenceSampler: lengths has 1 values for 2 examples (difficulty has one per "
     "example)"),
    (([1.0, 2.0],), {"T": 10, "min_pool": -1}, "CompetenceSampler: min_pool must be an integer "
                                               ">= 0 or None, got -1 (int)"),
])
def test_competence_sampler_checks_its_arguments(args, kwargs, message):
    with pytest.raises(ConfigError) as err:
        CompetenceSampler(*args, **kwargs)
    assert one_line(err) == message


def test_competence_sampler_takes_tensors_and_lists():
    assert CompetenceSampler(torch.arange(8.0), T=4).size == 8
    assert CompetenceSampler([3, 1, 2], T_fraction=0.5, lengths=[4, 5, 6], max_tokens=8).size == 3
