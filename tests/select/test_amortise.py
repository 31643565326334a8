import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core.errors import ConfigError, DataError
from hasten.core.trainer import Hook, TrainConfig, train
from hasten.select.amortise import (
    FirstEpochEL2N,
    amortisation,
    break_even,
    check_times,
    first_epoch_el2n,
)
from hasten.select.per_example import Scores
from hasten.select.scorers import ScoringSpec, el2n_values, score


def test_break_even_counts_the_trainings_that_repay_scoring():
    assert break_even(10.0, 5.0, 3.0) == 5.0  # 10 s of scoring, 2 s saved per training
    assert break_even(4.6, 10.3, 9.5 - 4.6) == pytest.approx(4.6 / 5.4)
    assert break_even(0.0, 5.0, 3.0) == 0.0
    assert break_even(1.0, 3.0, 3.0) == math.inf  # no saving: never repaid
    assert break_even(1.0, 3.0, 5.0) == math.inf
    with pytest.raises(ConfigError, match="scoring_seconds must be a finite number >= 0, "
                                          "got -1.0"):
        break_even(-1.0, 3.0, 2.0)
    with pytest.raises(ConfigError, match="full_time_to_target must be a finite number"):
        break_even(1.0, math.nan, 2.0)


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long())


def test_first_epoch_el2n_equals_the_models_el2n_without_an_extra_pass():
    data = _data()
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    rec = FirstEpochEL2N(len(data), epochs=1.0)
    forwards = []

    class Started(Hook):  # forwards before the first step are the trainer's set-up probes
        on = False

        def on_start(self, state):
            Started.on = True

    def loss_fn(m, batch):
        if Started.on:
            forwards.append(len(batch[0]))
        return rec.loss_fn(m, batch)

    # a learning rate far below fp32 resolution: the weights never move, so every
    # presentation sees the model as built and the recorded EL2N is exact
    res = train(model, data, loss_fn, TrainConfig(budget="192ex", micro_batch=16, lr=1e-30,
                                                  quiet=True, tensorboard=False),
                hooks=[rec, Started()])
    assert res.work["examples_forwarded"] == 192
    assert sum(forwards) == 192  # no extra pass while training
    scores = rec.scores()
    with torch.no_grad():
        want = el2n_values(model(data.tensors[0]), data.tensors[1]).double()
    assert torch.allclose(torch.from_numpy(scores.values), want, atol=1e-6, rtol=0)
    assert rec.count.tolist() == [1] * 64  # recorded over the first epoch only, not all three
    assert scores.name == "el2n-first-epoch" and scores.higher_is == "harder"
    assert scores.seconds > 0 and scores.work == {"examples_forwarded": 0.0,
                                                  "examples_backpropagated": 0.0}


def test_first_epoch_el2n_needs_every_example_seen():
    rec = FirstEpochEL2N(10)
    with pytest.raises(DataError, match="10 of 10 examples were not trained on"):
        rec.scores()
    with pytest.raises(ConfigError, match="epochs must be positive, got 0"):
        FirstEpochEL2N(10, epochs=0)


def test_first_epoch_el2n_state_round_trip():
    rec = FirstEpochEL2N(4)
    rec.total, rec.count, rec.drawn = torch.tensor([1.0, 2, 3, 4]), torch.ones(4).long(), 4
    other = FirstEpochEL2N(4)
    other.load_state_dict(rec.state_dict())
    assert other.scores().values.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_amortisation_counts_the_trainings_that_repay_scoring():
    scores = Scores(np.zeros(4), "x", "harder", seconds=3.0, work={"flops": 2e9},
                    meta={"recording_seconds": 0.5})
    assert amortisation(scores, 200, 50) == {"scoring_seconds": 3.0, "scoring_flops": 2e9,
                                             "recording_seconds": 0.5}
    # a kept quarter trains in a quarter of the full 8 s: 6 s saved per training
    assert amortisation(scores, 200, 50, full_time=8.0) == {
        "scoring_seconds": 3.0, "scoring_flops": 2e9, "recording_seconds": 0.5,
        "full_time": 8.0, "subset_time": 2.0, "subset_time_estimated": True,
        "break_even": 0.5, "break_even_in_run": 0.5 / 6.0}
    given = amortisation(Scores(np.zeros(4), "x", "harder", seconds=4.0), 200, 50,
                         full_time=8.0, subset_time=6.0)
    assert (given["subset_time"], given["subset_time_estimated"]) == (6.0, False)
    assert given["break_even"] == 2.0 and "break_even_in_run" not in given
    assert amortisation(scores, 200, 50, 8.0, 9.0)["break_even"] is None  # never repaid
    with pytest.raises(ConfigError, match="^full_time must be a number of seconds > 0, got 0$"):
        amortisation(scores, 200, 50, full_time=0)
    with pytest.raises(ConfigError, match="^subset_time must be a number of seconds >= 0, "
                                          "got -1$"):
        check_times(1.0, -1)


def test_first_epoch_el2n_scorer_equals_el2n_of_the_model_as_built():
    data = _data()

    def make():
        return nn.Linear(5, 3)

    # a learning rate far below fp32 resolution: the recorded EL2N is the built model's
    spec = ScoringSpec(make_model=make, epochs=2, lr=1e-30, batch_size=16, seed=4)
    scores = score("el2n-first-epoch", data, spec)
    torch.manual_seed(4)
    with torch.no_grad():
        want = el2n_values(make()(data.tensors[0]), data.tensors[1]).double()
    assert torch.allclose(torch.from_numpy(scores.values), want, atol=1e-6, rtol=0)
    assert scores.name == "el2n-first-epoch" and scores.higher_is == "harder"
    assert scores.work["examples_backpropagated"] == 128  # both epochs: the whole cost
    assert 0 < scores.meta["recording_seconds"] < scores.seconds
    assert scores.meta["epochs"] == 2
    with pytest.raises(ConfigError, match="epochs must be >= 1, got 0.5"):
        first_epoch_el2n(data, ScoringSpec(make_model=make, epochs=0.5))
