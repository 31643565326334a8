import torch
from torch.utils.data import TensorDataset

from hasten.core.sampling import ShuffledSampler, batch_size, gather


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


def test_fetch_uses_getitems_once():
    from hasten.core.sampling import fetch, gather

    class Rows(torch.utils.data.Dataset):
        calls = 0

        def __len__(self):
            return 5

        def __getitem__(self, i):
            raise AssertionError("item by item")

        def __getitems__(self, ids):
            Rows.calls += 1
            return [{"x": torch.full((i + 1,), i)} for i in ids]

    ds = Rows()
    items = fetch(ds, [3, 0])
    assert Rows.calls == 1 and [len(it["x"]) for it in items] == [4, 1]

    def pad(items):
        width = max(len(it["x"]) for it in items)
        return torch.stack([torch.nn.functional.pad(it["x"], (0, width - len(it["x"])))
                            for it in items])

    assert gather(ds, [1, 2], pad).tolist() == [[1, 1, 0], [2, 2, 2]]


def test_gather_tensor_dataset_with_and_without_collate():
    from torch.utils.data import TensorDataset

    from hasten.core.sampling import gather

    ds = TensorDataset(torch.arange(6).view(3, 2), torch.tensor([7, 8, 9]))
    x, y = gather(ds, [2, 0])
    assert x.tolist() == [[4, 5], [0, 1]] and y.tolist() == [9, 7]
    labels = gather(ds, [1, 2], lambda items: [int(it[1]) for it in items])
    assert labels == [8, 9]
