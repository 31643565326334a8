import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core.errors import ConfigError, DataError
from hasten.select import scorers as S
from hasten.select.scorers import ScoringSpec

# logits = x through an identity layer: two examples whose softmax is known by hand
#   row 0: logits (0, 0, 0),     label 0 -> p = (1/3, 1/3, 1/3)
#   row 1: logits (ln 2, 0, 0),  label 1 -> p = (1/2, 1/4, 1/4)
X_KNOWN = torch.tensor([[0.0, 0.0, 0.0], [math.log(2.0), 0.0, 0.0]])
Y_KNOWN = torch.tensor([0, 1])


def identity_model() -> nn.Module:
    layer = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(3))
    return layer


def fixed_spec(**kw) -> ScoringSpec:
    return ScoringSpec(make_model=identity_model, epochs=0, device="cpu", **kw)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def toy_data(n: int = 48, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    return TensorDataset(x, y)


KNOWN = TensorDataset(X_KNOWN, Y_KNOWN)


def test_el2n_of_a_known_softmax():
    s = S.score("el2n", KNOWN, fixed_spec())
    assert s.higher_is == "harder"
    expected = [math.sqrt((2 / 3) ** 2 + 2 * (1 / 3) ** 2),
                math.sqrt(0.5 ** 2 + 0.75 ** 2 + 0.25 ** 2)]
    np.testing.assert_allclose(s.values, expected, rtol=1e-6)


def test_loss_entropy_and_margin_of_known_logits():
    loss = S.score("loss", KNOWN, fixed_spec())
    np.testing.assert_allclose(loss.values, [math.log(3), math.log(4)], rtol=1e-6)
    ent = S.score("entropy", KNOWN, fixed_spec())
    assert ent.higher_is == "harder"
    np.testing.assert_allclose(ent.values, [math.log(3), 1.5 * math.log(2)], rtol=1e-6)
    mar = S.score("margin", KNOWN, fixed_spec())
    assert mar.higher_is == "easier"  # a confident (large-margin) example is easy
    np.testing.assert_allclose(mar.values, [0.0, 0.25], atol=1e-6)


def test_runs_average_and_work_counts():
    s = S.score("el2n", KNOWN, fixed_spec(runs=3))
    np.testing.assert_allclose(s.values, S.el2n_values(X_KNOWN, Y_KNOWN).numpy(), rtol=1e-6)
    assert s.work["examples_forwarded"] == 3 * 2
    assert s.work["examples_backpropagated"] == 0
    assert s.seconds > 0 and s.meta["runs"] == 3


def test_trained_scorer_counts_training_work_and_time():
    data = toy_data(48)
    spec = ScoringSpec(make_model=mlp, epochs=2, lr=1e-2, batch_size=16, device="cpu", runs=2)
    s = S.score("loss", data, spec)
    assert len(s) == 48
    assert s.work["examples_backpropagated"] == 2 * 2 * 48  # 2 runs x 2 epochs
    assert s.work["examples_forwarded"] == 2 * (2 * 48 + 48)  # + one scoring pass per run
    assert s.work["flops"] > 0 and s.seconds > 0


def test_grand_matches_a_manual_per_example_autograd_loop():
    data = toy_data(10)
    spec = ScoringSpec(make_model=mlp, epochs=0, seed=3, batch_size=4, device="cpu")
    s = S.score("grand", data, spec)
    torch.manual_seed(3)
    model = mlp()
    x, y = data.tensors
    expected = []
    for i in range(len(y)):
        loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(loss, list(model.parameters()))
        expected.append(math.sqrt(sum(float(g.pow(2).sum()) for g in grads)))
    np.testing.assert_allclose(s.values, expected, rtol=1e-5)
    assert s.higher_is == "harder" and s.work["examples_backpropagated"] == 10


def test_grand_after_training_differs_from_init():
    data = toy_data(16)
    at_init = S.score("grand", data, ScoringSpec(make_model=mlp, epochs=0, device="cpu"))
    trained = S.score("grand", data, ScoringSpec(make_model=mlp, epochs=2, lr=1e-2,
                                                 batch_size=8, device="cpu"))
    assert not np.allclose(at_init.values, trained.values)


def test_forgetting_events_by_hand():
    # example 0: correct, wrong, correct, wrong -> 2 events; example 1: never learned;
    # example 2: wrong then always correct -> 0; presentations listed in time order
    index = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    correct = np.array([1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1], dtype=bool)
    counts = S.forgetting_counts(index, correct, 3)
    assert counts.tolist() == [2.0, 4.0, 0.0]  # never learned: the most presentations (4)


def test_forgetting_needs_every_example_presented():
    with pytest.raises(DataError, match="1 of 3 examples were never presented"):
        S.forgetting_counts(np.array([0, 1]), np.array([True, True]), 3)


def test_aum_of_known_logit_sequences():
    # example 0 seen twice: logits (2, 1, 0) label 0 -> margin 1; (0, 3, 1) label 0 -> -3
    # example 1 seen once: logits (0, 5, 1) label 1 -> margin 4
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 5.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    margins = S.label_margins(logits, labels)
    assert margins.tolist() == [1.0, -3.0, 4.0]
    assert S.aum_values(np.array([0, 0, 1]), margins.numpy(), 2).tolist() == [-1.0, 4.0]


def test_recorder_logs_each_training_presentation_once():
    data = toy_data(32)
    spec = ScoringSpec(make_model=mlp, epochs=3, lr=1e-2, batch_size=8, device="cpu")
    rec = S.DynamicsRecorder()
    S.train_proxy(data, spec, seed=0, hooks=[rec], loss_fn=rec.loss_fn)
    ev = rec.events()
    # the trainer's FLOP probe is not a presentation: exactly 3 epochs are recorded
    assert np.bincount(ev[:, 0].astype(int), minlength=32).tolist() == [3] * 32
    assert np.all(np.diff(ev[:, 1]) >= 0)  # time order


def test_aum_and_forgetting_flag_mislabelled_examples():
    # three well-separated blobs; the labels of examples 0, 1, 2 are wrong
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    x = 0.7 * torch.randn(60, 4, generator=g)
    x[torch.arange(60), y] += 3.0
    flipped = [0, 1, 2]
    y[flipped] = (y[flipped] + 1) % 3
    noisy = TensorDataset(x, y)
    spec = ScoringSpec(make_model=mlp, epochs=10, lr=0.1, batch_size=12, device="cpu")
    a = S.score("aum", noisy, spec)
    assert a.higher_is == "easier"
    assert sorted(np.argsort(a.values)[:3].tolist()) == flipped  # the lowest AUMs
    f = S.score("forgetting", noisy, spec)
    assert f.higher_is == "harder" and f.values[flipped].min() > np.median(f.values)
    assert f.values.max() == 10  # never learned: the 10 presentations
    assert f.work["examples_backpropagated"] == 10 * 60


def test_training_dynamics_need_a_full_epoch():
    spec = ScoringSpec(make_model=mlp, epochs=0.5, device="cpu")
    with pytest.raises(ConfigError, match="epochs must be >= 1, got 0.5"):
        S.score("aum", toy_data(8), spec)


def test_prototype_distance_on_hand_placed_points():
    # two clusters: directions (1, +-0.5) and (1, 0) around (1, 0); (+-0.5, 1) around (0, 1)
    pts = torch.tensor([[1.0, 0.5], [1.0, -0.5], [3.0, 0.0], [-0.5, 1.0], [0.5, 1.0]])
    d = 1 - 1 / math.sqrt(1.25)  # cosine distance of (1, 0.5) to (1, 0)
    np.testing.assert_allclose(S.prototype_distances(pts, k=2), [d, d, 0, d, d], atol=1e-9)
    data = TensorDataset(pts, torch.tensor([0, 0, 0, 1, 1]))
    s = S.score("prototypes", data, fixed_spec(), embed=lambda x: x)  # k: the 2 classes
    assert s.higher_is == "harder"
    np.testing.assert_allclose(s.values, [d, d, 0, d, d], atol=1e-9)
    with pytest.raises(ConfigError, match=r"k must be in \[1, 5\]"):
        S.score("prototypes", data, fixed_spec(), embed=lambda x: x, k=6)


def test_penultimate_features_come_from_the_last_linear():
    torch.manual_seed(0)
    model = mlp()
    data = toy_data(5)
    out = S.forward_all(model, data, batch_size=2, features=True)
    x, y = data.tensors
    with torch.no_grad():
        np.testing.assert_allclose(out.features, model[1](model[0](x)), rtol=1e-6)
        np.testing.assert_allclose(out.logits, model(x), rtol=1e-6)
    assert out.labels.tolist() == y.tolist()
    s = S.score("prototypes", data, ScoringSpec(make_model=mlp, epochs=1, batch_size=5,
                                                device="cpu"), k=2)
    assert len(s) == 5 and s.meta["k"] == 2


def test_random_is_seeded():
    a, b = S.score("random", toy_data(8), fixed_spec()), S.random_scores(toy_data(8), seed=0)
    np.testing.assert_array_equal(a.values, b.values)


def test_unknown_scorer_names_the_known_ones():
    known = ("aum, el2n, el2n-first-epoch, entropy, forgetting, grand, loss, margin, "
             "prototypes, random")
    with pytest.raises(ConfigError, match=f"unknown scorer 'el3n'; known: {known}"):
        S.score("el3n", KNOWN, fixed_spec())
    with pytest.raises(ConfigError, match="scorer 'el2n' has no option.s. k; known: none"):
        S.score("el2n", KNOWN, fixed_spec(), k=3)


def test_bad_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="runs must be >= 1, got 0"):
        S.score("el2n", KNOWN, fixed_spec(runs=0))
    with pytest.raises(ConfigError, match="precision must be fp32 or bf16"):
        S.score("loss", KNOWN, fixed_spec(precision="fp16"))


