"""Closed-form parameter and FLOP counts against the model and torch's FLOP counter."""

import torch

from hasten.core.trainer import measure_flops
from hasten.models.encoder import CrammedEncoder, EncoderConfig
from hasten.pretrain.objectives.flops import (
    count_parameters,
    flops_per_token,
    non_embedding_parameters,
)
from hasten.pretrain.objectives.mlm import make_mlm_loss


def test_counts_match_the_model_and_the_counter():
    cfg = EncoderConfig(vocab_size=64, hidden=32, layers=2, heads=2, intermediate=128,
                        max_len=64, attention="sdpa")
    m = CrammedEncoder(cfg)
    layers = sum(p.numel() for n, p in m.named_parameters()
                 if n.startswith("model.layers") and p.dim() == 2)
    assert non_embedding_parameters(cfg) == layers
    norms = sum(p.numel() for p in m.parameters() if p.dim() == 1)
    assert count_parameters(m) == layers + 64 * 32 + 32 * 32 + norms  # table, head, norms
    rows = torch.randint(5, 64, (4, 40))
    loss_fn = make_mlm_loss([0, 1, 2, 3, 4], 4, 64, rate=0.25, sparse=None)
    forward, train = measure_flops(m, loss_fn, rows, units=rows.numel())
    assert abs(forward / flops_per_token(cfg, 40, 1.0) - 1) < 0.01
    assert abs(train / (3 * flops_per_token(cfg, 40, 1.0)) - 1) < 0.03
