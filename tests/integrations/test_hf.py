import math
import types

import pytest
import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback, TrainingArguments

from hasten import Budget
from hasten.core.errors import ConfigError
from hasten.integrations.hf import (
    BudgetCallback,
    BudgetSamplerTrainer,
    SelectiveBackpropTrainer,
    budget_optimizers,
)
from hasten.integrations.sst2 import load_sst2, tiny_bert
from hasten.select.curriculum import CompetenceSampler

LR = 1e-3


@pytest.fixture(scope="module")
def task():
    return load_sst2(train_rows=400, test_rows=64, vocab_size=600, max_len=48)


class Recorder(TrainerCallback):
    """The LR each step trains with, and the budget when each step was counted."""

    def __init__(self, budget):
        self.budget, self.lrs, self.used = budget, [], []

    def on_step_begin(self, args, state, control, optimizer=None, **kw):
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_optimizer_step(self, args, state, control, **kw):
        self.used.append((self.budget.used(), self.budget.work.steps))


def _args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path), max_steps=10_000, per_device_train_batch_size=16,
                report_to=[], disable_tqdm=True, logging_strategy="no", save_strategy="no",
                use_cpu=True, seed=0)
    return TrainingArguments(**{**base, **kw})


def _trainer(task, tmp_path, run_budget, cls=Trainer, extra_callbacks=(), args=None, **kw):
    model = tiny_bert(task.vocab_size, hidden=32, layers=1, pad_id=task.pad_id, dropout=0.0)
    opt, sched = budget_optimizers(model, run_budget, lr=LR)
    callback = BudgetCallback(run_budget)
    trainer = cls(model=model, args=args or _args(tmp_path), train_dataset=task.train,
                  data_collator=task.collate, optimizers=(opt, sched),
                  callbacks=[callback, *extra_callbacks], **kw)
    return trainer, callback


def cosine(p):
    return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


def test_a_steps_budget_stops_the_trainer_with_the_lr_at_its_end(task, tmp_path):
    budget = Budget("6steps")
    rec = Recorder(budget)
    trainer, callback = _trainer(task, tmp_path, budget, extra_callbacks=[rec])
    trainer.train()
    assert trainer.state.global_step == 6 and budget.work.steps == 6
    assert budget.work.examples_backpropagated == 6 * 16
    assert rec.lrs == pytest.approx([LR * cosine(k / 6) for k in range(1, 7)], abs=1e-15)
    assert rec.lrs[-1] == 0.0
    assert budget.ledger.current("train") > 0 and not budget.running
    assert 0 < callback.microseconds_per_step() < 1e5


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def perf_counter(self):
        return self.now


class Tick(TrainerCallback):
    """Every step takes 0.25 s of the fake clock (placed before BudgetCallback)."""

    def __init__(self, clock):
        self.clock = clock

    def on_optimizer_step(self, args, state, control, **kw):
        self.clock.now += 0.25


def test_a_seconds_budget_ends_on_time_with_the_lr_at_its_end(task, tmp_path, monkeypatch):
    import hasten.core.budget

    clock = FakeClock()
    monkeypatch.setattr(hasten.core.budget, "time", types.SimpleNamespace(
        perf_counter=clock.perf_counter))
    budget = Budget("1.5s")
    rec = Recorder(budget)
    model = tiny_bert(task.vocab_size, hidden=32, layers=1, pad_id=task.pad_id)
    opt, sched = budget_optimizers(model, budget, lr=LR)
    trainer = Trainer(model=model, args=_args(tmp_path), train_dataset=task.train,
                      data_collator=task.collate, optimizers=(opt, sched),
                      callbacks=[Tick(clock), BudgetCallback(budget), rec])
    trainer.train()
    assert trainer.state.global_step == budget.work.steps == 6
    assert budget.used() == 1.5
    # step 1 knows no step cost yet (progress 0); step k > 1 ends at k x 0.25 s
    assert rec.lrs == pytest.approx([LR] + [LR * cosine(k / 6) for k in range(2, 7)],
                                    abs=1e-15)
    assert rec.used == [(0.25 * k, k) for k in range(1, 7)]


