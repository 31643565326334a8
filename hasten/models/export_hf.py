"""Export to folders HF `transformers` loads without remote code, one function per format.

- `export_hf`: the crammed encoder as a ModernBERT (Warner et al. 2024): `config.json`
  (`ModernBertConfig`, global attention in every layer, no biases, no dropout),
  `model.safetensors` (fp32, HF parameter names: `CrammedEncoder` uses them, so the state
  dict is written as is, minus the tied decoder), `hasten_encoder.json` (our config) and the
  tokenizer (`PreTrainedTokenizerFast`). `load_encoder` reads it back as a `CrammedEncoder`.
- `export_discriminator`: ELECTRA's discriminator through `export_hf`, plus its binary
  output layer (`electra_head.safetensors`) and both configs (`electra.json`).
- `save_pretrained_atomic`: an HF model (the original BERT baseline) with `save_pretrained`.
- `export_bert_encoder`: `hasten.models.bert.BertEncoder` (the pre-norm BERT of Cramming's
  "minimal architecture" row): safetensors + `hasten_bert.json`, read back by
  `load_bert_encoder`. transformers has no pre-norm BERT class, so this folder is ours only.

Every folder is written into a temporary sibling and renamed into place (`hasten.core.atomic`).
Results: docs/benchmarks.md ("MLM recipe (Cramming): more tokens in equal time, no GLUE-small
difference").
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hasten.core.atomic import atomic_dir
from hasten.core.distributed import unwrap_model
from hasten.core.errors import CheckpointError, ConfigError
from hasten.models.bert import BertEncoder, BertEncoderConfig
from hasten.models.electra import ElectraModel
from hasten.models.encoder import CrammedEncoder, EncoderConfig
from hasten.text.tokenizer import hf_tokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def hf_config(cfg: EncoderConfig) -> Any:
    """The `transformers.ModernBertConfig` of this encoder: global attention in every layer,
    no biases, no dropout, tied decoder without bias."""
    from transformers import ModernBertConfig

    return ModernBertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden, intermediate_size=cfg.intermediate // 2,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, hidden_activation="gelu",
        max_position_embeddings=cfg.max_len, initializer_range=cfg.init_std,
        norm_eps=cfg.norm_eps, norm_bias=False, pad_token_id=cfg.pad_id,
        bos_token_id=cfg.cls_id, eos_token_id=cfg.sep_id, cls_token_id=cfg.cls_id,
        sep_token_id=cfg.sep_id, attention_bias=False, attention_dropout=0.0,
        global_attn_every_n_layers=1, local_attention=cfg.max_len,
        global_rope_theta=cfg.rope_theta, local_rope_theta=cfg.rope_theta,
        embedding_dropout=0.0, mlp_bias=False, mlp_dropout=0.0, decoder_bias=False,
        classifier_activation="gelu", classifier_bias=False, classifier_dropout=0.0,
        tie_word_embeddings=True, architectures=["ModernBertForMaskedLM"])


def export_hf(model: CrammedEncoder, tokenizer: Tokenizer | None, out_dir: str | Path) -> Path:
    """Write a folder `AutoModelForMaskedLM.from_pretrained` loads with no remote code:
    `config.json` (ModernBERT), `model.safetensors` (fp32, HF names, decoder tied so not
    stored), `hasten_encoder.json` (our config), and the tokenizer files
    (`PreTrainedTokenizerFast`). Written into a temporary sibling and renamed into place."""
    cfg = model.config
    hf = hf_config(cfg)
    assert all(t == "full_attention" for t in hf.layer_types)
    state = {k: v.detach().to("cpu", torch.float32).contiguous()
             for k, v in model.state_dict().items() if k != "decoder.weight"}
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        hf.save_pretrained(tmp)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "hasten_encoder.json").write_text(json.dumps(asdict(cfg), indent=1))
        if tokenizer is not None:
            hf_tokenizer(tokenizer, cfg.max_len).save_pretrained(tmp)
    return out


def load_encoder(path: str | Path) -> CrammedEncoder:
    """Our encoder back from an `export_hf` folder (safetensors, no pickle)."""
    p = Path(path)
    try:
        cfg = EncoderConfig(**json.loads((p / "hasten_encoder.json").read_text()))
        state = load_file(str(p / "model.safetensors"))
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{p}: not an exported hasten encoder ({e})") from None
    return _loaded(p, CrammedEncoder, cfg, state)


def _loaded(p: Path, cls: Any, cfg: Any, state: dict[str, torch.Tensor]) -> Any:
    """`cls(cfg)` holding `state`; a config or weights that do not fit (a damaged or edited
    JSON file: other shapes, impossible sizes) are one CheckpointError line."""
    try:
        model = cls(cfg)
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError) as e:
        raise CheckpointError(f"{p}: weights do not match the config "
                              f"({' '.join(str(e).split())[:160]})") from None
    missing = [k for k in missing if k != "decoder.weight"]
    if missing or unexpected:
        raise CheckpointError(f"{p}: weights do not match the config (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return model


def export_discriminator(model: nn.Module, tokenizer: Tokenizer | None,
                         out_dir: str | Path) -> Path:
    """Export the discriminator alone with `export_hf` (a ModernBERT folder that
    `AutoModel` / `AutoModelForMaskedLM` load without remote code), plus
    `electra_head.safetensors` (the binary output layer) and `electra.json` (both configs).
    `model` is an `ElectraModel`, or a DDP / compiled wrapper of one."""
    raw = unwrap_model(model)
    if not isinstance(raw, ElectraModel):
        raise ConfigError(f"export_discriminator needs an ElectraModel, got {type(raw).__name__}")
    out = export_hf(raw.discriminator, tokenizer, out_dir)
    head = {k: v.detach().to("cpu", torch.float32).contiguous()
            for k, v in raw.disc_out.state_dict().items()}
    save_file(head, str(out / "electra_head.safetensors"), metadata={"format": "pt"})
    (out / "electra.json").write_text(json.dumps(
        {"discriminator": asdict(raw.discriminator.config),
         "generator": asdict(raw.generator.config)}, indent=1))
    return out


def save_pretrained_atomic(model: nn.Module, hf_tok: Any, out_dir: str | Path) -> Path:
    """`model.save_pretrained` + tokenizer into a temporary sibling, renamed into place."""
    from transformers.utils import logging as hf_logging

    out = Path(out_dir)
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp)
            if hf_tok is not None:
                hf_tok.save_pretrained(tmp)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return out


def export_bert_encoder(model: BertEncoder, tokenizer: Tokenizer | None,
                        out_dir: str | Path) -> Path:
    """`model.safetensors` (fp32, decoder tied so not stored), `hasten_bert.json` and the
    tokenizer files of a `BertEncoder`."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous()
             for k, v in model.state_dict().items() if k != "decoder.weight"}
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "hasten_bert.json").write_text(json.dumps(asdict(model.config), indent=1))
        if tokenizer is not None:
            hf_tokenizer(tokenizer, model.config.max_len).save_pretrained(tmp)
    return out


