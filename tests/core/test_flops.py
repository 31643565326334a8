import torch
import torch.nn.functional as F

from hasten.core.flops import flop_counter
from hasten.core.trainer import measure_flops
from hasten.models.encoder import CrammedEncoder, EncoderConfig
from hasten.pretrain.objectives.mlm import make_mlm_loss


def test_cpu_attention_counts_as_torch_counts_the_flash_kernel():
    # q, k, v [2, 4, 16, 8]: each of the two forward matmuls is 2 * (2*4) * 16 * 16 * 8 FLOPs;
    # the backward recomputes the scores and runs four more (torch's flash formula)
    q, k, v = (torch.randn(2, 4, 16, 8, requires_grad=True) for _ in range(3))
    counter = flop_counter()
    with counter:
        out = F.scaled_dot_product_attention(q, k, v)
        forward = counter.get_total_flops()
        out.sum().backward()
    one = 2 * 8 * 16 * 16 * 8
    assert forward == 2 * one
    assert counter.get_total_flops() == 7 * one


def _encoder(attention):
    torch.manual_seed(0)
    return CrammedEncoder(EncoderConfig(vocab_size=64, hidden=64, layers=2, heads=4,
                                        intermediate=128, max_len=64, attention=attention))


def test_encoder_forward_flops_are_the_same_with_sdpa_and_matmul_attention():
    rows = torch.randint(5, 64, (4, 40))
    counted = {}
    for attention in ("sdpa", "matmul"):
        model = _encoder(attention)
        loss_fn = make_mlm_loss([0, 1, 2, 3, 4], 4, 64, sparse="variable")  # same masks
        counted[attention] = measure_flops(model, loss_fn, {"input_ids": rows})[0]
    assert counted["sdpa"] == counted["matmul"]
