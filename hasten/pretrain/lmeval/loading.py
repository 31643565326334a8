"""An encoder and its tokenizer, ready for zero-shot and frozen-feature evaluation.

`load_lm(folder)` reads a model folder: any folder `transformers` loads as a masked LM
(`AutoModelForMaskedLM`: BERT, RoBERTa, ModernBERT, hasten's crammed export), or an encoder
without a trained MLM head (hasten's ELECTRA discriminator export, marked by `electra.json`;
any folder whose MLM head weights are missing). `wrap_lm(model, tokenizer)` does the same for
a model in memory (a `CrammedEncoder`, an `ElectraModel`, an HF model), so a benchmark can
evaluate without exporting. Remote code is never run.

An `LM` exposes two functions every evaluation uses: `encode(ids, mask)` (final hidden states
[B, S, H]) and `logits_at(lm, ids, mask, flat_positions)` (vocabulary logits of the chosen
positions only, so pseudo-log-likelihood scoring runs the MLM head on one row per masked copy
instead of all of them). A hasten export (`hasten_encoder.json`) is loaded as our own
`CrammedEncoder` (the module that was trained; its bf16 CPU attention is the fast one); other
folders run through their HF class, split into base model and head where the class is known
(BERT's `cls`, RoBERTa's `lm_head`, ModernBERT's `head` + `decoder`), else through the full
forward. `untrained_like(lm)` is the same architecture freshly initialised, the control every
zero-shot metric needs. There is no paper here; the results are shown in docs/benchmarks.md,
"Pretraining ladder: the Cramming ablation by held-out loss".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from hasten.core.distributed import default_device, unwrap_model
from hasten.core.errors import ConfigError, DataError
from hasten.core.trainer import precision_context
from hasten.models.bert import BertEncoder
from hasten.models.electra import ElectraModel
from hasten.models.encoder import CrammedEncoder
from hasten.models.export_hf import load_bert_encoder, load_encoder
from hasten.text.tokenizer import hf_tokenizer

Encode = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
Head = Callable[[torch.Tensor], torch.Tensor]
PRECISIONS = ("fp32", "bf16")


@dataclass
class LM:
    """An encoder for evaluation. `head` maps hidden rows [N, H] to logits [N, V]; None with
    `mlm=True` means the model only gives logits through its full forward; `mlm=False` means
    it has no trained MLM head (MLM-based metrics do not apply)."""

    module: nn.Module
    tokenizer: Any
    encode: Encode
    head: Head | None
    mlm: bool
    device: torch.device
    precision: str
    max_len: int
    name: str
    kind: str  # "masked-lm" or "encoder" (no MLM head)

    def autocast(self) -> Any:
        return precision_context(self.precision, self.device)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device(default_device())
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device: {_one_line(err)}") from None


def _check_tokenizer(tok: Any, name: str) -> Any:
    """An HF tokenizer with [MASK] and [PAD]; a `tokenizers.Tokenizer` is wrapped."""
    if isinstance(tok, Tokenizer):
        tok = hf_tokenizer(tok)
    for attr in ("mask_token_id", "pad_token_id"):
        if getattr(tok, attr, None) is None:
            raise DataError(f"{name}: the tokenizer has no {attr.removesuffix('_id')}")
    return tok


def _hf_parts(model: nn.Module) -> tuple[Encode, Head | None]:
    base = model.base_model

    def encode(ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return base(input_ids=ids, attention_mask=mask).last_hidden_state

    if base is model:  # a bare encoder (AutoModel): no head at all
        return encode, None
    if hasattr(model, "cls"):  # BERT
        return encode, model.cls
    if hasattr(model, "lm_head"):  # RoBERTa, XLM-R
        return encode, model.lm_head
    if hasattr(model, "head") and hasattr(model, "decoder"):  # ModernBERT
        return encode, lambda rows: model.decoder(model.head(rows))
    return encode, None


def _parts(model: nn.Module) -> tuple[nn.Module, Encode, Head | None, bool]:
    """(module, encode, head, mlm) of a model in memory."""
    model = unwrap_model(model)
    if isinstance(model, ElectraModel):
        disc = model.discriminator
        return disc, disc, None, False
    if isinstance(model, (CrammedEncoder, BertEncoder)):
        return model, model, model.logits, True
    if hasattr(model, "base_model"):
        encode, head = _hf_parts(model)
        mlm = model.base_model is not model
        return model, encode, head, mlm
    raise ConfigError(f"cannot evaluate a {type(model).__name__}: expected a CrammedEncoder, "
                      "a BertEncoder, an ElectraModel or a transformers model")


def _max_len(module: nn.Module, tok: Any) -> int:
    cfg = getattr(module, "config", None)
    limits = [int(getattr(cfg, "max_len", 0) or 0),
              int(getattr(cfg, "max_position_embeddings", 0) or 0),
              int(getattr(tok, "model_max_length", 0) or 0)]
    limits = [x for x in limits if 0 < x < 10**6]
    return min(limits + [512])


def wrap_lm(model: nn.Module, tokenizer: Any, device: str | torch.device | None = None,
            precision: str = "fp32", name: str = "in-memory model",
            mlm: bool | None = None) -> LM:
    """An `LM` of a model in memory and its tokenizer (an HF tokenizer, or the
    `tokenizers.Tokenizer` that `hasten.text.tokenizer.train_tokenizer` makes). `mlm=False`
    marks a model whose MLM head is not trained; None decides from the model (ELECTRA: no).
    The model is put in eval mode on `device`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be fp32 or bf16, got {precision!r}")
    module, encode, head, has_mlm = _parts(model)
    tok = _check_tokenizer(tokenizer, name)
    dev = _device(device)
    module.to(dev).eval()
    has_mlm = has_mlm if mlm is None else (mlm and has_mlm)
    return LM(module=module, tokenizer=tok, encode=encode, head=head if has_mlm else None,
              mlm=has_mlm, device=dev, precision=precision, max_len=_max_len(module, tok),
              name=name, kind="masked-lm" if has_mlm else "encoder")


