import pytest
import torch

from hasten.bench import sst2
from hasten.bench.harness import TASKS, run_one
from hasten.core.errors import DataError


def test_quick_data_splits_and_lengths():
    data = sst2.load(True, False)
    val = sst2.load(True, True)
    ids, lengths, labels = data.train.tensors
    assert ids.shape == (2000, sst2.MAX_LEN) and len(data.test) == 200
    assert len(val.train) == 2000 and len(val.test) == 200
    assert set(labels.unique().tolist()) == {0, 1}
    # padding beyond each row's length is zero, and every row starts with [CLS] (id 2)
    positions = torch.arange(sst2.MAX_LEN)[None, :]
    assert (ids[positions >= lengths[:, None]] == 0).all() and (ids[:, 0] == 2).all()
    recipe = TASKS["sst2-small-val"](0, True)
    assert recipe.difficulty.tolist() == recipe.train_data.tensors[1].double().tolist()
    assert recipe.notes["val_task"] == "sst2-small-val" and recipe.tokens_fn is not None


def test_padding_does_not_change_the_prediction(one_thread):
    torch.manual_seed(0)
    model = sst2.SentenceClassifier(sst2.encoder_config(True)).eval()
    ids, lengths, labels = (t[:8] for t in sst2.load(True, False).train.tensors)
    trimmed = sst2.per_example_loss(model, (ids, lengths, labels))
    mask = torch.arange(sst2.MAX_LEN)[None, :] < lengths[:, None]
    with torch.no_grad():
        full = torch.nn.functional.cross_entropy(model(ids, mask), labels, reduction="none")
    assert torch.allclose(trimmed.detach(), full, atol=1e-5)
    assert sst2.count_tokens((ids, lengths, labels)) == int(lengths.sum())


def test_quick_run_learns_and_counts_tokens(one_thread):
    run, _ = run_one("sst2-small", "baseline", 0, quick=True, budget="1280ex")
    assert run["steps"] == 20 and run["work"]["tokens"] > 1280
    assert 0 <= run["final"] <= 100 and run["metric"] == "accuracy"


def test_missing_data_fails_with_the_file_named(monkeypatch, tmp_path):
    monkeypatch.setenv("HASTEN_DATA", str(tmp_path))
    with pytest.raises(DataError, match="GLUE file not found: .*SST-2/train.tsv"):
        sst2.load.__wrapped__(True, False)
