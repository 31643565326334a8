import math

import torch

from hasten.models.decoder import Decoder, DecoderConfig, per_sequence_loss


def test_the_decoder_is_causal_and_starts_near_uniform():
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(vocab_size=11, block=16, layers=2, width=32, heads=4))
    ids = torch.randint(0, 11, (3, 17))
    loss = per_sequence_loss(model, (ids,))
    assert loss.shape == (3,) and torch.allclose(loss, torch.full((3,), math.log(11)),
                                                 atol=0.1)
    logits = model(ids[:, :16])
    changed = ids[:, :16].clone()
    changed[:, 10] = (changed[:, 10] + 1) % 11  # a later character cannot change earlier logits
    assert torch.allclose(model(changed)[:, :10], logits[:, :10], atol=1e-6)
    assert not torch.allclose(model(changed)[:, 10:], logits[:, 10:])
