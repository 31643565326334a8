"""The recipes of `hasten cram`: one frozen dataclass per named recipe, every value with its
source, and how a recipe becomes a trainer configuration.

`CrammedRecipe` is the final Cramming recipe (Geiping & Goldstein 2023, "Cramming: Training a
Language Model on a Single GPU in One Day", `arch=crammed-bert train=bert-o4`): AdamW lr 1e-3,
betas (0.9, 0.98), eps 1e-12, weight decay 0.01 (none on norms and biases), clipping 0.5,
the budget "triangle" schedule, a batch ramp to 8192 sequences by 60% of the budget, 25%
masking with sparse prediction, sequence length 128, bf16 autocast.

`OriginalBertRecipe` is the BERT-base baseline (Devlin et al. 2019): HF `BertForMaskedLM`
(post-norm, biases, dropout 0.1, learned positions, full-vocabulary head), 15% masking,
AdamW lr 1e-4, betas (0.9, 0.999), eps 1e-6, weight decay 0.01, clipping 1.0, warmup over 1%
then linear decay, batch 256 (the 24h-BERT paper, Izsak et al. 2021, starts from this recipe).

As nanoGPT's `GPTConfig` is its model, a recipe is one dataclass: each field's default and
the reason for it (`hasten.core.config.option`), checked when it is made.
`resolve_recipe(name, values, **changes)` gives a named recipe with an objective's own
values and the user's changes (unknown keys and bad types are one-line errors). `arch` is
"crammed" (`hasten.models.encoder.CrammedEncoder`), "bert" (HF `BertForMaskedLM`) or
"bert-prenorm" (`hasten.models.bert.BertEncoder` with pre-norm blocks, the ablation's
"minimal architecture modification"). Departure: bf16 autocast for both recipes where the
device computes bf16 natively, fp32 elsewhere (`native_precision`; Cramming uses fp16 with a
gradient scaler).
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from hasten.core.config import coerce, option, to_dict
from hasten.core.errors import ConfigError
from hasten.core.trainer import TrainConfig

ARCHS = ("crammed", "bert", "bert-prenorm")
SPARSE = ("static", "variable", None)
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class CrammedRecipe:
    """Cramming's final recipe (bert-o4 on crammed-bert)."""

    name: str = option("crammed", "the name `hasten cram --recipe` takes")
    arch: str = option("crammed", "CrammedEncoder: pre-norm, no biases, GLU, rotary, tied "
                       "decoder (Cramming crammed-bert.yaml, ModernBERT's layout)",
                       choices=ARCHS)
    hidden: int = option(768, "Cramming crammed-bert.yaml (size=auto sizes it to the budget)")
    layers: int = option(16, "Cramming crammed-bert.yaml")
    heads: int = option(12, "Cramming crammed-bert.yaml: heads of 64")
    intermediate: int = option(3072, "Cramming's fused GELU-GLU 768 -> 3072 (value and gate; "
                               "the down-projection is half)")
    max_len: int = option(512, "positions the encoder allows (rotary: no table to learn)")
    norm_eps: float = option(1e-12, "Cramming crammed-bert.yaml")
    init_std: float = option(0.02, "BERT's initialiser, kept by Cramming")
    dropout: float = option(0.0, "Cramming pretrains with dropout off")
    vocab_size: int = option(32768, "Cramming's WordPiece, 2^15 (size=auto picks 8192 for "
                             "the small shapes)")
    seq_len: int = option(128, "Cramming and 24h BERT train on 128-token rows")
    cutoff: float | None = option(0.3, "Cramming's tokens-per-character filter: documents "
                                  "with tokens < 0.3 x characters (bookcorpus/Wikipedia; "
                                  "0.25 for the Pile); None: no filter")
    dedup: bool = option(False, "off in Cramming's final recipe")
    lowercase: bool = option(True, "Cramming and BERT-uncased lower-case the text")
    mask_rate: float = option(0.25, "Cramming bert-o4 masks 25%")
    mask_rule: tuple[float, float, float] = option((0.8, 0.1, 0.1), "BERT's [MASK] / random "
                                                   "token / unchanged split")
    exact_masking: bool = option(True, "exactly round(rate x tokens) per row: static shapes")
    sparse: str | None = option("static", "the head runs on predicted rows only (Cramming, "
                                "24h BERT)", choices=SPARSE)
    lr: float = option(1e-3, "Cramming adam.yaml")
    betas: tuple[float, float] = option((0.9, 0.98), "Cramming adam.yaml")
    eps: float = option(1e-12, "Cramming adam.yaml")
    weight_decay: float = option(0.01, "Cramming and BERT; not on norms and biases")
    clip: float = option(0.5, "Cramming's gradient clipping")
    schedule: str = option("triangle", "Cramming budget-triangle2: 25% of the peak -> peak at "
                           "75% of the budget -> 0")
    schedule_params: dict = option({"start": 0.25, "peak_at": 0.75, "final": 0.0},
                                   "the triangle's corners, as fractions of the budget")
    micro_batch: int = option(128, "rows per forward (memory and the 2% step rule cut it)")
    batch: int = option(8192, "Cramming's sequences per optimizer step at the end of the ramp")
    batch_ramp: float = option(0.6, "Cramming's batch_size_ramp: full batch at 60% of the "
                               "budget, from one micro-batch")
    precision: str = option("auto", "auto: bf16 autocast where the device computes bf16 "
                            "natively (Cramming: fp16 with a gradient scaler), else fp32: "
                            "emulated bf16 on an AVX2 CPU is 10x slower",
                            choices=PRECISIONS)
    gen_width_ratio: float = option(0.25, "ELECTRA only: a generator 1/4 as wide "
                                    "(ELECTRA-Small and -Base)")
    disc_weight: float = option(50.0, "ELECTRA only: loss = MLM + 50 x replaced-token "
                                "detection (Clark et al. 2020)")
    keep_unchanged: float = option(0.15, "ELECTRA only: 15% of the picked positions keep "
                                   "their token, none becomes a random one")

    def __post_init__(self) -> None:
        check_recipe(self)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain JSON values (for config.json, summaries and records)."""
        return to_dict(self)


@dataclass(frozen=True)
class OriginalBertRecipe(CrammedRecipe):
    """BERT-base's pretraining recipe (Devlin et al. 2019)."""

    name: str = option("original", "the name `hasten cram --recipe` takes")
    arch: str = option("bert", "HF BertForMaskedLM: post-norm, biases, learned positions",
                       choices=ARCHS)
    layers: int = option(12, "BERT-base")
    dropout: float = option(0.1, "BERT-base")
    vocab_size: int = option(30522, "BERT-uncased's WordPiece")
    cutoff: float | None = option(None, "BERT filters nothing")
    mask_rate: float = option(0.15, "BERT masks 15%")
    sparse: str | None = option(None, "a full-vocabulary head on every position",
                                choices=SPARSE)
    lr: float = option(1e-4, "BERT")
    betas: tuple[float, float] = option((0.9, 0.999), "BERT")
    eps: float = option(1e-6, "BERT")
    clip: float = option(1.0, "BERT's clip_by_global_norm")
    schedule: str = option("linear", "BERT: warmup, then linear decay")
    schedule_params: dict = option({"warmup": 0.01, "final": 0.0},
                                   "BERT's 10k warmup steps of 1M")
    batch: int = option(256, "BERT's sequences per step")
    batch_ramp: float = option(0.0, "BERT has no batch ramp")