# -- any task: the model is seen only through loss_fn / logits_fn of (model, batch) ----------


def _text_data(n=24, vocab=30):
    from datasets import Dataset

    g = torch.Generator().manual_seed(1)
    rows, labels = [], []
    for _ in range(n):
        ids = torch.randint(5, vocab, (int(torch.randint(2, 12, (1,), generator=g)),),
                            generator=g).tolist()
        rows.append([2, *ids, 3])
        labels.append(int(sum(ids) % 2))
    return Dataset.from_dict({"input_ids": rows, "label": labels})


def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(
        vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2))


def text_logits(model, batch):
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return out.logits, batch["labels"]


def text_loss(model, batch):
    logits, labels = text_logits(model, batch)
    return F.cross_entropy(logits, labels, reduction="none")


def _text_spec(**kw):
    from hasten.data import pad_collate

    return ScoringSpec(make_model=tiny_bert, device="cpu", batch_size=8, loss_fn=text_loss,
                       logits_fn=text_logits, collate_fn=pad_collate(), **kw)


def test_padded_text_scores_equal_each_example_scored_alone():
    data, spec = _text_data(), _text_spec(epochs=0)
    torch.manual_seed(spec.seed)
    model = tiny_bert().eval()
    alone = [spec.collate_fn([data[i]]) for i in range(len(data))]
    with torch.no_grad():
        losses = [float(text_loss(model, b)[0]) for b in alone]
        logits = torch.cat([text_logits(model, b)[0] for b in alone])
    labels = torch.tensor(data["label"])
    loss = S.score("loss", data, spec)
    np.testing.assert_allclose(loss.values, losses, rtol=1e-5, atol=1e-6)
    el2n = S.score("el2n", data, spec)
    np.testing.assert_allclose(el2n.values, S.el2n_values(logits, labels).numpy(), rtol=1e-5,
                               atol=1e-6)
    assert loss.meta["loss_fn"] == "text_loss" and el2n.meta["logits_fn"] == "text_logits"
    grand = S.score("grand", data, spec)
    assert len(grand) == len(data) and np.all(grand.values > 0)


def test_proxy_trains_on_padded_text_with_the_tasks_loss():
    data = _text_data()
    s = S.score("aum", data, _text_spec(epochs=1, lr=1e-3))
    assert len(s) == len(data) and s.work["examples_backpropagated"] == len(data)
    entropy = S.score("entropy", data, _text_spec(epochs=1, lr=1e-3))
    assert entropy.work["examples_forwarded"] == 2 * len(data)


def test_grand_through_a_loss_fn_equals_the_vmap_path():
    data = toy_data(9)
    torch.manual_seed(2)
    model = mlp()
    vmapped = S.grand_values(model, data, batch_size=4)
    looped = S.grand_values(model, data, loss_fn=ce_loss)
    np.testing.assert_allclose(looped.numpy(), vmapped.numpy(), rtol=1e-5)


def ce_loss(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y, reduction="none")


def test_a_batch_that_is_not_xy_needs_the_functions():
    data, spec = _text_data(4), _text_spec(epochs=0)
    spec.logits_fn = None
    with pytest.raises(ConfigError, match="a dict batch is not .x, y.: give the ScoringSpec a "
                                          "loss_fn and a logits_fn"):
        S.score("el2n", data, spec)
