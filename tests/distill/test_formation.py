"""Multi-formation (IDC): decode/encode on hand-checked tensors, and its use in distill,
the coreset baselines, the evaluator and the CLI."""

import functools

import pytest
import torch
import torch.nn.functional as F

from hasten.cli import main
from hasten.core.errors import CheckpointError, ConfigError, DataError
from hasten.data.vision import load_vision
from hasten.distill import distill, evaluate, random_subset
from hasten.distill.coreset import formed
from hasten.distill.formation import check_factor, decode, decode_labels, encode
from hasten.distill.methods import init_images
from hasten.distill.synthetic import SyntheticSet

SMALL = {"width": 8, "batch_real": 32, "progress": False}


@functools.cache
def digits():
    return load_vision("digits")


def test_decode_cuts_row_major_tiles_and_upsamples_each():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # one 2x2 image -> four 1x1 tiles
    out = decode(x, 2)
    assert out.shape == (4, 1, 2, 2)
    for k, v in enumerate([1.0, 2.0, 3.0, 4.0]):
        assert torch.equal(out[k], torch.full((1, 2, 2), v))
    assert torch.equal(decode_labels(torch.tensor([7, 3]), 2), torch.tensor([7] * 4 + [3] * 4))


def test_decode_matches_manual_slicing_and_factor_one_is_identity():
    x = torch.randn(3, 2, 8, 8)
    out = decode(x, 2)
    for n in range(3):
        for i in range(2):
            for j in range(2):
                tile = x[n:n + 1, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4]
                want = F.interpolate(tile, size=(8, 8), mode="bilinear", align_corners=False)
                assert torch.allclose(out[4 * n + 2 * i + j], want[0], atol=1e-6)
    assert decode(x, 1) is x and encode(x, 1) is x


def test_encode_tiles_area_downsampled_images_and_inverts_decode_on_constants():
    x = torch.arange(4 * 16, dtype=torch.float32).reshape(4, 1, 4, 4)
    stored = encode(x, 2)
    assert stored.shape == (1, 1, 4, 4)
    for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        want = F.avg_pool2d(x[k:k + 1], 2)[0]
        assert torch.equal(stored[0, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2], want)
    const = torch.arange(8.0).reshape(8, 1, 1, 1).expand(8, 3, 6, 6).contiguous()
    assert torch.allclose(decode(encode(const, 2), 2), const)
    with pytest.raises(ConfigError, match="multiple of factor"):
        encode(torch.zeros(3, 1, 4, 4), 2)


def test_decode_is_differentiable_and_each_pixel_feeds_four_outputs():
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    decode(x, 2).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 4.0))  # bilinear x2: weights sum to 4


def test_check_factor_errors():
    assert check_factor(1, (64,)) == 1 and check_factor(4, (1, 8, 8)) == 4
    with pytest.raises(ConfigError, match="integer >= 1"):
        check_factor(0, (1, 8, 8))
    with pytest.raises(ConfigError, match="integer >= 1"):
        check_factor(True, (1, 8, 8))
    with pytest.raises(ConfigError, match="factor 3 does not divide the image size 8x8"):
        check_factor(3, (1, 8, 8))
    with pytest.raises(ConfigError, match="needs images"):
        check_factor(2, (64,))
    with pytest.raises(DataError, match="factor 3 does not divide"):
        SyntheticSet(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), {"factor": 3})
    with pytest.raises(DataError, match="factor must be an integer >= 1, got 'x'"):
        SyntheticSet(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), {"factor": "x"})


def test_real_init_packs_distinct_real_images_of_the_class():
    data = digits()
    x, y = data.train.tensors
    class_x = [x[y == c] for c in range(10)]
    got = init_images(class_x, 2, "real", torch.Generator().manual_seed(5), factor=2)
    g = torch.Generator().manual_seed(5)
    want = torch.cat([encode(xc[torch.randperm(len(xc), generator=g)[:8]], 2)
                      for xc in class_x])
    assert got.shape == (20, 1, 8, 8) and torch.equal(got, want)


