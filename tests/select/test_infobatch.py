import itertools
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hasten.core import distributed
from hasten.core.budget import Budget
from hasten.core.errors import CheckpointError, ConfigError
from hasten.core.trainer import TrainConfig, TrainState, train
from hasten.select.infobatch import (
    EpochSampler,
    InfoBatch,
    InfoBatchHook,
    keep_probabilities,
    loss_weights,
    plan_epoch,
    pruned_count,
    well_learned,
    with_indices,
)

SCORES = torch.tensor([0.1, 2.0, 0.3, 1.5, 0.2, 3.0, 0.4, 1.0], dtype=torch.float64)
SEEN = torch.ones(8, dtype=torch.bool)  # mean 1.0625: ids 0, 2, 4, 6, 7 are below it


def test_well_learned_is_below_the_mean_of_recorded_losses():
    assert well_learned(SCORES, SEEN).nonzero().flatten().tolist() == [0, 2, 4, 6, 7]
    seen = SEEN.clone()
    seen[[5, 1]] = False  # mean of the rest: 3.5 / 6 = 0.5833
    assert well_learned(SCORES, seen).nonzero().flatten().tolist() == [0, 2, 4, 6]
    assert not well_learned(SCORES, torch.zeros(8, dtype=torch.bool)).any()
    assert keep_probabilities(SCORES, SEEN, 0.5).tolist() == [0.5, 1, 0.5, 1, 0.5, 1, 0.5, 0.5]
    assert loss_weights(SCORES, SEEN, 0.25).tolist() == [4 / 3, 1, 4 / 3, 1, 4 / 3, 1, 4 / 3,
                                                         4 / 3]
    assert pruned_count(SCORES, SEEN, 0.5) == 2  # round(2.5), banker's rounding


def _state(batch_indices):
    model = nn.Linear(1, 1)
    return TrainState(model=model, raw_model=model, optimizer=torch.optim.SGD(
        model.parameters(), lr=0.1), budget=Budget("10steps"), config=TrainConfig(),
        dist=distributed.Dist(), loss_fn=None, train_data=None, batch_indices=batch_indices)


def test_expected_gradient_equals_the_full_data_gradient_exactly():
    """Enumerate every pruning outcome of the below-mean examples, with its probability:
    the expected gradient of the hook-reweighted loss sum is the full batch's (fp64)."""
    ratio = 0.3
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (8,), generator=g)
    model = nn.Linear(5, 3).double()

    def grad_of(ids, weigh):
        model.zero_grad()
        losses = F.cross_entropy(model(x[ids]), y[ids], reduction="none")
        if weigh:
            pruner = InfoBatch(8, ratio=ratio)
            pruner.weight_of = loss_weights(SCORES, SEEN, ratio)
            losses = InfoBatchHook(pruner).on_loss(_state(ids), None, losses)
        losses.sum().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    full = grad_of(list(range(8)), weigh=False)
    low = well_learned(SCORES, SEEN).nonzero().flatten().tolist()
    keep_p = keep_probabilities(SCORES, SEEN, ratio)
    expected = torch.zeros_like(full)
    total_p = 0.0
    for kept_low in itertools.product([False, True], repeat=len(low)):
        pairs = list(zip(low, kept_low, strict=True))
        kept = [i for i in range(8) if i not in low] + [i for i, k in pairs if k]
        p = 1.0
        for i, k in pairs:
            p *= float(keep_p[i]) if k else 1.0 - float(keep_p[i])
        expected += p * grad_of(sorted(kept), weigh=True)
        total_p += p
    assert total_p == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(expected, full, atol=1e-6, rtol=0)
    assert not torch.allclose(grad_of(sorted(set(range(8)) - set(low[:2])), weigh=False), full,
                              atol=1e-3)  # dropping without rescaling is biased


def test_plan_epoch_keeps_the_rest_and_weights_as_the_rule_says():
    for seed in range(20):
        order, weights = plan_epoch(SCORES, SEEN, 0.5, "infobatch",
                                    torch.Generator().manual_seed(seed))
        assert set(order.tolist()) >= {1, 3, 5}  # at or above the mean: never pruned
        assert len(set(order.tolist())) == len(order)
        assert torch.equal(weights, loss_weights(SCORES, SEEN, 0.5))
    counts = torch.zeros(8)
    for seed in range(2000):
        order, _ = plan_epoch(SCORES, SEEN, 0.5, "infobatch", torch.Generator().manual_seed(seed))
        counts[order] += 1
    assert counts[[1, 3, 5]].tolist() == [2000, 2000, 2000]
    assert ((counts[[0, 2, 4, 6, 7]] / 2000 - 0.5).abs() < 0.05).all()


