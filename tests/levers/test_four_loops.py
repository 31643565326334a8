"""The same lever list makes the same choices in every loop: hasten's trainer, the HF Trainer
(under a subclass that overrides compute_loss), Lightning and a plain loop, for 50 steps."""

from __future__ import annotations

import pytest
import torch
from four_loops import BATCH, STEPS, run_hf, run_lightning, run_plain, run_trainer

from hasten.core.budget import Budget
from hasten.core.errors import ConfigError
from hasten.levers.loop import LeverLoop

SLEEP = 0.1  # seconds each evaluation sleeps


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {"trainer": run_trainer(), "plain": run_plain(),
                "hf": run_hf(tmp_path_factory.mktemp("hf"), evaluate_sleep=SLEEP),
                "lightning": run_lightning(tmp_path_factory.mktemp("pl"),
                                           evaluate_sleep=SLEEP)}
    finally:
        torch.set_num_threads(threads)


def hand_count(run):
    """The work the records show, step by step (one draw a step here): in the priming
    steps every drawn row is trained; after them every drawn row is scored (a forward) and
    the kept half is trained (a forward and a backward)."""
    forwarded = backpropagated = 0
    for drawn, kept in zip(run["drawn"], run["kept"], strict=True):
        forwarded += len(kept) + (len(drawn) if len(kept) < len(drawn) else 0)
        backpropagated += len(kept)
    return {"steps": STEPS, "examples_forwarded": forwarded,
            "examples_backpropagated": backpropagated}


@pytest.mark.parametrize("loop", ["plain", "hf", "lightning"])
def test_every_loop_makes_the_trainers_selections(runs, loop):
    want, got = runs["trainer"], runs[loop]
    assert len(want["kept"]) == len(got["kept"]) == STEPS  # one draw a step: topk fills it
    assert got["drawn"] == want["drawn"]  # the same rows drawn (so the same rows pruned)
    assert got["kept"] == want["kept"]  # the same rows backpropagated
    assert got["weights"] == want["weights"]  # the same InfoBatch weights
    for a, b in zip(got["losses"], want["losses"], strict=True):
        assert torch.equal(a, b)
    assert got["work"] == want["work"]
    for key, value in got["model"].state_dict().items():
        assert torch.equal(value, want["model"].state_dict()[key])


def test_the_levers_act_in_these_runs(runs):
    run = runs["trainer"]
    assert {len(d) for d in run["drawn"]} == {2 * BATCH}  # sb-topk draws twice the batch
    kept = [len(k) for k in run["kept"]]
    assert kept[:5] == [2 * BATCH] * 5 and set(kept[5:]) == {BATCH}  # primed, then the top half
    assert any(w != 1.0 for ws in run["weights"] for w in ws)  # InfoBatch rescaled some rows
    from four_loops import DIFFICULTY
    first = DIFFICULTY[run["drawn"][0]]
    assert first.max() <= sorted(DIFFICULTY)[2 * BATCH]  # the curriculum starts easiest


@pytest.mark.parametrize("loop", ["trainer", "plain", "hf", "lightning"])
def test_the_counters_equal_a_hand_count(runs, loop):
    run = runs[loop]
    count = hand_count(run)
    assert run["work"]["steps"] == count["steps"]
    assert run["work"]["examples_backpropagated"] == count["examples_backpropagated"]
    assert run["work"]["examples_forwarded"] == count["examples_forwarded"]
    scored = count["examples_forwarded"] - count["examples_backpropagated"]
    per_row = run["work"]["flops"] / (scored + 3 * count["examples_backpropagated"])
    assert per_row == pytest.approx(runs["trainer"]["work"]["flops"] / (
        scored + 3 * count["examples_backpropagated"]))  # a scoring forward is a third of a
    # training row's forward + backward, in every loop's FLOP count


@pytest.mark.parametrize("loop", ["hf", "lightning"])
def test_eval_every_gives_exactly_ten_evaluations_off_the_clock(runs, loop):
    run = runs[loop]
    assert run["evaluations"] == 10
    # each evaluation sleeps SLEEP s: the whole run's wall time holds them all beside the
    # training seconds, so the budget's clock never ran during one
    assert run["train_seconds"] <= run["wall"] - 10 * SLEEP


def test_log_every_writes_the_budgets_progress_at_its_fractions(runs):
    # four log rows: at the first step past each quarter of the 50-step budget
    assert runs["hf"]["logged"] == [13 / 50, 25 / 50, 38 / 50, 1.0]
    assert runs["lightning"]["logged"] == [1.0]  # the last quarter's row


