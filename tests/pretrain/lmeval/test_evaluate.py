"""`eval_lm` end to end on a tiny exported model: the metric names, eval.json and
config.json, the controls, an ELECTRA export (probes only), settings from --set, and bad
input that fails before anything is written."""

import gzip
import json

import pytest
from lmeval_helpers import DOCS, get_tiny_export, get_wordpiece, write_toy_blimp, write_toy_glue

from hasten.core.config import resolve
from hasten.core.errors import ConfigError, DataError
from hasten.pretrain.lmeval.evaluate import METRICS, EvalLMConfig, eval_lm


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "heldout.txt"
    path.write_text("\n\n".join(DOCS))
    return path


def test_eval_lm_end_to_end(corpus, tmp_path):
    tiny_export = get_tiny_export()
    toy_glue = write_toy_glue(tmp_path / "glue")
    toy_blimp = write_toy_blimp(tmp_path / "blimp")
    lines = []
    cfg = EvalLMConfig(model_dir=str(tiny_export), blimp_pairs=3, heldout_corpus=str(corpus),
                       heldout_rows=4, seq_len=32, blimp_dir=str(toy_blimp),
                       glue_dir=str(toy_glue), bootstrap=100, device="cpu",
                       out=str(tmp_path / "eval"))
    res = eval_lm(cfg, say=lines.append)
    assert set(METRICS) <= set(res)
    assert len(res["blimp_by_paradigm"]) == 3 and res["blimp_pairs"]["selected"] == 9
    assert res["blimp"] == pytest.approx(sum(res["blimp_by_paradigm"].values()) / 3)
    lo, hi = res["blimp_interval"]
    assert lo <= res["blimp"] <= hi
    assert all(len(v["correct"]) == 3 for v in res["items"]["blimp"].values())
    assert 0 <= res["probe_sst2"] <= 100 and -100 <= res["probe_stsb"] <= 100
    assert len(res["items"]["probe_sst2"]) == 60 and len(res["items"]["probe_stsb"]) == 60
    assert res["mlm_loss_15"] > 0 and res["mlm_loss_rows"] == 4
    assert res["not_run"] == {} and res["not_applicable"] == {}
    assert res["model"]["class"] == "CrammedEncoder"
    assert set(res["seconds"]) >= {"blimp", "probes", "mlm_loss", "load", "total"}
    written = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert written == json.loads(json.dumps(res))
    config = json.loads((tmp_path / "eval" / "config.json").read_text())
    assert config["blimp_pairs"] == 3 and config["model_dir"] == str(tiny_export)
    assert any(line.startswith("BLiMP ") for line in lines)
    assert not [p for p in (tmp_path / "eval").iterdir() if p.name.startswith(".")]


def test_controls_and_a_vocabulary_filter(corpus, tmp_path):
    tiny_export = get_tiny_export()
    toy_glue = write_toy_glue(tmp_path / "glue")
    toy_blimp = write_toy_blimp(tmp_path / "blimp")
    cfg = EvalLMConfig(model_dir=str(tiny_export), evals=["blimp", "probes"], blimp_pairs=5,
                       vocab_corpus=str(corpus), blimp_dir=str(toy_blimp),
                       glue_dir=str(toy_glue), bootstrap=50, controls=True, device="cpu")
    res = eval_lm(cfg)
    counts = res["blimp_pairs"]
    assert counts["filtered"] and counts["in_vocabulary"] == 9 and counts["selected"] == 9
    assert all(i % 2 == 0 for v in res["items"]["blimp"].values() for i in v["ids"])
    assert res["not_run"] == {"mlm_loss": "not selected (evals)"}
    untrained = res["controls"]["untrained"]
    assert set(untrained["blimp_by_paradigm"]) == set(res["blimp_by_paradigm"])
    assert res["controls"]["bag_of_tokens"]["probe_sst2"] == 100.0  # the toy words decide


def test_electra_export_gets_probes_only(corpus, tmp_path):
    wordpiece = get_wordpiece()
    toy_glue = write_toy_glue(tmp_path / "glue")
    toy_blimp = write_toy_blimp(tmp_path / "blimp")
    from hasten.models.electra import build_electra
    from hasten.models.encoder import EncoderConfig
    from hasten.models.export_hf import export_discriminator
    from hasten.text.tokenizer import special_ids

    ids = special_ids(wordpiece)
    cfg = EncoderConfig(vocab_size=wordpiece.get_vocab_size(), hidden=32, layers=1, heads=2,
                        intermediate=64, max_len=64, pad_id=ids["pad"], cls_id=ids["cls"],
                        sep_id=ids["sep"], mask_id=ids["mask"])
    out = export_discriminator(build_electra(cfg), wordpiece, tmp_path / "electra")
    res = eval_lm(EvalLMConfig(model_dir=str(out), blimp_pairs=1, blimp_dir=str(toy_blimp),
                               glue_dir=str(toy_glue), heldout_corpus=str(corpus),
                               device="cpu"))
    assert res["blimp"] is None and res["mlm_loss_15"] is None
    assert set(res["not_applicable"]) == {"blimp", "mlm_loss_15"}
    assert res["probe_sst2"] is not None and res["model"]["kind"] == "encoder"


def test_settings_from_set_items():
    cfg = resolve(EvalLMConfig, sets=["evals=blimp,probes", "blimp_full=true",
                                      "precision=bf16"])
    assert cfg.evals == ["blimp", "probes"] and cfg.blimp_full and cfg.precision == "bf16"
    with pytest.raises(ConfigError, match="precision: 'fp16' is not one of fp32, bf16"):
        resolve(EvalLMConfig, sets=["precision=fp16"])


def test_bad_input_writes_nothing(tmp_path):
    tiny_export = get_tiny_export()
    out = tmp_path / "out"
    with pytest.raises(DataError, match="^model folder not found: .*nowhere$"):
        eval_lm(EvalLMConfig(model_dir=str(tmp_path / "nowhere"), evals=["probes"],
                             out=str(out)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"^no text files \(.*\) in .*empty$"):
        eval_lm(EvalLMConfig(model_dir=str(tiny_export), evals=["mlm_loss"],
                             heldout_corpus=str(tmp_path / "empty"), out=str(out)))
    blimp = tmp_path / "blimp"
    blimp.mkdir()
    good = json.dumps({"sentence_good": "A dog sleeps.", "sentence_bad": "A dog sleep."})
    (blimp / "agreement.jsonl.gz").write_bytes(gzip.compress(f"{good}\nnot json\n".encode()))
    with pytest.raises(DataError) as err:
        eval_lm(EvalLMConfig(model_dir=str(tiny_export), evals=["blimp"],
                             blimp_dir=str(blimp), out=str(out)))
    assert str(err.value) == f"{blimp / 'agreement.jsonl.gz'} line 2: not valid JSON"
    with pytest.raises(ConfigError, match="evals: unknown evaluation"):
        eval_lm(EvalLMConfig(model_dir=str(tiny_export), evals=["glue"]))
    with pytest.raises(ConfigError, match="blimp_pairs must be >= 1, got 0"):
        eval_lm(EvalLMConfig(model_dir=str(tiny_export), blimp_pairs=0))
    with pytest.raises(ConfigError, match="model_dir is required"):
        eval_lm(EvalLMConfig())
    assert not out.exists()