def _missing_head(info: dict[str, Any]) -> bool:
    missing = [k for k in info.get("missing_keys", []) if "position_ids" not in k]
    return bool(missing)


def _load_hf(path: Path) -> tuple[nn.Module, bool]:
    import transformers
    from transformers import AutoModel, AutoModelForMaskedLM

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(
            path, trust_remote_code=False, output_loading_info=True)
        if not _missing_head(info):
            return model, True
    except (ValueError, KeyError):  # the architecture has no masked-LM class
        pass
    except OSError as err:
        raise DataError(f"{path}: cannot load the model ({_one_line(err)})") from None
    try:
        return AutoModel.from_pretrained(path, trust_remote_code=False), False
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{path}: cannot load the model ({_one_line(err)})") from None


def load_lm(model_dir: str | Path, device: str | torch.device | None = None,
            precision: str = "fp32", backend: str = "auto") -> LM:
    """An `LM` from a model folder and its tokenizer. `backend` "auto" loads a hasten export
    as our `CrammedEncoder` and anything else through `transformers`; "hf" always uses
    `transformers`. A missing folder, a folder without `config.json` or one that does not
    load raises a one-line DataError."""
    if backend not in ("auto", "hf"):
        raise ConfigError(f"backend must be auto or hf, got {backend!r}")
    path = Path(model_dir)
    if not path.is_dir():
        raise DataError(f"model folder not found: {path}")
    if not (path / "config.json").is_file() and not (path / "hasten_bert.json").is_file():
        raise DataError(f"{path}: no config.json (not a transformers model folder)")
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: cannot load the tokenizer ({_one_line(err)})") from None
    electra = (path / "electra.json").is_file()
    if backend == "auto" and (path / "hasten_encoder.json").is_file():
        model: nn.Module = load_encoder(path)
        mlm = True
    elif (path / "hasten_bert.json").is_file():
        model, mlm = load_bert_encoder(path), True
    else:
        model, mlm = _load_hf(path)
    return wrap_lm(model, tok, device, precision, name=str(path), mlm=mlm and not electra)


def untrained_like(lm: LM, seed: int = 0) -> LM:
    """The same architecture and tokenizer, freshly initialised (`seed`), in eval mode: the
    untrained control. The global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(lm.module, CrammedEncoder):
            fresh: nn.Module = CrammedEncoder(lm.module.config)
        else:
            fresh = type(lm.module)(lm.module.config)
    out = wrap_lm(fresh, lm.tokenizer, lm.device, lm.precision, name=f"untrained {lm.name}",
                  mlm=lm.mlm)
    return replace(out, kind=lm.kind)


def attention_mask(mask: torch.Tensor) -> torch.Tensor | None:
    """None for a batch without padding (the unmasked attention path is the fast one)."""
    return None if bool(mask.all()) else mask


def logits_at(lm: LM, ids: torch.Tensor, mask: torch.Tensor | None,
              positions: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits [N, V] at flat `positions` (row * S + column) of a batch; `mask` is
    the attention mask (1 = a real token) or None."""
    if not lm.mlm:
        raise ConfigError(f"{lm.name} has no trained MLM head")
    if lm.head is not None:
        hidden = lm.encode(ids, mask)
        return lm.head(hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions))
    logits = lm.module(input_ids=ids, attention_mask=mask).logits
    return logits.reshape(-1, logits.shape[-1]).index_select(0, positions)


def length_batches(lengths: Sequence[int], batch_tokens: int,
                   rows: Sequence[int] | None = None) -> list[np.ndarray]:
    """Indices of items grouped into batches by length: items sorted by length (stable), a
    batch grown while (its rows) x (its longest length) stays within `batch_tokens`; an item
    of `rows[i]` rows (default 1) is never split, so an oversized one forms its own batch."""
    if batch_tokens < 1:
        raise ConfigError(f"batch_tokens must be >= 1, got {batch_tokens}")
    lengths = np.asarray(lengths, dtype=np.int64)
    counts = np.ones(len(lengths), np.int64) if rows is None else np.asarray(rows, np.int64)
    order = np.argsort(lengths, kind="stable")
    batches: list[np.ndarray] = []
    start, n_rows = 0, 0
    for k, i in enumerate(order):
        if k > start and (n_rows + counts[i]) * lengths[i] > batch_tokens:
            batches.append(order[start:k])
            start, n_rows = k, 0
        n_rows += int(counts[i])
    if start < len(order):
        batches.append(order[start:])
    return batches


def describe(lm: LM) -> dict[str, Any]:
    """A JSON-ready description: name, kind, class, parameters, precision, device."""
    seen = {id(p): p.numel() for p in lm.module.parameters()}
    return {"name": lm.name, "kind": lm.kind, "class": type(lm.module).__name__,
            "parameters": int(sum(seen.values())), "vocab_size": len(lm.tokenizer),
            "max_len": lm.max_len, "precision": lm.precision, "device": str(lm.device)}