def test_evaluation_and_saving_are_off_the_clock(task, tmp_path, monkeypatch):
    import hasten.core.budget

    clock = FakeClock()
    monkeypatch.setattr(hasten.core.budget, "time", types.SimpleNamespace(
        perf_counter=clock.perf_counter))
    budget = Budget("10s")

    def slow_metrics(pred):
        clock.now += 100.0  # a long evaluation
        return {"n": float(len(pred.label_ids))}

    class SlowSave(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            clock.now += 100.0

    args = _args(tmp_path, max_steps=4, eval_strategy="steps", eval_steps=2,
                 save_strategy="steps", save_steps=2, per_device_eval_batch_size=64)
    trainer, _ = _trainer(task, tmp_path, budget, args=args, eval_dataset=task.test,
                          compute_metrics=slow_metrics, extra_callbacks=[SlowSave()])
    trainer.callback_handler.callbacks.insert(0, Tick(clock))
    trainer.train()
    assert trainer.state.global_step == 4 and clock.now >= 1000.0 + 4 * 100.0
    assert budget.ledger.current("train") == 4 * 0.25  # only the steps count


@pytest.mark.parametrize("rebuild", [False, True])
def test_resume_restores_the_budget_and_continues_the_schedule(task, tmp_path, rebuild):
    whole_budget = Budget("6steps")
    whole = Recorder(whole_budget)
    _trainer(task, tmp_path / "whole", whole_budget, extra_callbacks=[whole])[0].train()

    first_budget = Budget("6steps")
    first = Recorder(first_budget)
    args = _args(tmp_path / "split", max_steps=3, save_strategy="steps", save_steps=3)
    _trainer(task, tmp_path, first_budget, args=args, extra_callbacks=[first])[0].train()
    assert first_budget.work.steps == 3

    budget = Budget("6steps")  # a fresh process would start from nothing
    rec = Recorder(budget)
    args = _args(tmp_path / "split", restore_callback_states_from_checkpoint=rebuild)
    trainer, callback = _trainer(task, tmp_path, budget, args=args, extra_callbacks=[rec])
    trainer.train(resume_from_checkpoint=str(tmp_path / "split" / "checkpoint-3"))
    assert trainer.state.global_step == 6
    assert budget.work.steps == 6  # 3 restored + 3 trained: the budget stopped the run
    assert budget.ledger.current("train") >= first_budget.ledger.current("train")
    assert first.lrs + rec.lrs == pytest.approx(whole.lrs, abs=1e-15)


def test_selective_backprop_trains_on_the_kept_rows(task, tmp_path):
    budget = Budget("4steps")
    trainer, _ = _trainer(task, tmp_path, budget, cls=SelectiveBackpropTrainer,
                          selector="topk", keep=0.25)
    trainer.train()
    assert trainer.state.global_step == 4
    assert (trainer.scored, trainer.kept) == (4 * 16, 4 * 4)
    # the loss is the mean cross-entropy of the 4 highest-loss rows of the batch
    model = trainer.model.train()
    batch = task.collate([task.train[i] for i in range(16)])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        losses = F.cross_entropy(logits.logits, batch["labels"], reduction="none")
        got = trainer.compute_loss(model, dict(batch))
    assert float(got) == pytest.approx(float(losses.topk(4).values.mean()), rel=1e-5)
    with torch.no_grad():  # evaluation keeps HF's own loss over every row
        assert float(trainer.compute_loss(model.eval(), dict(batch))) == pytest.approx(
            float(losses.mean()), rel=1e-5)


def test_budget_sampler_draws_batches_at_the_budgets_progress(task, tmp_path):
    budget = Budget("3steps")
    sampler = CompetenceSampler(task.lengths, p=1.0, T_fraction=1.0, seed=5, rank=0,
                                world_size=1)
    trainer, _ = _trainer(task, tmp_path, budget, cls=BudgetSamplerTrainer,
                          sampler=sampler, budget=budget)
    first = next(iter(trainer.get_train_dataloader()))
    reference = CompetenceSampler(task.lengths, p=1.0, T_fraction=1.0, seed=5, rank=0,
                                  world_size=1)
    expected = task.collate([task.train[i] for i in reference.sample(16, 0.0)])
    assert torch.equal(first["input_ids"], expected["input_ids"])
    assert first["input_ids"].shape[1] <= sorted(task.lengths)[len(task.lengths) // 10]
    trainer.train()
    assert trainer.state.global_step == 3


def test_bad_combinations_are_config_errors(task, tmp_path):
    with pytest.raises(ConfigError, match="counts seconds, steps, examples and tokens"):
        BudgetCallback("1e12flop")
    sharded = CompetenceSampler(task.lengths, T=10, rank=1, world_size=2)
    with pytest.raises(ConfigError, match="build the sampler with rank=0, world_size=1"):
        _trainer(task, tmp_path, Budget("2steps"), cls=BudgetSamplerTrainer, sampler=sharded,
                 budget=Budget("2steps"))
    model = tiny_bert(task.vocab_size, hidden=32, layers=1)
    opt, sched = budget_optimizers(model, Budget("5steps"), lr=LR)
    trainer = Trainer(model=model, args=_args(tmp_path), train_dataset=task.train,
                      data_collator=task.collate, optimizers=(opt, sched),
                      callbacks=[BudgetCallback("7steps")])
    with pytest.raises(ConfigError, match=r"follows Budget\('5steps'\) but the callback counts "
                                          r"Budget\('7steps'\)"):
        trainer.train()