def test_controls_drop_the_same_count_without_rescaling():
    order, weights = plan_epoch(SCORES, SEEN, 0.5, "drop-easiest", torch.Generator())
    assert sorted(order.tolist()) == [1, 2, 3, 5, 6, 7]  # the two lowest (0.1, 0.2) go
    assert weights.tolist() == [1.0] * 8
    for seed in range(10):
        order, weights = plan_epoch(SCORES, SEEN, 0.5, "random-drop",
                                    torch.Generator().manual_seed(seed))
        assert len(order) == 6 and len(set(order.tolist())) == 6
        assert weights.tolist() == [1.0] * 8
    with pytest.raises(ConfigError, match="unknown pruning rule 'nope'"):
        plan_epoch(SCORES, SEEN, 0.5, "nope", torch.Generator())


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"prune ratio must be in \[0, 1\), got 1.0"):
        InfoBatch(10, ratio=1.0)
    with pytest.raises(ConfigError, match=r"anneal must be a budget fraction in \[0, 1\]"):
        InfoBatch(10, anneal=1.5)
    with pytest.raises(ConfigError, match="unknown pruning rule 'x'"):
        InfoBatch(10, rule="x")


def _losses_of(ids):
    return torch.tensor([float(i) for i in ids], dtype=torch.float64)  # score = id


def test_first_epoch_is_full_then_epochs_shrink():
    pruner = InfoBatch(20, ratio=0.5, anneal=1.0, seed=3)
    first = pruner.sample(20)
    assert sorted(first) == list(range(20)) and pruner.weights(first).tolist() == [1.0] * 20
    pruner.record(first, _losses_of(first))  # ids 0..9 are below the mean 9.5
    second = pruner.sample(5)
    assert pruner.epoch == 1
    kept = pruner.order.tolist()
    assert set(range(10, 20)) <= set(kept) and len(kept) < 20
    assert pruner.weights(second).tolist() == [2.0 if i < 10 else 1.0 for i in second]
    assert pruner.stats()["pruned"] == 20 - len(kept)


def test_no_pruning_after_the_annealing_point_exactly():
    n, batch, steps, anneal = 30, 7, 60, 0.5
    pruner = InfoBatch(n, ratio=0.5, anneal=anneal, seed=1)
    draws = []
    for step in range(steps):
        progress = step / steps
        ids = pruner.sample(batch, progress)
        draws.append((progress, ids, pruner.weights(ids).tolist()))
        pruner.record(ids, _losses_of(ids))
    before = [d for d in draws if d[0] < anneal]
    after = [d for d in draws if d[0] >= anneal]
    assert any(w != 1.0 for _, _, ws in before for w in ws)  # it did prune before
    assert all(w == 1.0 for _, _, ws in after for w in ws)
    stream = [i for _, ids, _ in after for i in ids]
    for lo in range(0, len(stream) - n + 1, n):  # full epochs, back to back
        assert sorted(stream[lo:lo + n]) == list(range(n))
    assert pruner.annealed


