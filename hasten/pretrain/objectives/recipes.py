"""The two recipes of `hasten cram`, as data, and how one becomes a trainer configuration.

`CRAMMED` is the final Cramming recipe (Geiping & Goldstein 2023, "Cramming: Training a
Language Model on a Single GPU in One Day", `arch=crammed-bert train=bert-o4`): AdamW lr 1e-3,
betas (0.9, 0.98), eps 1e-12, weight decay 0.01 (none on norms and biases), clipping 0.5,
the budget "triangle" schedule, a batch ramp to 8192 sequences by 60% of the budget, 25%
masking with sparse prediction, sequence length 128, bf16 autocast.

`ORIGINAL_BERT` is the BERT-base baseline (Devlin et al. 2019): HF `BertForMaskedLM`
(post-norm, biases, dropout 0.1, learned positions, full-vocabulary head), 15% masking,
AdamW lr 1e-4, betas (0.9, 0.999), eps 1e-6, weight decay 0.01, clipping 1.0, warmup over 1%
then linear decay, batch 256 (the 24h-BERT paper, Izsak et al. 2021, starts from this recipe).

Both are flat dicts; `resolve_recipe(name, **overrides)` copies one and applies overrides
(unknown keys are an error). `RECIPE_SOURCES` says where each value comes from. `arch` is
"crammed" (`hasten.models.encoder.CrammedEncoder`), "bert" (HF `BertForMaskedLM`) or
"bert-prenorm" (`hasten.models.bert.BertEncoder` with pre-norm blocks, the ablation's
"minimal architecture modification").
Results: docs/benchmarks.md ("MLM recipe (Cramming): more tokens in equal time, no GLUE-small
difference").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hasten.core.errors import ConfigError
from hasten.core.trainer import TrainConfig

ARCHS = ("crammed", "bert", "bert-prenorm")

CRAMMED: dict[str, Any] = {
    "name": "crammed",
    "arch": "crammed",  # hasten.models.encoder.CrammedEncoder (ModernBERT layout)
    # model shape (Cramming crammed-bert.yaml)
    "hidden": 768,
    "layers": 16,
    "heads": 12,
    "intermediate": 3072,  # fused GLU value+gate width; down-projection is half
    "max_len": 512,
    "norm_eps": 1e-12,
    "init_std": 0.02,
    "dropout": 0.0,  # Cramming pretrains with dropout off
    # data
    "vocab_size": 32768,
    "seq_len": 128,
    "cutoff": 0.3,  # tokens < cutoff * chars; Cramming's bookcorpus/wiki value (Pile: 0.25)
    "dedup": False,  # off in the final Pile recipe
    "holdout": 0.01,  # fraction of documents held out for the MLM loss
    "lowercase": True,
    # objective
    "mask_rate": 0.25,
    "mask_rule": (0.8, 0.1, 0.1),  # [MASK] / random token / unchanged
    "exact_masking": True,  # exactly round(rate * tokens) per row: static shapes
    "sparse": "static",  # the head runs on predicted rows only
    # optimizer
    "lr": 1e-3,
    "betas": (0.9, 0.98),
    "eps": 1e-12,
    "weight_decay": 0.01,  # not on norms and biases
    "clip": 0.5,
    # schedule, as functions of budget progress
    "schedule": "triangle",
    "schedule_params": {"start": 0.25, "peak_at": 0.75, "final": 0.0},
    "micro_batch": 128,
    "batch": 8192,  # sequences per optimizer step at the end of the ramp
    "batch_ramp": 0.6,  # ... reached at 60% of the budget
    "precision": "bf16",  # autocast (Cramming: fp16 + GradScaler)
    # bookkeeping
    "eval_every": 0.1,
    "log_every": 10,
}

ORIGINAL_BERT: dict[str, Any] = {
    **CRAMMED,
    "name": "original",
    "arch": "bert",  # HF BertForMaskedLM via hasten.models.encoder.original_bert
    "layers": 12,
    "intermediate": 3072,
    "dropout": 0.1,
    "vocab_size": 30522,
    "cutoff": None,
    "mask_rate": 0.15,
    "sparse": None,  # full-vocabulary head on every position
    "lr": 1e-4,
    "betas": (0.9, 0.999),
    "eps": 1e-6,
    "weight_decay": 0.01,
    "clip": 1.0,
    "schedule": "linear",
    "schedule_params": {"warmup": 0.01, "final": 0.0},  # 10k warmup of 1M steps
    "batch": 256,
    "batch_ramp": 0.0,
}

RECIPES: dict[str, dict[str, Any]] = {"crammed": CRAMMED, "original": ORIGINAL_BERT}

RECIPE_SOURCES: dict[str, str] = {
    "hidden/layers/heads": "Cramming crammed-bert.yaml (16x768, 12 heads); BERT-base 12x768",
    "intermediate": "Cramming GELU-GLU 768->3072, down 1536->768; BERT 3072",
    "dropout": "Cramming pretrains in eval mode; BERT 0.1",
    "vocab_size": "Cramming WordPiece 32768 = 2^15; BERT uncased 30522",
    "seq_len": "Cramming and 24h BERT 128 (BERT: 128 for 90% of steps)",
    "cutoff": "Cramming tokens/char filter, 0.3 (bookcorpus/wiki), 0.25 (Pile); BERT none",
    "mask_rate": "Cramming bert-o4 0.25; BERT 0.15",
    "lr/betas/eps/wd": "Cramming adam.yaml 1e-3/(0.9,0.98)/1e-12/0.01; BERT 1e-4/(0.9,0.999)/"
                       "1e-6/0.01",
    "clip": "Cramming 0.5; BERT clip_by_global_norm 1.0",
    "schedule": "Cramming budget-triangle2 (25% -> peak at 75% -> 0); BERT 1% warmup + linear",
    "batch": "Cramming 8192 ramped by 60% of the budget; BERT 256",
    "precision": "Cramming fp16 AMP; here bf16 autocast for both",
}


def resolve_recipe(recipe: str | Mapping[str, Any], defaults: Mapping[str, Any] | None = None,
                   values: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """A copy of recipe `recipe` ("crammed", "original" or a dict), with an objective's extra
    `defaults` added, its `values` replacing the recipe's, and the user's `overrides` applied
    last. Unknown keys in `values` or `overrides` raise ConfigError."""
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
        base = dict(RECIPES[recipe])
    else:
        base = dict(recipe)
    for key, value in (defaults or {}).items():
        base.setdefault(key, value)
    unknown = sorted(set(values or {}) - set(base))
    if unknown:
        raise ConfigError(f"the objective sets unknown recipe key(s) {', '.join(unknown)}")
    base.update(values or {})
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise ConfigError(f"unknown recipe key(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(base))}")
    base.update(overrides)
    if isinstance(base.get("betas"), list):
        base["betas"] = tuple(base["betas"])
    if isinstance(base.get("mask_rule"), list):
        base["mask_rule"] = tuple(base["mask_rule"])
    check_recipe(base)
    return base


def check_recipe(r: Mapping[str, Any]) -> None:
    """ConfigError on values no run could use (the trainer checks the rest)."""
    if r["arch"] not in ARCHS:
        raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, got {r['arch']!r}")
    if r["sparse"] not in ("static", "variable", None):
        raise ConfigError(f"sparse must be 'static', 'variable' or None, got {r['sparse']!r}")
    if r["arch"] == "bert" and r["sparse"] is not None:
        raise ConfigError("sparse prediction needs arch 'crammed' or 'bert-prenorm' (HF "
                          "BERT's head is dense)")
    if r["arch"] == "crammed" and r["dropout"]:
        raise ConfigError("the crammed encoder has no dropout; set dropout=0 or arch='bert'")
    if not 0.0 < r["mask_rate"] < 1.0:
        raise ConfigError(f"mask_rate must be in (0, 1), got {r['mask_rate']}")
    if not 0.0 <= r["holdout"] < 0.5:
        raise ConfigError(f"holdout must be in [0, 0.5), got {r['holdout']}")
    if r["eps"] <= 0:
        raise ConfigError(f"eps must be positive, got {r['eps']}")
    for key in ("batch", "micro_batch", "seq_len", "vocab_size"):
        if not isinstance(r[key], int) or r[key] < 1:
            raise ConfigError(f"{key} must be a positive int, got {r[key]!r}")
    if r["seq_len"] > r["max_len"]:
        raise ConfigError(f"seq_len {r['seq_len']} exceeds max_len {r['max_len']}")
    if not 0.0 <= r["batch_ramp"] < 1.0:
        raise ConfigError(f"batch_ramp must be in [0, 1), got {r['batch_ramp']}")


def batch_plan(recipe: Mapping[str, Any]) -> dict[str, int]:
    """Micro-batch and the trainer's batch multiples (start, end) for the recipe's target
    batch: the ramp starts at one micro-batch (Cramming's ramp) and ends at `batch`."""
    micro = min(recipe["micro_batch"], recipe["batch"])
    end = max(1, recipe["batch"] // micro)
    start = 1 if recipe["batch_ramp"] > 0 else end
    return {"micro_batch": micro, "batch_start": start, "batch_end": end}


def train_config(recipe: Mapping[str, Any], budget: str, **extra: Any) -> Any:
    """The `TrainConfig` of a recipe: LR, schedule, batch ramp, clipping, precision, weight
    decay, AdamW betas and eps."""
    plan = batch_plan(recipe)
    return TrainConfig(
        budget=budget, lr=recipe["lr"], schedule=recipe["schedule"],
        schedule_params=dict(recipe["schedule_params"]), micro_batch=plan["micro_batch"],
        batch_start=plan["batch_start"], batch_end=plan["batch_end"],
        batch_ramp=recipe["batch_ramp"], optimizer="adamw", betas=tuple(recipe["betas"]),
        eps=recipe["eps"], weight_decay=recipe["weight_decay"], clip=recipe["clip"],
        precision=recipe["precision"], eval_every=recipe["eval_every"],
        log_every=recipe["log_every"], metric="heldout_loss", higher_is_better=False,
        tensorboard=False, **extra)
