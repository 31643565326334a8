import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core import distributed
from hasten.core.budget import Budget
from hasten.core.trainer import Hook, TrainConfig, TrainState, train
from hasten.data.padding import pad_collate
from hasten.steps.selective_backprop import (
    BackpropQueue,
    LossHistory,
    SelectiveBackprop,
    select_biggest_losers,
    selection_probability,
    top_k_mask,
)


def test_percentiles_and_probabilities_by_hand():
    history = LossHistory(1024)
    history.add(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    losses = torch.tensor([2.5, 4.0, 0.5])
    history.add(losses)  # history: 1 2 3 4 2.5 4 0.5
    pct = history.percentiles(losses)
    assert pct.tolist() == pytest.approx([4 / 7, 7 / 7, 1 / 7])
    prob = selection_probability(pct, beta=3.0, p_min=0.05)
    assert prob.tolist() == pytest.approx([64 / 343, 1.0, 0.05])


def test_history_keeps_the_last_n_losses():
    history = LossHistory(4)
    history.add(torch.arange(3.0))
    history.add(torch.arange(3.0, 6.0))
    assert history.values.tolist() == [2.0, 3.0, 4.0, 5.0]


def test_selection_is_bernoulli_with_those_probabilities():
    g = torch.Generator().manual_seed(0)
    kept, expected = 0.0, 0.0
    for _ in range(200):
        history = LossHistory(1024)
        history.add(torch.linspace(0, 1, 1000))
        losses = torch.full((100,), 0.5)
        kept += select_biggest_losers(losses, history, 3.0, 0.0, g).float().sum().item()
        # the batch joined the history: 425 ramp values <= 0.5 are left, plus the 100 halves
        expected += 100 * (525 / 1024) ** 3
    assert abs(kept - expected) < 4 * (expected ** 0.5)


def test_top_k_keeps_the_highest_losses():
    mask = top_k_mask(torch.tensor([0.1, 0.9, 0.5, 0.7]), keep=0.5)
    assert mask.tolist() == [False, True, False, True]


def test_queue_always_emits_full_batches_in_order():
    q = BackpropQueue(5)
    g = torch.Generator().manual_seed(1)
    pushed, popped = [], []
    counter = 0
    for _ in range(40):
        n = int(torch.randint(0, 8, (1,), generator=g))
        x = torch.arange(counter, counter + n)
        counter += n
        pushed += x.tolist()
        q.push((x, x * 10))
        while q.ready():
            a, b = q.pop()
            assert len(a) == 5 and torch.equal(b, a * 10)
            popped += a.tolist()
    assert popped == pushed[: len(popped)]
    assert q.count == len(pushed) - len(popped) < 5


def _state(loss_fn, n=12):
    model = nn.Linear(3, 2)
    data = TensorDataset(torch.randn(n, 3), torch.randint(0, 2, (n,)))
    return TrainState(model=model, raw_model=model,
                      optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                      budget=Budget("10steps"), config=TrainConfig(micro_batch=4),
                      dist=distributed.Dist(), loss_fn=loss_fn, train_data=data), data


def test_stale_sb_skips_scoring_forwards_exactly_while_stale():
    scored = []

    def counting_loss(model, batch):
        scored.append(len(batch[0]))
        return F.cross_entropy(model(batch[0]), batch[1], reduction="none")

    state, data = _state(counting_loss)
    hook = SelectiveBackprop("sb", staleness=2)
    hook.on_start(state)
    idx = [0, 1, 2, 3]
    batch = tuple(t[idx] for t in data.tensors)
    first = hook.score(state, batch, idx)  # draw 1: never scored -> forward
    second = hook.score(state, batch, idx)  # draw 2: scored 1 draw ago -> cached
    third = hook.score(state, batch, idx)  # draw 3: scored 2 draws ago -> forward again
    assert scored == [4, 4]
    assert torch.equal(first, second)
    assert hook.scoring_forwards == 8
    # a batch mixing stale and fresh examples forwards only the fresh ones
    idx2 = [2, 3, 4, 5]
    hook.score(state, tuple(t[idx2] for t in data.tensors), idx2)
    assert scored == [4, 4, 2]
    assert torch.equal(third, hook.cached[torch.tensor(idx)])


def _problem(n=600):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 10, generator=g)
    return TensorDataset(x, (x @ torch.randn(10, 3, generator=g)).argmax(1))


def ce(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))


@pytest.mark.parametrize("hook", [SelectiveBackprop("sb"), SelectiveBackprop("sb", staleness=3),
                                  SelectiveBackprop("topk", keep=0.5, backward_batch=16)])
def test_trainer_backprops_full_batches_and_counts_scoring(hook):
    micro = 32 if hook.selector == "topk" else 16
    res = train(_net(), _problem(), ce, TrainConfig(budget="30steps", micro_batch=micro,
                                                    quiet=True), hooks=[hook])
    assert res.work["examples_backpropagated"] == 30 * 16
    assert res.work["examples_forwarded"] == 30 * 16 + hook.scoring_forwards
    assert hook.scoring_forwards > 30 * 16  # sb keeps fewer than it scores


def test_priming_uses_every_example_first():
    hook = SelectiveBackprop("sb", prime=0.5)
    res = train(_net(), _problem(), ce, TrainConfig(budget="20steps", micro_batch=16,
                                                    quiet=True), hooks=[hook])
    assert res.work["examples_backpropagated"] == 20 * 16
    assert hook.scoring_forwards > 0
    assert res.work["examples_forwarded"] - hook.scoring_forwards == 20 * 16


