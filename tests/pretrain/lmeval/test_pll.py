"""Pseudo-log-likelihood: batched scoring against a slow one-copy-per-forward reference,
exactly which positions PLL-word-l2r masks, and the crammed encoder against its HF export."""

import numpy as np
import pytest
import torch
from lmeval_helpers import (
    bert,
    crammed,
    get_fixed_tok,
    get_hf_tok,
    get_tiny_bert,
    get_tiny_export,
    get_wordpiece,
)

from hasten.core.errors import ConfigError
from hasten.pretrain.lmeval.loading import load_lm, wrap_lm
from hasten.pretrain.lmeval.pll import masked_copies, pll_scores, tokenize

SENTENCES = ["The dog sleeps.", "Foxes were sleeping.", "friends running river",
             "Who saw the quick brown fox near the lazy dogs?", "a", "The cat saw the dog."]


def slow_pll(model, tok, sentence, word_l2r):
    """One masked copy per forward, built position by position."""
    enc = tok(sentence)
    ids, words = enc["input_ids"], enc.word_ids()
    total = 0.0
    for i, w in enumerate(words):
        if w is None:
            continue
        x = list(ids)
        x[i] = tok.mask_token_id
        if word_l2r:
            for j in range(i + 1, len(ids)):
                if words[j] == w:
                    x[j] = tok.mask_token_id
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([x])).logits[0, i]
        total += float(torch.log_softmax(logits.double(), -1)[ids[i]])
    return total


@pytest.mark.parametrize("word_l2r", [False, True])
def test_batched_pll_equals_the_slow_reference(word_l2r):
    tiny_bert = get_tiny_bert()
    hf_tok = get_hf_tok()
    lm = wrap_lm(tiny_bert, hf_tok, device="cpu")
    want = [slow_pll(tiny_bert, hf_tok, s, word_l2r) for s in SENTENCES]
    got = pll_scores(lm, SENTENCES, word_l2r=word_l2r)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # one sentence per forward, and everything in one forward, give the same scores
    np.testing.assert_allclose(pll_scores(lm, SENTENCES, word_l2r=word_l2r, batch_tokens=1),
                               got, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pll_scores(lm, SENTENCES, word_l2r=word_l2r,
                                          batch_tokens=10**6), got, rtol=1e-5, atol=1e-5)


def test_word_l2r_masks_the_piece_and_the_rest_of_its_word():
    fixed_tok = get_fixed_tok()
    sentence = "The unbelievable foxes were sleeping."
    [(ids, words)] = tokenize(fixed_tok, [sentence])
    pieces = fixed_tok.convert_ids_to_tokens(ids.tolist())
    assert pieces == ["[CLS]", "the", "un", "##believ", "##able", "fox", "##es", "were",
                      "sleep", "##ing", ".", "[SEP]"]
    assert words.tolist() == [-1, 0, 1, 1, 1, 2, 2, 3, 4, 4, 5, -1]
    m = fixed_tok.mask_token_id
    copies, targets = masked_copies(ids, words, m, word_l2r=True)
    assert targets.tolist() == list(range(1, 11))  # every piece, never [CLS]/[SEP]
    masked = [np.flatnonzero(c == m).tolist() for c in copies]
    assert masked == [[1], [2, 3, 4], [3, 4], [4], [5, 6], [6], [7], [8, 9], [9], [10]]
    for copy, hidden in zip(copies, masked, strict=True):
        keep = [i for i in range(len(ids)) if i not in hidden]
        assert (copy[keep] == ids[keep]).all()
    plain, _ = masked_copies(ids, words, m, word_l2r=False)
    assert [np.flatnonzero(c == m).tolist() for c in plain] == [[i] for i in range(1, 11)]
    # the word-level value equals the slow reference and differs from one-token PLL
    model = bert(len(fixed_tok), seed=1)
    lm = wrap_lm(model, fixed_tok, device="cpu")
    [l2r] = pll_scores(lm, [sentence])
    assert l2r == pytest.approx(slow_pll(model, fixed_tok, sentence, True), abs=1e-5)
    [plain_pll] = pll_scores(lm, [sentence], word_l2r=False)
    assert plain_pll == pytest.approx(slow_pll(model, fixed_tok, sentence, False), abs=1e-5)
    assert abs(l2r - plain_pll) > 1e-5


def test_crammed_encoder_and_its_hf_export_score_alike():
    tiny_export = get_tiny_export()
    ours, hf = load_lm(tiny_export, device="cpu"), load_lm(tiny_export, "cpu", backend="hf")
    assert type(ours.module).__name__ == "CrammedEncoder"
    assert type(hf.module).__name__ == "ModernBertForMaskedLM"
    np.testing.assert_allclose(pll_scores(ours, SENTENCES), pll_scores(hf, SENTENCES),
                               rtol=1e-5, atol=1e-4)


def test_in_memory_crammed_encoder_matches_slow_reference():
    wordpiece = get_wordpiece()
    hf_tok = get_hf_tok()
    model = crammed(wordpiece)
    lm = wrap_lm(model, wordpiece, device="cpu")  # a tokenizers.Tokenizer is wrapped

    class Wrapped(torch.nn.Module):  # the slow reference needs `.logits` of a full forward
        def forward(self, input_ids):
            return type("Out", (), {"logits": model.mlm_logits(input_ids)})

    want = [slow_pll(Wrapped(), hf_tok, s, True) for s in SENTENCES]
    np.testing.assert_allclose(pll_scores(lm, SENTENCES), want, rtol=1e-5, atol=1e-5)


def test_bf16_scores_are_close_to_fp32():
    tiny_export = get_tiny_export()
    fp32 = pll_scores(load_lm(tiny_export, "cpu"), SENTENCES)
    bf16 = pll_scores(load_lm(tiny_export, "cpu", precision="bf16"), SENTENCES)
    np.testing.assert_allclose(bf16, fp32, rtol=0.05)


def test_bad_input():
    tiny_bert = get_tiny_bert()
    hf_tok = get_hf_tok()
    lm = wrap_lm(tiny_bert, hf_tok, device="cpu")
    with pytest.raises(ConfigError, match="not one string"):
        pll_scores(lm, "The dog sleeps.")
    with pytest.raises(ConfigError, match="batch_tokens must be >= 1"):
        pll_scores(lm, SENTENCES, batch_tokens=0)
    assert pll_scores(lm, []).shape == (0,)