def test_levers_work_with_gradient_accumulation(one_thread):
    from four_loops import DIFFICULTY, LEVERS, Net, Rows, per_example_loss
    from torch.utils.data import default_collate

    from hasten.core.recipe import Recipe
    from hasten.core.train_config import TrainConfig
    from hasten.levers import train

    recipe = Recipe(Net(), Rows(), per_example_loss, None,
                    TrainConfig(budget="6steps", micro_batch=8, batch_start=3, batch_end=3,
                                quiet=True, tensorboard=False),
                    difficulty=DIFFICULTY, collate_fn=default_collate)
    result = train(recipe, levers=LEVERS)
    # three micro-batches a step; the first step primed (48 rows drawn and trained), then each
    # micro-batch scores its 16 drawn rows and trains the top 8
    assert result.steps == 6
    assert result.work["examples_backpropagated"] == 3 * 16 + 5 * 3 * 8
    assert result.work["examples_forwarded"] == 3 * 16 + 5 * 3 * (16 + 8)


def test_bf16_acts_and_compile_is_refused_with_the_loops_own_switch(one_thread):
    from four_loops import DIFFICULTY, Net, Rows, per_example_loss
    from torch.utils.data import default_collate

    budget = Budget("2steps")
    loop = LeverLoop(["bf16"], Rows(), per_example_loss, Net(), budget, 4,
                     collate_fn=default_collate)
    assert loop.state.config.precision == "bf16"
    batch = loop.next_batch()
    seen = {}

    def spy(model, b):
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        return per_example_loss(model, b)

    loop.loss_fn = spy
    loop.loss(Net(), batch)
    assert seen["autocast"]
    with pytest.raises(ConfigError, match="lever 'compile' cannot act in your loop: use "
                                          r"torch.compile\(model\)"):
        LeverLoop(["bf16", "compile"], Rows(), per_example_loss, Net(), budget, 4,
                  difficulty=DIFFICULTY, collate_fn=default_collate)


def test_a_loss_driven_lever_with_no_loss_reaching_it_raises_at_the_first_step(one_thread):
    from four_loops import Net, Rows, per_example_loss
    from torch.utils.data import default_collate

    loop = LeverLoop(["infobatch"], Rows(), per_example_loss, Net(), Budget("5steps"), 4,
                     collate_fn=default_collate)
    loop.next_batch()  # a batch drawn, but its loss computed elsewhere
    with pytest.raises(ConfigError, match="levers infobatch choose examples by their losses, "
                                          "but no loss reached them this step"):
        loop.step()


def test_bf16_and_compile_act_in_hasten_trainer(one_thread):
    from four_loops import Rows, per_example_loss
    from torch import nn
    from torch.utils.data import default_collate

    from hasten.core.recipe import Recipe
    from hasten.core.train_config import TrainConfig
    from hasten.levers import train

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(10, 2)

        def forward(self, pixel_values=None, labels=None):
            from types import SimpleNamespace
            return SimpleNamespace(logits=self.body(pixel_values))

    recipe = Recipe(Small(), Rows(), per_example_loss, None,
                    TrainConfig(budget="3steps", micro_batch=8, quiet=True, tensorboard=False),
                    collate_fn=default_collate)
    result = train(recipe, levers=["bf16", "compile"])
    assert result.config["precision"] == "bf16" and result.config["compile"]
    assert result.ledger["compile"] > 0  # the first step compiled, booked apart
    assert list(result.levers) == ["bf16", "compile"]


def test_the_hf_and_lightning_callbacks_name_their_own_switch_for_compile():
    from hasten.integrations.hf_levers import HastenHFCallback
    from hasten.integrations.lightning_levers import HastenLightningCallback

    for callback, loop in ((HastenHFCallback, "the HF Trainer"),
                           (HastenLightningCallback, "Lightning")):
        cb = callback(Budget("3steps"), ["compile"], **(
            {"loss_fn": lambda m, b: None} if callback is HastenLightningCallback else {}))
        assert [x.name for x in cb.levers] == ["compile"]
        from four_loops import Net, Rows, per_example_loss
        from torch.utils.data import default_collate
        with pytest.raises(ConfigError, match=f"lever 'compile' cannot act in {loop}: use "
                                              r"torch.compile\(model\)"):
            LeverLoop(cb.levers, Rows(), per_example_loss, Net(), Budget("3steps"), 4,
                      collate_fn=default_collate, loop=loop)
