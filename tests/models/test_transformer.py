import pytest
import torch

from hasten.bench.mt_metrics import bleu, translate
from hasten.core.trainer import TrainConfig, train
from hasten.data.translation import ParallelText, TranslationData, train_bpe
from hasten.models.transformer import (
    beam_search,
    build_transformer,
    greedy_decode,
    per_token_loss,
    translation_loss,
)


def tiny(vocab=50, **kw):
    torch.manual_seed(0)
    cfg = dict(d_model=32, heads=4, encoder_layers=2, decoder_layers=2, ff=64, dropout=0.0)
    cfg.update(kw)
    return build_transformer(vocab, **cfg).eval()


def random_src(b=5, n=7, vocab=50, seed=1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, vocab, (b, n), generator=g)
    src[1, 4:] = 0  # padded sentences
    src[3, 2:] = 0
    src[torch.arange(b), (src != 0).sum(1) - 1] = 2  # each ends in eos
    return src


def test_embeddings_are_tied_and_shapes_right():
    m = tiny()
    src, tgt = random_src(), torch.randint(4, 50, (5, 6))
    assert m(src, tgt).shape == (5, 6, 50)
    names = [n for n, _ in m.named_parameters()]
    assert sum("embed" in n for n in names) == 1  # one matrix: source, target and output


def test_loss_ignores_padding():
    m = tiny()
    loss_fn = translation_loss(0.1)
    src = random_src()
    tgt = torch.tensor([[1, 7, 8, 9, 2, 0], [1, 5, 2, 0, 0, 0], [1, 6, 6, 2, 0, 0],
                        [1, 9, 2, 0, 0, 0], [1, 4, 5, 6, 7, 2]])
    base = loss_fn(m, (src, tgt))
    assert base.shape == (5,) and torch.isfinite(base).all()
    # more padding columns on either side change nothing
    wider = (torch.cat([src, torch.zeros(5, 3, dtype=torch.long)], 1),
             torch.cat([tgt, torch.zeros(5, 4, dtype=torch.long)], 1))
    torch.testing.assert_close(loss_fn(m, wider), base)
    # a sentence's loss does not depend on the other sentences' lengths
    torch.testing.assert_close(loss_fn(m, (src[1:2], tgt[1:2])), base[1:2], rtol=1e-5,
                               atol=1e-6)
    logits = m(src, tgt[:, :-1])
    per_tok = per_token_loss(logits, tgt[:, 1:], 0, 0.1)
    assert (per_tok[tgt[:, 1:] == 0] == 0).all() and (per_tok[tgt[:, 1:] != 0] > 0).all()
    # token weighting: the trainer's mean is the batch's per-token mean
    tok = translation_loss(0.1, "token")(m, (src, tgt))
    torch.testing.assert_close(tok.mean(), per_tok.sum() / (tgt[:, 1:] != 0).sum())


def test_cached_incremental_decoding_matches_the_full_forward():
    m = tiny()
    src = random_src()
    tgt = torch.randint(4, 50, (5, 6))
    full = m(src, tgt)
    memory, mask = m.encode(src)
    cache = [{} for _ in m.decoder]
    steps = [m.decode(tgt[:, t:t + 1], memory, mask, cache, start=t) for t in range(6)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-5)


def test_beam_one_equals_greedy_on_a_random_model():
    m = tiny(vocab=40)
    src = random_src(b=6, vocab=40, seed=3)
    greedy = greedy_decode(m, src, max_len=12)
    assert beam_search(m, src, beam=1, max_len=12) == greedy
    assert beam_search(m, src, beam=1, length_penalty_alpha=0.0, max_len=12) == greedy
    assert all(len(w) <= 12 for w in beam_search(m, src, beam=5, max_len=12))


def test_decoding_stops_at_eos():
    m = tiny()
    with torch.no_grad():  # make eos the most likely token everywhere
        m.dec_norm.weight.zero_()
        m.dec_norm.bias.copy_(m.embed.weight[2] * 50)
    assert int(m(random_src(), torch.ones(5, 1, dtype=torch.long))[:, 0].argmax(-1)[0]) == 2
    assert greedy_decode(m, random_src(), max_len=20) == [[]] * 5
    assert beam_search(m, random_src(), beam=3, max_len=20) == [[]] * 5


PAIRS = [
    ("A man rides a bike.", "Ein Mann fährt Fahrrad."),
    ("Two dogs play in the snow.", "Zwei Hunde spielen im Schnee."),
    ("A girl is reading a book.", "Ein Mädchen liest ein Buch."),
    ("People walk on the street.", "Leute gehen auf der Straße."),
    ("A child jumps into water.", "Ein Kind springt ins Wasser."),
    ("The woman sings a song.", "Die Frau singt ein Lied."),
    ("Three men are cooking.", "Drei Männer kochen."),
    ("A cat sleeps on a chair.", "Eine Katze schläft auf einem Stuhl."),
]


@pytest.fixture(scope="module")
def overfit():
    """A tiny model trained with hasten's trainer until it has memorised PAIRS."""
    src_text = [s for s, _ in PAIRS]
    tgt_text = [t for _, t in PAIRS]
    tok = train_bpe(src_text + tgt_text, vocab_size=400, min_frequency=1)
    data = TranslationData.from_text(ParallelText(src_text, tgt_text), tok)
    torch.manual_seed(0)
    model = build_transformer(tok.vocab_size, d_model=64, heads=4, encoder_layers=2,
                              decoder_layers=2, ff=128, dropout=0.0)
    cfg = TrainConfig(budget="150steps", lr=3e-3, schedule="cosine",
                      schedule_params={"warmup": 0.1}, micro_batch=8, quiet=True,
                      tensorboard=False, device="cpu", eval_every=1.0, metric="bleu")
    result = train(model, data, translation_loss(0.1), cfg,
                   evaluate=lambda m: {"bleu": bleu(translate(m, data, tok), tgt_text)})
    return model.eval(), tok, data, tgt_text, result


def test_tiny_model_overfits_eight_pairs_and_greedy_reproduces_them(overfit):
    model, tok, data, tgt_text, result = overfit
    assert result.final == pytest.approx(100.0)
    assert translate(model, data, tok, beam=1) == tgt_text
    assert translate(model, data, tok, beam=3, batch_size=3) == tgt_text


def test_beam_one_equals_greedy_on_unseen_sources_of_a_trained_model(overfit):
    model, tok, _, _, _ = overfit
    novel = [" ".join(reversed(s.split())) for s, _ in PAIRS] + [
        "A dog sleeps in the snow.", "Two women walk.", "A man reads on a chair."]
    data = TranslationData.from_text(ParallelText(novel, novel), tok)
    src = data.tensors[0]
    greedy = greedy_decode(model, src)
    assert len({tuple(g) for g in greedy}) > 5  # varied outputs, not one repeated token
    assert beam_search(model, src, beam=1) == greedy
    wide = beam_search(model, src, beam=4, length_penalty_alpha=0.0)

    @torch.no_grad()
    def logprob(i, seq):
        tgt = torch.tensor([[tok.bos_id] + seq + [tok.eos_id]])
        lp = model(src[i:i + 1], tgt[:, :-1]).log_softmax(-1)
        return float(lp[0].gather(1, tgt[0, 1:, None]).sum())

    gains = [logprob(i, w) - logprob(i, g) for i, (g, w) in enumerate(zip(greedy, wide,
                                                                          strict=True))]
    assert min(gains) > -1e-3 and max(gains) >= 0
