import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from hasten.core import distributed
from hasten.select import scorers as S
from hasten.select.per_example import Scores
from hasten.select.shard import score_sharded, shard_bounds, shard_of

ROOT = Path(__file__).resolve().parents[2]
N = 37  # odd: the two shards differ in length (18 and 19), so the gather must un-pad


def make_data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 4, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long())


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def entropy_of_fixed_model(data: Dataset) -> Scores:
    """A fixed-model scorer for score_sharded: entropy of a seeded, untrained model."""
    start = time.perf_counter()
    torch.manual_seed(7)
    out = S.forward_all(make_model(), data, batch_size=5)
    return Scores(S.entropy_values(out.logits).numpy(), "entropy", "harder",
                  seconds=time.perf_counter() - start,
                  work={"examples_forwarded": float(len(data))})


def compute(out: str) -> None:
    """Score with every sharded path; each rank saves what it got (run 1x and under torchrun)."""
    d = distributed.init("cpu")
    data = make_data()
    spec = S.ScoringSpec(make_model=make_model, epochs=2, lr=1e-2, batch_size=8, device="cpu")
    results = {
        "entropy": score_sharded(entropy_of_fixed_model, data, d),
        "el2n": S.score("el2n", data, spec),
        "grand": S.score("grand", data, S.ScoringSpec(make_model=make_model, epochs=0,
                                                      batch_size=8, device="cpu")),
        "aum": S.score("aum", data, spec),
        "prototypes": S.score("prototypes", data, spec, embed=lambda x: x, k=3),
    }
    if d.enabled:
        assert all(results[k].meta["ranks"] == 2 for k in ("entropy",))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, s in results.items():
        np.save(folder / f"{name}_rank{d.rank}.npy", s.values)
        np.save(folder / f"{name}_work_rank{d.rank}.npy",
                np.array([s.work["examples_forwarded"], s.work.get("examples_backpropagated", 0)]))


def test_shards_are_contiguous_and_cover_everything():
    for n, world in [(37, 2), (10, 3), (2, 4)]:
        bounds = [shard_bounds(n, r, world) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        sizes = [hi - lo for lo, hi in bounds]
        assert max(sizes) - min(sizes) <= 1
    d = distributed.Dist(rank=1, world_size=2)
    assert list(shard_of(make_data(), d).indices) == list(range(18, 37))


def test_one_process_score_sharded_is_the_plain_scorer():
    data = make_data()
    a, b = score_sharded(entropy_of_fixed_model, data), entropy_of_fixed_model(data)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.work == {"examples_forwarded": float(N)}


def test_two_processes_gather_the_one_process_scores(tmp_path):
    compute(str(tmp_path / "one"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    script = tmp_path / "run_compute.py"
    script.write_text("import sys\nsys.path.insert(0, sys.argv[1])\nimport test_shard\n"
                      "from hasten.core import distributed\ntest_shard.compute(sys.argv[2])\n"
                      "distributed.shutdown()\n")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(Path(__file__).parent), str(tmp_path / "two")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = tmp_path / "one", tmp_path / "two"
    # fixed models: exact up to float rounding; trained proxies: DDP matches one process
    tolerance = {"entropy": 1e-6, "grand": 1e-6, "prototypes": 1e-9, "el2n": 1e-4, "aum": 1e-4}
    for name, atol in tolerance.items():
        expected = np.load(one / f"{name}_rank0.npy")
        assert expected.shape == (N,)
        for rank in (0, 1):  # every rank gets the full scores, in dataset order
            got = np.load(two / f"{name}_rank{rank}.npy")
            np.testing.assert_allclose(got, expected, atol=atol, rtol=0, err_msg=name)
            np.testing.assert_array_equal(np.load(two / f"{name}_work_rank{rank}.npy"),
                                          np.load(one / f"{name}_work_rank0.npy"))