def _problem(n=96):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, (x @ torch.randn(6, 3, generator=g)).argmax(1))


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def ce(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def test_trainer_trains_only_the_kept_examples_and_counts_them():
    pruner = InfoBatch(96, ratio=0.5, anneal=0.875, seed=0)
    res = train(_net(), _problem(), ce, TrainConfig(budget="960ex", micro_batch=16, lr=0.05,
                                                    quiet=True, tensorboard=False),
                sampler=pruner, hooks=[InfoBatchHook(pruner)])
    assert res.work["examples_backpropagated"] == res.work["examples_forwarded"] == 960
    assert res.steps == 60
    stats = pruner.stats()
    assert stats["pruned"] > 0 and stats["epochs"] > 10  # more epochs than the full data's 10
    assert stats["annealed"] and stats["drawn"] == 960


def test_state_resumes_bit_exact(tmp_path):
    def run(resume):
        pruner = InfoBatch(96, ratio=0.5, anneal=0.75, seed=2)
        model = _net()
        cfg = TrainConfig(budget="40steps", micro_batch=16, lr=0.05, quiet=True,
                          checkpoint_every=20, out_dir=str(tmp_path), resume=resume,
                          tensorboard=False)
        train(model, _problem(), ce, cfg, sampler=pruner, hooks=[InfoBatchHook(pruner)])
        return model, pruner

    whole, p_whole = run(False)
    (tmp_path / "checkpoints" / "latest").write_text("step-000000020\n")
    resumed, p_resumed = run(True)
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    for key, value in p_whole.state_dict().items():
        other = p_resumed.state_dict()[key]
        assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other


def test_state_dict_continues_the_same_draws():
    a = InfoBatch(50, ratio=0.5, seed=4)
    for step in range(12):
        ids = a.sample(8, step / 40)
        a.record(ids, _losses_of(ids))
    b = InfoBatch(50, ratio=0.5, seed=4)
    b.load_state_dict(a.state_dict())
    for step in range(12, 40):
        ids_a, ids_b = a.sample(8, step / 40), b.sample(8, step / 40)
        assert ids_a == ids_b and torch.equal(a.weights(ids_a), b.weights(ids_b))
        a.record(ids_a, _losses_of(ids_a))
        b.record(ids_b, _losses_of(ids_b))
    with pytest.raises(CheckpointError, match="saved with ratio=0.5, this sampler has 0.3"):
        InfoBatch(50, ratio=0.3, seed=4).load_state_dict(a.state_dict())


def test_hook_refuses_rows_it_cannot_map():
    hook = InfoBatchHook(InfoBatch(10))
    with pytest.raises(ConfigError, match="the batch has 2 rows but state.batch_indices "
                                          "names 3"):
        hook.on_loss(_state([0, 1, 2]), None, torch.ones(2))


def test_torch_dataloader_one_pruned_epoch_per_iteration():
    data = _problem(40)
    pruner = InfoBatch(40, ratio=0.5, anneal=1.0, seed=0)
    loader = DataLoader(with_indices(data), batch_size=8, sampler=EpochSampler(pruner))
    sizes = []
    for _ in range(3):
        seen = []
        for ids, (x, _y) in loader:
            assert torch.equal(x, data.tensors[0][ids])
            pruner.record(ids, _losses_of(ids.tolist()))
            seen += ids.tolist()
        assert len(seen) == len(set(seen)) == len(loader.sampler)
        sizes.append(len(seen))
    assert sizes[0] == 40 and sizes[1] < 40 and sizes[2] < 40


DDP_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch, torch.nn.functional as F
    from torch import nn
    from torch.utils.data import TensorDataset
    from hasten.core import distributed
    from hasten.select.infobatch import InfoBatch, InfoBatchHook
    from hasten.core.trainer import TrainConfig, train

    out, micro = sys.argv[1], int(sys.argv[2])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    data = TensorDataset(x, (x @ torch.randn(6, 3, generator=g)).argmax(1))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    pruner = InfoBatch(96, ratio=0.5, anneal=0.75, seed=5)
    draws = []
    sample = pruner.sample
    pruner.sample = lambda n, p=0.0: draws.append(sample(n, p)) or draws[-1]
    cfg = TrainConfig(budget="1280ex", micro_batch=micro, lr=0.05, quiet=True,
                      tensorboard=False, device="cpu")
    loss = lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none")
    train(model, data, loss, cfg, sampler=pruner, hooks=[InfoBatchHook(pruner)])
    rank = pruner.rank
    json.dump({"draws": draws, "scores": pruner.scores.tolist(), "stats": pruner.stats()},
              open(f"{out}.{rank}.json", "w"))
    distributed.shutdown()
""")


def test_two_ranks_draw_what_one_process_draws(tmp_path):
    script = tmp_path / "ddp_infobatch.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for cmd in ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node", "2", str(script), str(tmp_path / "ddp"), "8"],
                [sys.executable, str(script), str(tmp_path / "one"), "16"]):
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1, one = (json.loads((tmp_path / name).read_text())
                   for name in ("ddp.0.json", "ddp.1.json", "one.0.json"))
    assert r0["scores"] == r1["scores"]  # every rank holds the same scores
    assert r0["stats"] == r1["stats"] == one["stats"] and one["stats"]["pruned"] > 0
    joined = [a + b for a, b in zip(r0["draws"], r1["draws"], strict=True)]
    assert joined == one["draws"]  # the same pruned permutations, split across the ranks
    assert r0["scores"] == pytest.approx(one["scores"], abs=1e-4)
