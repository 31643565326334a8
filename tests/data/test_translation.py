import gzip
import io
import tarfile

import pytest
import torch

from hasten.bench.mt_metrics import bleu
from hasten.core.errors import ConfigError, DataError
from hasten.core.paths import data_root
from hasten.core.sampling import gather
from hasten.data.translation import (
    TranslationData,
    count_tokens,
    load_iwslt15_envi,
    load_multi30k,
    read_parallel,
    read_tar_member,
    train_bpe,
    trim_batch,
)


def test_mismatched_parallel_files_are_rejected_with_one_clear_line(tmp_path):
    src, tgt = tmp_path / "a.en.gz", tmp_path / "a.de"
    src.write_bytes(gzip.compress(b"one\ntwo\nthree\n"))
    tgt.write_text("eins\nzwei\n")
    with pytest.raises(DataError) as e:
        read_parallel(src, tgt)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(src) in msg and "3 lines" in msg and str(tgt) in msg and "2 lines" in msg


def test_read_parallel_plain_and_gzip_and_missing(tmp_path):
    src, tgt = tmp_path / "x.src.gz", tmp_path / "x.tgt"
    src.write_bytes(gzip.compress("a b\u2028c\nd\n".encode()))  # U+2028 is not a line end
    tgt.write_text("e\nf\n")
    s, t = read_parallel(src, tgt)
    assert s == ["a b\u2028c", "d"] and t == ["e", "f"]
    with pytest.raises(DataError, match="not found"):
        read_parallel(tmp_path / "nope", tgt)


def test_tar_members_are_read_in_memory(tmp_path):
    archive = tmp_path / "t.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        raw = "xin chào\n".encode()
        info = tarfile.TarInfo("tst/a.vi")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    assert read_tar_member(archive, "a.vi") == ["xin chào"]
    with pytest.raises(DataError, match="no member"):
        read_tar_member(archive, "a.en")


def test_multi30k_and_iwslt_load_from_the_shared_data():
    root = data_root()
    assert (root / "multi30k").is_dir(), f"shared data missing at {root}"
    val = load_multi30k("en", "de", "val")
    assert len(val) == 1014 and val.src[0] and val.tgt[0]
    assert len(load_multi30k("de", "cs", "test")) == 1000
    assert len(load_multi30k("fr", "en", "test_2017_mscoco")) == 461
    dev, test = load_iwslt15_envi("dev"), load_iwslt15_envi("test")
    assert (len(dev), len(test)) == (1553, 1268)
    assert (dev.src_lang, dev.tgt_lang) == ("en", "vi")
    with pytest.raises(ConfigError):
        load_multi30k("en", "xx", "val")
    with pytest.raises(DataError, match="train"):
        load_iwslt15_envi("train")


@pytest.fixture(scope="module")
def multi30k_bpe():
    text = load_multi30k("en", "de", "val")
    return text, train_bpe(text.src + text.tgt, vocab_size=1000)


def test_bpe_round_trip_detokenises_to_the_original_lines(multi30k_bpe):
    text, tok = multi30k_bpe
    assert tok.vocab_size == 1000
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    fr = load_multi30k("fr", "cs", "val")
    lines = text.src + text.tgt + fr.src + fr.tgt + ["  two  spaces ", "ünïcödé ✓ 中文"]
    ids = tok.encode_batch(lines)
    assert all(tok.unk_id not in row for row in ids)
    assert [tok.decode(row) for row in ids] == lines
    # specials are dropped on decoding, and serialisation keeps the vocabulary
    row = [tok.bos_id] + tok.encode("A dog.") + [tok.eos_id, tok.pad_id]
    assert tok.decode(row) == "A dog."
    again = type(tok).from_str(tok.to_str())
    assert again.encode("Zwei Männer") == tok.encode("Zwei Männer")


def test_translation_data_pads_and_the_trainer_gather_batches_it(multi30k_bpe):
    text, tok = multi30k_bpe
    data = TranslationData.from_text(text, tok)
    assert len(data) == 1014
    src, tgt = data[0]
    n_src, n_tgt = int(data.src_lengths[0]), int(data.tgt_lengths[0])
    assert src[: n_src].tolist() == tok.encode(text.src[0]) + [tok.eos_id]
    assert tgt[: n_tgt].tolist() == [tok.bos_id] + tok.encode(text.tgt[0]) + [tok.eos_id]
    assert (src[n_src:] == tok.pad_id).all() and (tgt[n_tgt:] == tok.pad_id).all()
    batch = gather(data, [0, 5, 7])  # TensorDataset: indexed directly, no collate
    s, t = trim_batch(batch, tok.pad_id)
    assert s.shape == (3, int(data.src_lengths[[0, 5, 7]].max()))
    assert t.shape == (3, int(data.tgt_lengths[[0, 5, 7]].max()))
    assert count_tokens(batch, tok.pad_id) == data.tokens([0, 5, 7])


def test_translation_data_truncates_and_checks():
    data = TranslationData([[5] * 10, [6]], [[7] * 10, [8]], 0, 1, 2, max_len=4)
    assert data[0][0].tolist() == [5, 5, 5, 2] and data[0][1].tolist() == [1, 7, 7, 2]
    assert data[1][0].tolist() == [6, 2, 0, 0]
    with pytest.raises(DataError):
        TranslationData([[1]], [], 0, 1, 2)


def test_bleu_of_a_known_pair():
    hyp, ref = "the cat sat on the mat", "the cat sat on a mat"
    # clipped n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths, so no brevity penalty
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert bleu([hyp], [ref]) == pytest.approx(expected, abs=0.01)
    assert bleu(["Ein Hund läuft."], ["Ein Hund läuft."]) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        bleu(["a"], [])


def test_trim_of_an_all_padding_side_keeps_one_column():
    s, t = trim_batch((torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long)))
    assert s.shape == (2, 1) and t.shape == (2, 5)