@pytest.mark.parametrize("method", ["dm", "dsa"])
def test_distill_with_factor_keeps_storage_and_trains_on_decoded_images(method):
    syn = distill(method, digits(), 2, "2steps", factor=2, **SMALL)
    assert syn.images.shape == (20, 1, 8, 8) and syn.ipc == 2 and syn.factor == 2
    assert syn.meta["factor"] == 2
    x, y = syn.training_set()
    assert x.shape == (80, 1, 8, 8)
    assert torch.equal(y, torch.arange(10).repeat_interleave(8))
    assert torch.equal(x, decode(syn.images, 2))
    result = evaluate(syn, digits(), models=1, epochs=2, width=8)
    assert result.meta["train_examples"] == 80


def test_dc_inner_training_leaves_the_images_alone(monkeypatch):
    """DC trains its network on the decoded set with the images detached: no gradient may
    reach them outside the matching loss."""
    from hasten.distill.dc import DC

    seen = []
    original = DC._train_net

    def spy(self, net, net_opt):
        before = self.ctx.syn.grad.clone()
        out = original(self, net, net_opt)
        seen.append(torch.equal(self.ctx.syn.grad, before))
        return out

    monkeypatch.setattr(DC, "_train_net", spy)
    distill("dc", digits(), 1, "1steps", factor=2, outer_loop=2, inner_loop=1, **SMALL)
    distill("dc", digits(), 1, "1steps", outer_loop=2, inner_loop=1, **SMALL)
    assert seen == [True, True]


def test_mtt_with_factor_draws_minibatches_of_decoded_images(tmp_path):
    syn = distill("mtt", digits(), 1, "2steps", factor=2, num_experts=1, max_start_epoch=2,
                  expert_epochs=1, syn_steps=3, batch_syn=8,
                  expert_dir=tmp_path / "experts", **SMALL)
    assert syn.images.shape == (10, 1, 8, 8) and syn.factor == 2
    assert len(syn.dataset()) == 40


def test_factor_is_part_of_the_run_config_and_checked_against_the_data(tmp_path):
    distill("dm", digits(), 1, "1steps", checkpoint_dir=tmp_path, **SMALL)
    with pytest.raises(CheckpointError, match="factor was 1, now 2"):
        distill("dm", digits(), 1, "2steps", factor=2, checkpoint_dir=tmp_path, resume=True,
                **SMALL)
    smallest = int(torch.bincount(digits().train.tensors[1]).min())
    ipc = smallest // 4 + 1
    with pytest.raises(ConfigError, match=f"starts from {4 * ipc} real images per class"):
        distill("dm", digits(), ipc, "1steps", factor=2, **SMALL)


def test_formed_random_subset_is_idc_init():
    data = digits()
    plain = random_subset(data, 4, seed=3)
    packed = formed(plain, 2)
    assert packed.images.shape == (10, 1, 8, 8) and packed.ipc == 1 and packed.factor == 2
    assert packed.meta["ipc"] == 1 and packed.method == "random"
    assert torch.equal(packed.labels, torch.arange(10))
    assert torch.equal(packed.images, encode(plain.images, 2))
    with pytest.raises(ConfigError, match="packs 4 images per stored image"):
        formed(random_subset(data, 3), 2)


def test_cli_factor(tmp_path, capsys):
    out = tmp_path / "r" / "set.safetensors"
    assert main(["distill", "--data", "digits", "--method", "random", "--ipc", "2",
                 "--factor", "2", "--out", str(out.parent), "--quiet"]) == 0
    assert "wrote 20 images (2 per class, each holding 4)" in capsys.readouterr().out
    assert SyntheticSet.load(out).factor == 2
    assert main(["distill", "eval", str(out), "--models", "1", "--epochs", "1", "--width",
                 "8", "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "random ipc 2 (factor 2) on digits" in lines[-2]
    assert '"factor": 2' in lines[-1] and '"train_examples": 80' in lines[-1]
    assert main(["distill", "--data", "digits", "--method", "dm", "--factor", "3",
                 "--out", str(tmp_path / "f3")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "hasten: error: factor 3 does not divide the image size 8x8"
