"""What a pretraining step costs: parameters and matmul FLOPs per token, from a config.

The counts follow Kaplan et al. 2020 ("Scaling Laws for Neural Language Models"): a forward
pass costs 2 FLOPs per multiply-add of every matmul, training about 3 times the forward
(backward = 2 x forward), and attention adds 2 x 2 x seq_len x hidden per token per layer.
Norms, softmax and sampling are not matmuls and are left out. The trainer measures FLOPs with
torch's counter on a real batch (`hasten.core.trainer.measure_flops`); these closed forms are for
choosing shapes before any model exists (`hasten.pretrain.cram.auto_size`,
`hasten.bench.ladder`), and the tests hold them to the counter.
"""

from __future__ import annotations

from torch import nn

from hasten.models.encoder import EncoderConfig


def count_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (a tied matrix counts once)."""
    seen = {id(p): p.numel() for p in model.parameters() if p.requires_grad}
    return int(sum(seen.values()))


def non_embedding_parameters(cfg: EncoderConfig) -> int:
    """Parameters of the layers (attention q, k, v, o and the GLU), without the token table
    or the head: the N of Kaplan et al. and of the compute-optimal rule."""
    h, i = cfg.hidden, cfg.intermediate
    return cfg.layers * (4 * h * h + h * i + (i // 2) * h)


def flops_per_token(cfg: EncoderConfig, seq_len: int, predicted_fraction: float = 1.0) -> float:
    """Forward FLOPs per token (2 x multiply-adds) of matmuls: layers, attention, head on the
    predicted fraction of rows. Training is about 3x this."""
    h, i = cfg.hidden, cfg.intermediate
    layer = 2 * (3 * h * h + h * h + h * i + (i // 2) * h) + 2 * 2 * seq_len * h
    head = 2 * (h * h + h * cfg.vocab_size) * predicted_fraction
    return float(cfg.layers * layer + head)


def electra_flops_per_token(disc_cfg: EncoderConfig, gen_cfg: EncoderConfig, seq_len: int,
                            mask_rate: float = 0.15, forward_only: bool = False) -> float:
    """Matmul FLOPs per token of one ELECTRA training step (forward + backward = 3 x forward
    unless `forward_only`): the generator (projection in, its layers, head to the embedding
    width and tied decoder on the `mask_rate` fraction of tokens it predicts) plus the
    discriminator (its layers, head dense and binary output on every token)."""
    e, v, g = disc_cfg.hidden, disc_cfg.vocab_size, gen_cfg.hidden
    gen = flops_per_token(gen_cfg, seq_len, 0.0) + (2 * e * g if g != e else 0)
    gen += 2 * (g * e + e * v) * mask_rate
    disc = flops_per_token(disc_cfg, seq_len, 0.0) + 2 * (e * e + e)
    return float(gen + disc) * (1 if forward_only else 3)
