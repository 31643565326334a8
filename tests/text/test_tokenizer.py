"""The one tokenizer trainer: each preset builds what its caller built before (checked
against tokenizers assembled by hand here), its special ids, and bad settings."""

import json

import pytest
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from hasten.core.errors import ConfigError, DataError
from hasten.data.translation import train_bpe
from hasten.pretrain.lmeval.glue_tasks import read_task
from hasten.text.tokenizer import (
    CRAM,
    MT,
    SCORER,
    TokenizerSpec,
    hf_tokenizer,
    load_tokenizer,
    special_ids,
    train_tokenizer,
)

PROSE = [
    "The cat sat on the mat and looked out of the window at the garden.",
    "She walked down the road to the village, where the market was busy.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "Éléonore wrote ﬁne letters; naïve café owners read them.",
] * 8


def _parts(tok: Tokenizer) -> dict:
    """Everything of a tokenizer's JSON but the learnt vocabulary and merges (WordPiece
    training by `tokenizers` alone is not deterministic, so a hand-built one agrees with
    hasten's on these parts only)."""
    d = json.loads(tok.to_str())
    d["model"] = {k: v for k, v in d["model"].items() if k not in ("vocab", "merges")}
    d["added_tokens"] = [(t["id"], t["content"]) for t in d["added_tokens"]]
    return d


def test_cram_preset_is_the_bert_style_wordpiece():
    ref = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    ref.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    ref.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    ref.decoder = decoders.WordPiece(prefix="##")
    ref.train_from_iterator(PROSE, trainers.WordPieceTrainer(
        vocab_size=200, min_frequency=2, special_tokens=list(CRAM.specials),
        show_progress=False))
    ref.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = train_tokenizer(PROSE, CRAM, vocab_size=200)
    assert _parts(tok) == _parts(ref)
    assert special_ids(tok) == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    enc = tok.encode("The Cat")
    assert enc.ids[0] == 2 and enc.ids[-1] == 3
    assert tok.decode(enc.ids) == "the cat"


def test_wordpiece_training_is_deterministic_and_its_pieces_stay_plain_text():
    texts = read_task("sst2", "train")[0][:2000]  # real text: ties between merges abound
    first = train_tokenizer(texts, CRAM, vocab_size=1000)
    for _ in range(2):
        assert train_tokenizer(texts, CRAM, vocab_size=1000).to_str() == first.to_str()
    vocab = first.get_vocab()
    pieces = sorted(t for t in vocab if t.startswith("##") and len(t) == 3)
    assert [vocab[t] for t in pieces] == list(range(5, 5 + len(pieces)))  # after the specials
    assert json.loads(first.to_str())["added_tokens"][-1]["content"] == "[MASK]"
    assert first.encode("##e", add_special_tokens=False).tokens == ["#", "#", "e"]


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_scorer_preset(kind):
    model = models.WordPiece(unk_token="[UNK]") if kind == "wordpiece" else \
        models.BPE(unk_token="[UNK]")
    trainer = (trainers.WordPieceTrainer if kind == "wordpiece" else trainers.BpeTrainer)(
        vocab_size=300, min_frequency=2, special_tokens=list(SCORER.specials),
        show_progress=False)
    ref = Tokenizer(model)
    ref.normalizer = normalizers.Sequence(
        [normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()])
    ref.pre_tokenizer = pre_tokenizers.Whitespace()
    ref.train_from_iterator(PROSE, trainer=trainer)
    tok = train_tokenizer(PROSE, SCORER, vocab_size=300, kind=kind)
    assert _parts(tok) == _parts(ref)
    if kind == "bpe":  # BPE training is deterministic: the whole tokenizer is the same
        assert tok.to_str() == ref.to_str()
    ids = {t: tok.token_to_id(t) for t in SCORER.specials}
    assert ids == {"[UNK]": 0, "[PAD]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert tok.encode("Éléonore").tokens[0].startswith("e")  # accents stripped


def test_mt_preset_is_byte_level_bpe():
    texts = [" " + t for t in PROSE]
    ref = Tokenizer(models.BPE(unk_token="<unk>"))
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    ref.decoder = decoders.ByteLevel()
    ref.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, min_frequency=2, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    assert train_tokenizer(texts, MT, vocab_size=400).to_str() == ref.to_str()
    bpe = train_bpe(PROSE, vocab_size=400)
    assert bpe.tok.to_str() == ref.to_str()
    assert (bpe.pad_id, bpe.bos_id, bpe.eos_id, bpe.unk_id) == (0, 1, 2, 3)
    assert bpe.decode(bpe.encode("Éléonore wrote ﬁne letters")) == "Éléonore wrote ﬁne letters"


def test_save_load_and_hf_wrapper(tmp_path):
    tok = train_tokenizer(PROSE, CRAM, vocab_size=200)
    path = tmp_path / "tok.json"
    tok.save(str(path))
    back = load_tokenizer(str(path))
    assert back.encode("the cat sat").ids == tok.encode("the cat sat").ids
    hf = hf_tokenizer(tok, max_len=64)
    assert hf("the cat")["input_ids"] == tok.encode("the cat").ids
    assert (hf.mask_token_id, hf.pad_token_id, hf.model_max_length) == (4, 0, 64)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read tokenizer"):
        load_tokenizer(str(tmp_path / "bad.json"))


def test_bad_specs():
    with pytest.raises(ConfigError, match="unknown tokenizer kind 'unigram'; known: wordpiece"):
        train_tokenizer(PROSE, SCORER, kind="unigram")
    with pytest.raises(ConfigError, match="unknown tokenizer normalizer"):
        train_tokenizer(PROSE, CRAM, normalizer="nfc")
    with pytest.raises(DataError, match="empty"):
        train_tokenizer(["", "  "], SCORER)
    with pytest.raises(ConfigError, match="vocab_size must be an int > 5"):
        train_tokenizer(PROSE, SCORER, vocab_size=3)
    with pytest.raises(ConfigError, match="unknown token"):
        TokenizerSpec(unk="<unk>").check()
    with pytest.raises(ConfigError, match="bert_template needs"):
        TokenizerSpec(specials=("<pad>", "[UNK]"), bert_template=True).check()
    with pytest.raises(ConfigError, match=r"the tokenizer has no \[PAD\] token"):
        special_ids(train_tokenizer([" " + t for t in PROSE], MT, vocab_size=400))


def test_cached_tokenizer_trains_once_per_text_and_spec(tmp_path, monkeypatch):
    from hasten.text import tokenizer as tk

    docs = ["the cat sat on the mat", "a dog sat on a log", "the dog ate the cat food"] * 5
    calls = []
    real = tk.train_tokenizer
    monkeypatch.setattr(tk, "train_tokenizer", lambda d, s: calls.append(1) or real(d, s))
    a = tk.cached_tokenizer(docs, tk.CRAM, cache_dir=tmp_path, vocab_size=60)
    b = tk.cached_tokenizer(docs, tk.CRAM, cache_dir=tmp_path, vocab_size=60)
    assert len(calls) == 1 and a.get_vocab() == b.get_vocab()
    assert b.encode("the cat").ids == a.encode("the cat").ids
    tk.cached_tokenizer(docs, tk.CRAM, cache_dir=tmp_path, vocab_size=61)  # another spec
    tk.cached_tokenizer(docs[:-1], tk.CRAM, cache_dir=tmp_path, vocab_size=60)  # other text
    assert len(calls) == 3 and len(list(tmp_path.glob("*.json"))) == 3
