import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core.errors import ConfigError
from hasten.core.trainer import Hook, TrainConfig, param_groups, train


def _problem(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    y = (x @ torch.randn(16, 4, generator=g)).argmax(1)
    return TensorDataset(x, y)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.ReLU(), nn.Linear(32, 4))


def ce(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y, reduction="none")


def _accuracy(data):
    x, y = data.tensors
    return lambda m: {"accuracy": 100.0 * (m(x).argmax(1) == y).float().mean().item()}


class Recorder(Hook):
    def __init__(self):
        self.lrs, self.progress, self.evals, self.started = [], [], [], False
        self.train_seconds = []  # the budget's training clock at each step's end

    def on_start(self, state):
        self.started = True

    def on_step_end(self, state):
        self.lrs.append(state.lr)
        self.progress.append(state.progress)
        self.train_seconds.append(state.budget.ledger.current("train"))

    def on_eval(self, state, metrics):
        self.evals.append((state.step, metrics["accuracy"]))


def test_wall_clock_budget_ends_on_time_with_final_lr(fake_clock):
    data = _problem()
    rec = Recorder()

    def slow_ce(model, batch):
        fake_clock.sleep(1 / 16)  # every micro-batch takes 62.5 ms of the fake clock
        return ce(model, batch)

    def slow_eval(model):
        fake_clock.sleep(0.25)  # evaluation must not eat the training budget
        return _accuracy(data)(model)

    start = fake_clock.perf_counter()
    # eval_share 0.5: all five 0.25 s evaluations fit (the default 15% would keep three)
    res = train(_model(), data, slow_ce, TrainConfig(budget="5s", lr=0.01, schedule="linear",
                                                     micro_batch=32, eval_every=0.2,
                                                     quiet=True, eval_share=0.5),
                evaluate=slow_eval, hooks=[rec])
    wall = fake_clock.perf_counter() - start
    ends = rec.train_seconds
    assert res.stopped == "budget" and len(ends) == res.steps
    # On time to within the step that crossed the budget, plus at most one more step when that
    # one crossed it before the schedule was projected to end (that extra step runs at the
    # final LR). Bounds in steps, not seconds, so a loaded machine cannot break them.
    assert ends[-3] < 5.0 <= ends[-1] <= res.ledger["train"]
    if ends[-2] >= 5.0:
        assert rec.progress[-1] == 1.0 and rec.progress[-2] < 1.0
    assert res.ledger["train"] - ends[-1] < 0.05
    assert res.ledger["eval"] >= 0.25 * 5  # evaluations at 0.2, 0.4, 0.6, 0.8 and the end
    assert wall >= res.ledger["train"] + res.ledger["eval"]
    assert rec.lrs[-1] == 0.0  # the final value of the linear schedule, reached at the end
    assert rec.lrs[0] > 0.009
    assert all(a >= b for a, b in zip(rec.lrs, rec.lrs[1:], strict=False))  # decays throughout
    assert rec.started and len(rec.evals) == 5


def test_step_budget_runs_exactly_n_steps_and_counts_work():
    data = _problem()
    rec = Recorder()
    res = train(_model(), data, ce, TrainConfig(budget="40steps", micro_batch=16, quiet=True,
                                                eval_every=0.25),
                evaluate=_accuracy(data), hooks=[rec])
    assert res.steps == 40 and len(rec.lrs) == 40
    assert rec.progress[-1] == 1.0 and rec.progress[0] == 1 / 40
    assert res.work["examples_forwarded"] == res.work["examples_backpropagated"] == 40 * 16
    # matmul FLOPs per example: forward 2*16*32 + 2*32*4; backward the weight gradients of
    # both layers plus the input gradient of the second (the data needs no gradient)
    forward, backward = 2 * 16 * 32 + 2 * 32 * 4, 2 * 16 * 32 + 2 * 2 * 32 * 4
    assert res.work["flops"] == 40 * 16 * (forward + backward)
    assert [s for s, _ in rec.evals] == [10, 20, 30, 40]
    assert [c[1]["steps"] for c in res.curve] == [10, 20, 30, 40]
    assert res.final == res.curve[-1][2]


def test_example_budget_stops_within_one_step():
    data = _problem()
    res = train(_model(), data, ce, TrainConfig(budget="1000ex", micro_batch=64, quiet=True))
    assert res.work["examples_forwarded"] == 1024  # 16 steps of 64: the step that crosses
    assert res.steps == 16