def load_bert_encoder(path: str | Path) -> BertEncoder:
    """A `BertEncoder` back from an `export_bert_encoder` folder (safetensors, no pickle)."""
    p = Path(path)
    try:
        cfg = BertEncoderConfig(**json.loads((p / "hasten_bert.json").read_text()))
        state = load_file(str(p / "model.safetensors"))
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{p}: not an exported hasten BERT encoder ({e})") from None
    return _loaded(p, BertEncoder, cfg, state)


def export_model(model: nn.Module, tokenizer: Tokenizer | None, out_dir: str | Path) -> Path:
    """The right export for `model`'s type (crammed encoder, ELECTRA, our BERT, HF model)."""
    raw = unwrap_model(model)
    if isinstance(raw, ElectraModel):
        return export_discriminator(raw, tokenizer, out_dir)
    if isinstance(raw, CrammedEncoder):
        return export_hf(raw, tokenizer, out_dir)
    if isinstance(raw, BertEncoder):
        return export_bert_encoder(raw, tokenizer, out_dir)
    if hasattr(raw, "save_pretrained"):
        max_len = getattr(raw.config, "max_position_embeddings", 512)
        return save_pretrained_atomic(
            raw, hf_tokenizer(tokenizer, max_len) if tokenizer is not None else None, out_dir)
    raise ConfigError(f"no export for a {type(raw).__name__}")