RECIPES: dict[str, type[CrammedRecipe]] = {"crammed": CrammedRecipe,
                                           "original": OriginalBertRecipe}
RECIPE_KEYS = tuple(f.name for f in dataclasses.fields(CrammedRecipe) if f.name != "name")


def resolve_recipe(recipe: str | CrammedRecipe, values: Mapping[str, Any] | None = None,
                   **changes: Any) -> CrammedRecipe:
    """Recipe `recipe` (a name of `RECIPES` or a recipe) with an objective's own `values`
    (ELECTRA masks 15%) and then the user's `changes`; each value is checked against the
    field's type. Unknown names and keys raise a one-line ConfigError."""
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
        recipe = RECIPES[recipe]()
    recipe = replace(recipe, **typed_changes(values or {}, "the objective sets unknown"))
    return replace(recipe, **typed_changes(changes))


def typed_changes(changes: Mapping[str, Any], what: str = "unknown") -> dict[str, Any]:
    """`changes` with each value read as its recipe field's type ("4" -> 4, "none" -> None,
    [0.9, 0.95] -> (0.9, 0.95)); a ConfigError names an unknown key or a bad value."""
    unknown = sorted(set(changes) - set(RECIPE_KEYS))
    if unknown:
        raise ConfigError(f"{what} recipe key(s) {', '.join(unknown)}; known: "
                          f"{', '.join(RECIPE_KEYS)}")
    hints = typing.get_type_hints(CrammedRecipe)
    return {k: coerce(v, hints[k], k) for k, v in changes.items()}