def test_resume_with_selection_state_is_exact(tmp_path):
    cfg = dict(budget="40steps", micro_batch=16, quiet=True, checkpoint_every=20,
               out_dir=str(tmp_path))
    whole = _net()
    train(whole, _problem(), ce, TrainConfig(**cfg), hooks=[SelectiveBackprop("sb",
                                                                             staleness=2)])
    (tmp_path / "checkpoints" / "latest").write_text("step-000000020\n")
    resumed = _net()
    train(resumed, _problem(), ce, TrainConfig(resume=True, **cfg),
          hooks=[SelectiveBackprop("sb", staleness=2)])
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_two_ranks_select_locally_and_finish(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "hasten", "train", "--task", "digits", "--method", "sb", "--budget", "25steps",
         "--device", "cpu", "--quiet", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 25
    assert result["work"]["examples_backpropagated"] == 25 * 64 * 2  # full batches, 2 ranks
    assert load_file(str(out / "model.safetensors"))


# -- any batch shape: tokenized text of varying length, padded per batch ---------------------


def _text_data(n=96, vocab=40, seed=0):
    """A tokenized HF Dataset: rows of 3-20 tokens; the label is whether token 7 occurs."""
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)
    rows, labels = [], []
    for _ in range(n):
        length = int(torch.randint(3, 21, (1,), generator=g))
        ids = torch.randint(5, vocab, (length,), generator=g).tolist()
        rows.append([2, *ids, 3])
        labels.append(int(7 in ids))
    return Dataset.from_dict({"input_ids": rows, "label": labels})


def _tiny_bert(vocab=40):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(config)


def text_loss(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits, batch["labels"], reduction="none")


class RowsMatchIndices(Hook):
    """Checks, for every batch trained on, that its rows are the examples of
    `state.batch_indices`, collated afresh."""

    def __init__(self, data, collate):
        self.data, self.collate, self.batches, self.widths = data, collate, 0, set()

    def on_loss(self, state, batch, losses):
        expected = self.collate([self.data[i] for i in state.batch_indices])
        for key in ("input_ids", "attention_mask", "labels"):
            assert torch.equal(batch[key], expected[key]), key
        self.batches += 1
        self.widths.add(batch["input_ids"].shape[1])
        return losses


@pytest.mark.parametrize("selector", ["sb", "topk"])
def test_padded_text_trains_plainly_and_with_selective_backprop(selector):
    data, collate = _text_data(), pad_collate(pad_id=0)
    cfg = dict(budget="12steps", micro_batch=16, quiet=True, tensorboard=False)
    plain_check = RowsMatchIndices(data, collate)
    plain = train(_tiny_bert(), data, text_loss, TrainConfig(**cfg), hooks=[plain_check],
                  collate_fn=collate)
    assert plain.steps == 12 and plain_check.batches == 12
    assert plain.work["examples_backpropagated"] == 12 * 16

    sb = SelectiveBackprop(selector, keep=0.5, backward_batch=8)
    check = RowsMatchIndices(data, collate)  # after SB: sees the batches SB hands back
    res = train(_tiny_bert(), data, text_loss, TrainConfig(**cfg), hooks=[sb, check],
                collate_fn=collate)
    assert res.steps == 12 and check.batches == 12
    assert res.work["examples_backpropagated"] == 12 * 8
    assert res.work["examples_forwarded"] == 12 * 8 + sb.scoring_forwards
    assert len(check.widths) > 1  # batches of different padded widths were joined
    assert sb.queue.pending is None and len(sb.queue.indices) == sb.queue.count < 8


def test_queue_of_indices_takes_full_batches_in_order():
    q = BackpropQueue(4)
    q.push(indices=[5, 1, 9])
    assert not q.ready()
    q.push(indices=[2, 8])
    assert q.take() == (None, [5, 1, 9, 2])
    assert q.indices == [8] and q.count == 1
    with pytest.raises(ValueError, match="this queue holds indices"):
        q.push((torch.zeros(2, 3),))
    with pytest.raises(RuntimeError, match="holds 1 of 4"):
        q.take()


def test_queue_of_rows_tracks_their_indices():
    q = BackpropQueue(3)
    x = torch.arange(8.0)
    q.push((x[:2],), [10, 11])
    q.push((x[2:5],), [12, 13, 14])
    rows, idx = q.take()
    assert rows[0].tolist() == [0.0, 1.0, 2.0] and idx == [10, 11, 12]
    assert q.indices == [13, 14]
    with pytest.raises(ValueError, match="3 indices for a batch of 2 rows"):
        q.push((x[:2],), [1, 2, 3])


class BagOfTokens(nn.Module):
    """Mean of the unpadded tokens' embeddings, then a linear layer (fast, deterministic)."""

    def __init__(self, vocab=40):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.out = nn.Embedding(vocab, 16), nn.Linear(16, 2)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        return self.out((self.embed(input_ids) * mask).sum(1) / mask.sum(1))


def bag_loss(model, batch):
    logits = model(batch["input_ids"], batch["attention_mask"])
    return F.cross_entropy(logits, batch["labels"], reduction="none")


def test_resume_with_queued_indices_is_exact(tmp_path):
    data, collate = _text_data(), pad_collate(pad_id=0)
    cfg = dict(budget="24steps", micro_batch=16, quiet=True, tensorboard=False,
               checkpoint_every=12, out_dir=str(tmp_path))
    whole = BagOfTokens()
    hook = SelectiveBackprop("sb", backward_batch=8)
    train(whole, data, bag_loss, TrainConfig(**cfg), hooks=[hook], collate_fn=collate)
    (tmp_path / "checkpoints" / "latest").write_text("step-000000012\n")
    resumed = BagOfTokens()
    train(resumed, data, bag_loss, TrainConfig(resume=True, **cfg),
          hooks=[SelectiveBackprop("sb", backward_batch=8)], collate_fn=collate)
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
