"""A choices file round-trips: `hasten train --choices`, the HF and Lightning callbacks and the
plain-loop helper all train with the levers it names."""

from __future__ import annotations

import json

import pytest
from own_tasks import write_task

from hasten.core.budget import Budget
from hasten.core.errors import DataError
from hasten.levers import load_choices, save_choices

LEVERS = ["infobatch:prune=0.3", "sb-topk"]


@pytest.fixture
def choices(tmp_path):
    return save_choices({"levers": LEVERS, "budget": "60s", "tune_seconds": 6.0,
                         "train_budget": "54s", "pilot_share": 0.1}, tmp_path / "choices.json")


def test_hasten_train_uses_the_choices_and_the_budget_they_left(tmp_path, hasten_cli, choices):
    task = write_task(tmp_path)
    out = tmp_path / "run"
    proc = hasten_cli("train", "--task", f"{task}:make_recipe", "--choices", choices,
                      "--budget", "12steps", "--quiet", "--out", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["notes"]["levers"] == LEVERS and result["steps"] == 12
    assert result["work"]["examples_backpropagated"] < result["work"]["examples_forwarded"]
    config = json.loads((out / "config.json").read_text())
    assert config["choices"] == str(choices)


def test_the_callbacks_and_the_loop_take_the_same_file(choices):
    from four_loops import Net, Rows, per_example_loss
    from torch.utils.data import default_collate

    from hasten.integrations.hf_levers import HastenHFCallback
    from hasten.integrations.lightning_levers import HastenLightningCallback
    from hasten.levers.loop import LeverLoop

    levers = load_choices(choices)
    assert levers == LEVERS
    hf = HastenHFCallback(Budget("5steps"), levers)
    pl = HastenLightningCallback(Budget("5steps"), levers, loss_fn=per_example_loss)
    loop = LeverLoop(levers, Rows(), per_example_loss, Net(), Budget("5steps"), 4,
                     collate_fn=default_collate)
    for holder in (hf.levers, pl.levers, loop.levers):
        assert [x.spec() for x in holder] == LEVERS


def test_a_bad_choices_file_is_one_line(tmp_path):
    with pytest.raises(DataError, match="choices file not found"):
        load_choices(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"levers": "infobatch"}')
    with pytest.raises(DataError, match="not a choices file \\(no 'levers' list of spec"):
        load_choices(bad)