def test_accumulation_equals_one_big_batch():
    data = _problem()
    big, acc = _model(1), _model(1)
    cfg = dict(budget="3steps", lr=0.05, schedule="constant", optimizer="sgd", quiet=True)
    train(big, data, ce, TrainConfig(micro_batch=64, **cfg))
    train(acc, data, ce, TrainConfig(micro_batch=16, batch_start=4, batch_end=4, **cfg))
    for a, b in zip(big.parameters(), acc.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_batch_ramp_grows_examples_per_step():
    seen = []

    class Sizes(Hook):
        def on_step_end(self, state):
            seen.append(state.budget.work.examples_backpropagated)

    train(_model(), _problem(), ce, TrainConfig(budget="10steps", micro_batch=8, batch_start=1,
                                                batch_end=4, batch_ramp=0.5, quiet=True),
          hooks=[Sizes()])
    per_step = [b - a for a, b in zip([0] + seen, seen, strict=False)]
    assert per_step[0] == 8 and per_step[-1] == 32
    assert per_step == sorted(per_step)


def test_hook_can_subset_and_skip_batches():
    class KeepHalfSkipOdd(Hook):
        calls = 0

        def on_batch(self, state, batch):
            KeepHalfSkipOdd.calls += 1
            if KeepHalfSkipOdd.calls % 2:
                return None  # skipped: the trainer draws another batch
            state.count_forward(len(batch[0]))  # e.g. a scoring pass over the full batch
            return tuple(t[: len(t) // 2] for t in batch)

    res = train(_model(), _problem(), ce,
                TrainConfig(budget="5steps", micro_batch=32, quiet=True),
                hooks=[KeepHalfSkipOdd()])
    assert res.work["examples_backpropagated"] == 5 * 16
    assert res.work["examples_forwarded"] == 5 * 16 + 5 * 32
    forward, backward = 2 * 16 * 32 + 2 * 32 * 4, 2 * 16 * 32 + 2 * 2 * 32 * 4
    assert res.work["flops"] == 5 * 16 * (forward + backward) + 5 * 32 * forward


def test_no_weight_decay_on_norms_and_biases():
    model = _model()
    groups = param_groups(model, 0.1)
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    decayed = {id(p) for p in groups[0]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert names == {"0.weight", "3.weight"}


def test_bf16_autocast_trains():
    data = _problem()
    res = train(_model(), data, ce, TrainConfig(budget="30steps", lr=0.01, precision="bf16",
                                                micro_batch=64, quiet=True),
                evaluate=_accuracy(data))
    assert res.final > 50.0


def test_bad_config_and_data():
    data = _problem()
    with pytest.raises(ConfigError, match="lr must be"):
        train(_model(), data, ce, TrainConfig(lr=-1.0))
    with pytest.raises(ConfigError, match="cannot parse budget"):
        train(_model(), data, ce, TrainConfig(budget="soon"))
    with pytest.raises(ConfigError, match="precision"):
        train(_model(), data, ce, TrainConfig(precision="fp8"))
    with pytest.raises(ConfigError, match="train_data must be a non-empty dataset"):
        train(_model(), TensorDataset(torch.zeros(0, 16), torch.zeros(0).long()), ce,
              TrainConfig())
    with pytest.raises(ConfigError, match="one loss per example"):
        train(_model(), data, lambda m, b: ce(m, b).mean(), TrainConfig(budget="2steps"))
    with pytest.raises(ConfigError, match="lacks the metric"):
        train(_model(), data, ce, TrainConfig(budget="2steps", quiet=True),
              evaluate=lambda m: {"loss": 1.0})


def test_token_budget_counts_tokens_fn():
    data = _problem()
    res = train(_model(), data, ce, TrainConfig(budget="1000tok", micro_batch=8, quiet=True),
                tokens_fn=lambda batch: 10 * len(batch[1]))  # 10 tokens per example
    assert res.work["tokens"] == 1040  # 13 steps of 80 tokens: the step that crosses 1000
    assert res.steps == 13


def test_flops_follow_tokens_when_lengths_vary():
    # Sequences of 1 to 8 real 16-d tokens, zero-padded to 8. The loss runs a bias-free
    # 16 -> 4 linear layer on the real tokens only, so each token costs 2 * 16 * 4 FLOPs
    # forward and as many for the weight gradient. FLOPs are measured once, on the first
    # batch; counted per example they would be off, as that batch's mean length is not the
    # run's. Counted per token (the run has a tokens_fn) they are exact.
    g = torch.Generator().manual_seed(0)
    n, width = 256, 8
    lengths = torch.randint(1, width + 1, (n,), generator=g)
    mask = torch.arange(width)[None, :] < lengths[:, None]
    data = TensorDataset(torch.randn(n, width, 16, generator=g) * mask[..., None],
                         torch.randint(0, 4, (n, width), generator=g), mask)

    def per_sequence_loss(model, batch):
        x, y, m = batch
        token_loss = F.cross_entropy(model(x[m]), y[m], reduction="none")
        summed = torch.zeros(len(x)).index_add(0, m.nonzero()[:, 0], token_loss)
        return summed / m.sum(1)

    res = train(nn.Linear(16, 4, bias=False), data, per_sequence_loss,
                TrainConfig(budget="10steps", micro_batch=16, quiet=True),
                tokens_fn=lambda batch: int(batch[2].sum()))
    per_token = 2 * (2 * 16 * 4)
    assert 10 * 16 <= res.work["tokens"] <= 10 * 16 * width
    assert res.work["flops"] == res.work["tokens"] * per_token
    probe_tokens = int(lengths[:16].sum())  # the first batch's
    assert res.work["flops"] != 10 * probe_tokens * per_token  # what per example would give


def test_run_log_writes_jsonl_and_tensorboard(tmp_path):
    data = _problem()
    train(_model(), data, ce, TrainConfig(budget="20steps", micro_batch=8, log_every=5,
                                          eval_every=0.5, out_dir=str(tmp_path), quiet=True),
          evaluate=_accuracy(data))
    import json

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [5, 10, 15, 20]
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [10, 20]
    assert rows[-1]["kind"] == "end" and rows[-1]["work"]["steps"] == 20
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_compile_books_the_first_step_apart():
    data = _problem()
    plain, compiled = _model(2), _model(2)
    cfg = dict(budget="6steps", lr=0.01, micro_batch=32, quiet=True, schedule="constant")
    a = train(plain, data, ce, TrainConfig(**cfg))
    b = train(compiled, data, ce, TrainConfig(compile=True, **cfg))
    assert b.ledger["compile"] > 0 and a.ledger["compile"] == 0
    assert b.steps == 6
    for p, q in zip(plain.parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4)


def test_adamw_implementations_train_the_same():
    data = _problem()
    results = []
    for opts in ({}, {"foreach": False, "fused": False}, {"fused": True}):
        model = _model(3)
        train(model, data, ce, TrainConfig(budget="5steps", micro_batch=32, quiet=True, **opts))
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(results[0], results[1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(results[0], results[2], atol=1e-6, rtol=1e-5)


def test_channels_last_trains_like_contiguous():
    from hasten.models.vision import ConvNet3

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,),
                                                                              generator=g))
    weights = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = ConvNet3((1, 8, 8), 3, width=8, depth=2)
        train(model, data, ce, TrainConfig(budget="4steps", micro_batch=16, quiet=True,
                                           channels_last=channels_last))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], atol=1e-5, rtol=1e-4)


def test_on_loss_reweights_and_sees_batch_indices():
    seen = []

    class ZeroSecondHalf(Hook):
        def on_loss(self, state, batch, losses):
            seen.append(list(state.batch_indices))
            weights = torch.ones_like(losses)
            weights[len(losses) // 2:] = 0.0
            return losses * weights

    data = _problem(64)
    cfg = dict(budget="1steps", micro_batch=8, quiet=True, lr=0.1, optimizer="sgd",
               momentum=0.0, schedule="constant")
    res = train(_model(), data, ce, TrainConfig(**cfg), hooks=[ZeroSecondHalf()])
    assert res.steps == 1 and len(seen) == 1 and len(seen[0]) == 8
    # the same step by hand on the first half of the batch, at half weight
    model = _model()
    x, y = data.tensors
    idx = torch.tensor(seen[0][:4])
    loss = F.cross_entropy(model(x[idx]), y[idx], reduction="sum") / 8
    loss.backward()
    with torch.no_grad():
        expected = [p - 0.1 * p.grad for p in model.parameters()]
    trained = _model()
    train(trained, data, ce, TrainConfig(**cfg), hooks=[ZeroSecondHalf()])
    for got, want in zip(trained.parameters(), expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6)


def test_collate_fn_pads_variable_length_items():
    class Ragged(torch.utils.data.Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return {"ids": torch.arange(1 + i % 5), "label": i % 2}

    def pad(items):
        width = max(len(it["ids"]) for it in items)
        ids = torch.zeros(len(items), width, dtype=torch.long)
        for row, it in enumerate(items):
            ids[row, :len(it["ids"])] = it["ids"]
        return {"ids": ids, "label": torch.tensor([it["label"] for it in items])}

    emb = nn.EmbeddingBag(8, 2, mode="sum")

    def loss(model, batch):
        return F.cross_entropy(model(batch["ids"]), batch["label"], reduction="none")

    res = train(emb, Ragged(), loss, TrainConfig(budget="3steps", micro_batch=8, quiet=True),
                collate_fn=pad)
    assert res.steps == 3 and res.work["examples_backpropagated"] == 24
