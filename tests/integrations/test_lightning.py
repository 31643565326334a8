import math
import types

import pytest
import pytorch_lightning as pl
import torch

from hasten import Budget
from hasten.core.errors import ConfigError
from hasten.core.sampling import ShuffledSampler
from hasten.integrations.lightning import BudgetCallback, budget_dataloader
from hasten.integrations.sst2 import load_sst2, sequence_loss, tiny_bert
from hasten.select.curriculum import CompetenceSampler

LR = 1e-3


@pytest.fixture(scope="module")
def task():
    return load_sst2(train_rows=300, test_rows=32, vocab_size=600, max_len=48)


class Classifier(pl.LightningModule):
    def __init__(self, vocab_size, pad_id, clock=None):
        super().__init__()
        self.model = tiny_bert(vocab_size, hidden=32, layers=1, pad_id=pad_id, dropout=0.0)
        self.lrs, self.widths, self.clock = [], [], clock

    def training_step(self, batch, batch_idx):
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.widths.append(batch["input_ids"].shape[1])
        if self.clock is not None:
            self.clock.now += 0.25  # each step takes 0.25 s of the fake clock
        return sequence_loss(self.model, batch).mean()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=LR)


def _fit(task, budget, callback, clock=None, ckpt_path=None, sampler=None, **trainer_kw):
    module = Classifier(task.vocab_size, task.pad_id, clock)
    sampler = sampler or ShuffledSampler(len(task.train), seed=0)
    loader = budget_dataloader(task.train, sampler, 16, budget, collate_fn=task.collate)
    trainer = pl.Trainer(max_epochs=-1, callbacks=[callback], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", devices=1,
                         use_distributed_sampler=False, **trainer_kw)
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    return trainer, module


def cosine(p):
    return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


def test_a_steps_budget_stops_lightning_with_the_lr_at_its_end(task):
    budget = Budget("5steps")
    callback = BudgetCallback(budget, "cosine")
    trainer, module = _fit(task, budget, callback)
    assert trainer.global_step == 5 and budget.work.steps == 5
    assert budget.work.examples_backpropagated == 5 * 16
    assert module.lrs == pytest.approx([LR * cosine(k / 5) for k in range(1, 6)], abs=1e-15)
    assert not budget.running and callback.microseconds_per_step() > 0


def test_a_seconds_budget_ends_on_time_with_the_lr_at_its_end(task, monkeypatch):
    import hasten.core.budget

    clock = types.SimpleNamespace(now=50.0)
    monkeypatch.setattr(hasten.core.budget, "time",
                        types.SimpleNamespace(perf_counter=lambda: clock.now))
    budget = Budget("1.5s")
    trainer, module = _fit(task, budget, BudgetCallback(budget, "linear", warmup=0.5), clock)
    assert trainer.global_step == budget.work.steps == 6
    assert budget.used() == 1.5
    # step 1 knows no step cost yet (progress 0); step k > 1 ends at k x 0.25 s = k / 6
    expected = [0.0] + [LR * (k / 6 / 0.5 if k / 6 < 0.5 else 2 * (1 - k / 6))
                        for k in range(2, 7)]
    assert module.lrs == pytest.approx(expected, abs=1e-12)


def test_resume_from_a_checkpoint_continues_budget_and_schedule(task, tmp_path):
    whole_budget = Budget("6steps")
    _, whole = _fit(task, whole_budget, BudgetCallback(whole_budget))
    first_budget = Budget("6steps")
    trainer, first = _fit(task, first_budget, BudgetCallback(first_budget), max_steps=3)
    assert first_budget.work.steps == 3
    path = tmp_path / "half.ckpt"
    trainer.save_checkpoint(path)
    budget = Budget("6steps")
    callback = BudgetCallback(budget)
    trainer, rest = _fit(task, budget, callback, ckpt_path=str(path))
    assert trainer.global_step == 6 and budget.work.steps == 6
    assert first.lrs + rest.lrs == pytest.approx(whole.lrs, abs=1e-15)
    assert callback.base_lrs == [[LR]]
    with pytest.raises(ConfigError, match="the checkpoint's budget is '6steps', this "
                                          "callback's is '7steps'"):
        BudgetCallback("7steps").load_state_dict(callback.state_dict())


def test_a_curriculum_feeds_short_sentences_first(task):
    budget = Budget("8steps")
    sampler = CompetenceSampler(task.lengths, p=1.0, c0=0.1, T_fraction=1.0, seed=0)
    _, module = _fit(task, budget, BudgetCallback(budget, None), sampler=sampler)
    assert module.lrs == [LR] * 8  # schedule=None leaves the LR alone
    short = sorted(task.lengths)[len(task.lengths) // 5]  # competence <= 0.2 early on
    assert max(module.widths[:1]) <= short
    assert max(module.widths) > short


def test_unsupported_budgets_are_config_errors():
    with pytest.raises(ConfigError, match="counts seconds, steps, examples and tokens"):
        BudgetCallback("1e12flop")
    with pytest.raises(ConfigError, match="a tokens budget needs tokens_fn"):
        BudgetCallback("1e6tok")