def check_recipe(r: CrammedRecipe) -> None:
    """ConfigError on values no run could use (the trainer checks the rest)."""
    if r.arch not in ARCHS:
        raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, got {r.arch!r}")
    if r.sparse not in SPARSE:
        raise ConfigError(f"sparse must be 'static', 'variable' or None, got {r.sparse!r}")
    if r.arch == "bert" and r.sparse is not None:
        raise ConfigError("sparse prediction needs arch 'crammed' or 'bert-prenorm' (HF "
                          "BERT's head is dense)")
    if r.arch == "crammed" and r.dropout:
        raise ConfigError("the crammed encoder has no dropout; set dropout=0 or arch='bert'")
    if not 0.0 < r.mask_rate < 1.0:
        raise ConfigError(f"mask_rate must be in (0, 1), got {r.mask_rate}")
    if r.eps <= 0:
        raise ConfigError(f"eps must be positive, got {r.eps}")
    if r.precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                          f"{r.precision!r}")
    if r.cutoff is not None and r.cutoff <= 0:
        raise ConfigError(f"cutoff must be > 0 (None: no filter), got {r.cutoff}")
    for key in ("batch", "micro_batch", "seq_len", "vocab_size", "hidden", "layers", "heads",
                "intermediate"):
        value = getattr(r, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{key} must be a positive int, got {value!r}")
    if r.vocab_size <= 5:
        raise ConfigError(f"vocab_size must exceed the 5 special tokens ([PAD] [UNK] [CLS] "
                          f"[SEP] [MASK]), got {r.vocab_size}")
    if r.seq_len > r.max_len:
        raise ConfigError(f"seq_len {r.seq_len} exceeds max_len {r.max_len}")
    if not 0.0 <= r.batch_ramp < 1.0:
        raise ConfigError(f"batch_ramp must be in [0, 1), got {r.batch_ramp}")


CRAMMED = CrammedRecipe()
ORIGINAL_BERT = OriginalBertRecipe()


def native_precision(device: str | torch.device) -> str:
    """"bf16" where `device` computes bf16 natively (a CUDA GPU with bf16; a CPU with
    AVX512-BF16 or AMX), else "fp32": autocast emulates bf16 on other CPUs at about a tenth
    of fp32's speed (a crammed step at 1e13 FLOPs: 11 CPU-seconds in bf16, 1.05 in fp32, on
    an AVX2 AMD EPYC)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if dev.type == "cpu":
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return "bf16" if native else "fp32"
    return "fp32"


def with_precision(recipe: CrammedRecipe, device: str | torch.device) -> CrammedRecipe:
    """The recipe with precision "auto" made concrete for `device` (`native_precision`)."""
    if recipe.precision != "auto":
        return recipe
    return replace(recipe, precision=native_precision(device))


def batch_plan(recipe: CrammedRecipe) -> dict[str, int]:
    """Micro-batch and the trainer's batch multiples (start, end) for the recipe's target
    batch: the ramp starts at one micro-batch (Cramming's ramp) and ends at `batch`."""
    micro = min(recipe.micro_batch, recipe.batch)
    end = max(1, recipe.batch // micro)
    start = 1 if recipe.batch_ramp > 0 else end
    return {"micro_batch": micro, "batch_start": start, "batch_end": end}


def train_config(recipe: CrammedRecipe, budget: str, *, eval_every: float = 0.1,
                 log_every: int = 10, **extra: Any) -> TrainConfig:
    """The `TrainConfig` of a recipe: LR, schedule, batch ramp, clipping, precision, weight
    decay, AdamW betas and eps; the held-out loss is the metric (lower is better)."""
    plan = batch_plan(recipe)
    return TrainConfig(
        budget=budget, lr=recipe.lr, schedule=recipe.schedule,
        schedule_params=dict(recipe.schedule_params), micro_batch=plan["micro_batch"],
        batch_start=plan["batch_start"], batch_end=plan["batch_end"],
        batch_ramp=recipe.batch_ramp, optimizer="adamw", betas=tuple(recipe.betas),
        eps=recipe.eps, weight_decay=recipe.weight_decay, clip=recipe.clip,
        precision=recipe.precision, eval_every=eval_every, log_every=log_every,
        metric="heldout_loss", higher_is_better=False, tensorboard=False, **extra)
