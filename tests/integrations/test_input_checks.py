"""The framework adapters take what users hand them or say in one line what is wrong: the HF
`SelectiveBackpropTrainer` with a collator naming its labels `label`, the Lightning callback
on batches with a list-of-strings field, and wrong argument types at construction."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from transformers import TrainingArguments

from hasten import Budget
from hasten.core.errors import ConfigError
from hasten.core.sampling import ShuffledSampler
from hasten.integrations import hf, lightning
from hasten.integrations.sst2 import load_sst2, sequence_loss, tiny_bert


@pytest.fixture(scope="module")
def task():
    return load_sst2(train_rows=120, test_rows=16, vocab_size=400, max_len=32)


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text.splitlines() == [text]
    return text


# --- HF ------------------------------------------------------------------------------------


def _training_args(tmp_path):
    return TrainingArguments(output_dir=str(tmp_path), max_steps=10_000,
                             per_device_train_batch_size=8, report_to=[], disable_tqdm=True,
                             logging_strategy="no", save_strategy="no", use_cpu=True, seed=0)


def _hf_trainer(task, tmp_path, collate, budget="2steps", **kw):
    model = tiny_bert(task.vocab_size, hidden=32, layers=1, pad_id=task.pad_id, dropout=0.0)
    run_budget = Budget(budget)
    opt, sched = hf.budget_optimizers(model, run_budget, lr=1e-3)
    return hf.SelectiveBackpropTrainer(
        model=model, args=_training_args(tmp_path), train_dataset=task.train,
        data_collator=collate, optimizers=(opt, sched),
        callbacks=[hf.BudgetCallback(run_budget)], **kw)


def test_selective_backprop_trainer_takes_labels_named_label(task, tmp_path):
    def collate(rows):
        batch = dict(task.collate(rows))
        batch["label"] = batch.pop("labels")
        return batch

    trainer = _hf_trainer(task, tmp_path, collate, selector="topk", keep=0.5)
    trainer.train()
    assert trainer.state.global_step == 2
    assert (trainer.scored, trainer.kept) == (2 * 8, 2 * 4)


def test_a_batch_without_labels_is_one_line_naming_its_keys(task, tmp_path):
    def collate(rows):
        batch = dict(task.collate(rows))
        batch["target"] = batch.pop("labels")
        return batch

    trainer = _hf_trainer(task, tmp_path, collate)
    with pytest.raises(ConfigError) as err:
        trainer.train()
    assert _one_line(err).startswith("per_example_cross_entropy needs the labels in the batch "
                                     "as 'labels' (or 'label'); it has 'input_ids', ")
    assert "'target'" in str(err.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"selector": "top"}, "SelectiveBackpropTrainer: selector must be one of 'sb', 'topk', "
                          "got the string 'top'"),
    ({"keep": 2}, "SelectiveBackpropTrainer: keep must be a finite number in (0, 1], got 2 "
                  "(int)"),
    ({"history": "1024"}, "SelectiveBackpropTrainer: history must be an integer >= 1, got the "
                          "string '1024'"),
    ({"per_example_loss": "ce"}, "SelectiveBackpropTrainer: per_example_loss must be a "
                                 "function (model, inputs) -> one loss per example or None, "
                                 "got the string 'ce'"),
])
def test_selective_backprop_trainer_checks_its_arguments_before_hf_starts(
        task, tmp_path, kwargs, message):
    with pytest.raises(ConfigError) as err:
        _hf_trainer(task, tmp_path, task.collate, **kwargs)
    assert _one_line(err) == message


def test_hf_callbacks_and_trainers_check_their_arguments(task, tmp_path):
    with pytest.raises(ConfigError) as err:
        hf.BudgetCallback(45)
    assert _one_line(err) == ("BudgetCallback: budget must be a Budget or its spec, e.g. "
                              "'20m', '2000steps', '1e6ex', got 45 (int)")
    model = tiny_bert(task.vocab_size, hidden=32, layers=1, pad_id=task.pad_id)
    with pytest.raises(ConfigError) as err:
        hf.BudgetSamplerTrainer(model=model, args=_training_args(tmp_path),
                                train_dataset=task.train, sampler=list(range(10)),
                                budget=Budget("2steps"))
    assert _one_line(err).startswith("BudgetSamplerTrainer: sampler must be a sampler with "
                                     "sample(n, progress)")
    with pytest.raises(ConfigError) as err:
        hf.BudgetSamplerTrainer(model=model, args=_training_args(tmp_path),
                                train_dataset=task.train, sampler=ShuffledSampler(10),
                                budget="2steps")
    assert _one_line(err) == ("BudgetSamplerTrainer: budget must be a Budget (the one "
                              "BudgetCallback counts), got the string '2steps'")


# --- Lightning -----------------------------------------------------------------------------


class Classifier(pl.LightningModule):
    def __init__(self, vocab_size, pad_id):
        super().__init__()
        self.model = tiny_bert(vocab_size, hidden=32, layers=1, pad_id=pad_id, dropout=0.0)

    def training_step(self, batch, batch_idx):
        tensors = {k: v for k, v in batch.items() if k != "text"}
        return sequence_loss(self.model, tensors).mean()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def _fit_with_text(task, budget):
    def collate(rows):  # the first field a list of strings, as a text dataset's batch has
        return {"text": [f"row {i}" for i in range(len(rows))], **task.collate(rows)}

    callback = lightning.BudgetCallback(budget, "cosine")
    loader = lightning.budget_dataloader(task.train, ShuffledSampler(len(task.train)), 8,
                                         budget, collate_fn=collate)
    trainer = pl.Trainer(max_epochs=-1, callbacks=[callback], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", devices=1,
                         use_distributed_sampler=False)
    trainer.fit(Classifier(task.vocab_size, task.pad_id), loader)
    return trainer


def test_lightning_callback_trains_on_batches_with_a_list_of_strings(task):
    budget = Budget("3steps")
    trainer = _fit_with_text(task, budget)
    assert trainer.global_step == 3 and budget.work.steps == 3


def test_an_examples_budget_on_batches_it_cannot_count_is_one_line(task):
    with pytest.raises(ConfigError) as err:
        _fit_with_text(task, Budget("64ex"))
    assert _one_line(err) == ("an examples budget counts the examples of each batch, but a "
                              "batch of dict has no size to count (its first field is not a "
                              "tensor); use a steps or seconds budget")


@pytest.mark.parametrize("args, kwargs, message", [
    ((45,), {}, "BudgetCallback: budget must be a Budget or its spec, e.g. '20m', "
                "'2000steps', '1e6ex', got 45 (int)"),
    (("2steps", 3), {}, "BudgetCallback: schedule must be a schedule name (cosine, linear, "
                        "...) or None, got 3 (int)"),
    (("2steps",), {"tokens_fn": 5}, "BudgetCallback: tokens_fn must be a function (batch) -> "
                                    "tokens in it or None, got 5 (int)"),
    (("2steps",), {"warmup": "a"}, "BudgetCallback: warmup must be a finite number, got the "
                                   "string 'a'"),
])
def test_lightning_callback_checks_its_arguments(args, kwargs, message):
    with pytest.raises(ConfigError) as err:
        lightning.BudgetCallback(*args, **kwargs)
    assert _one_line(err) == message
