import torch
from torch.utils.data import TensorDataset

from hasten.data.sampling import ShuffledSampler, batch_size, gather


def test_epochs_are_permutations_and_batches_cross_epoch_ends():
    s = ShuffledSampler(10, seed=3)
    drawn = s.sample(4) + s.sample(4) + s.sample(4) + s.sample(8)
    assert sorted(drawn[:10]) == list(range(10))
    assert sorted(drawn[10:20]) == list(range(10))
    assert drawn[:10] != drawn[10:20]  # a fresh permutation each epoch


def test_ranks_split_each_global_batch_exactly():
    single = ShuffledSampler(50, seed=1)
    ranks = [ShuffledSampler(50, seed=1, rank=r, world_size=2) for r in range(2)]
    for _ in range(7):
        assert ranks[0].sample(4) + ranks[1].sample(4) == single.sample(8)


def test_resume_continues_with_the_next_batch():
    a = ShuffledSampler(13, seed=5)
    for _ in range(5):
        a.sample(3)
    b = ShuffledSampler(13, seed=0)
    b.load_state_dict(a.state_dict())
    assert [b.sample(3) for _ in range(6)] == [a.sample(3) for _ in range(6)]


def test_gather_tensor_and_generic_datasets():
    ds = TensorDataset(torch.arange(10).float(), torch.arange(10) * 2)
    x, y = gather(ds, [3, 1])
    assert x.tolist() == [3.0, 1.0] and y.tolist() == [6, 2]
    items = [{"a": torch.tensor(i)} for i in range(5)]
    batch = gather(items, [4, 0])
    assert batch["a"].tolist() == [4, 0] and batch_size(batch) == 2
