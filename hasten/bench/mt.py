"""The MT suite: the competence-based curriculum of Platanios et al., "Competence-based
Curriculum Learning for Neural Machine Translation" (NAACL 2019), on Multi30k.

    hasten bench mt --pair en-de          # the paper's Table 2 columns, one pair

Results: docs/benchmarks.md, "Curricula for translation: the saving shrinks as the baseline trains
longer".

Tasks `mt-SRC-TGT` for every ordered pair of Multi30k's languages (en, de, fr, cs: all four
have train, val and test_2016_flickr): a joint byte-level BPE (8,000 pieces, learned on the
pair's training text, cached in-process), a small pre-norm Transformer (d_model 256, 4 heads,
3 + 3 layers, ff 1024, dropout 0.1), 128 sentences per step, AdamW (betas 0.9/0.98,
weight decay 0.01, lr 1e-3, clip 1), token-weighted label-smoothed loss (0.1), bf16 autocast
and a 30-minute wall-clock budget (quick: a tiny model, 60 s). Nothing is loaded at import.

Methods (the paper's Table 2 columns):
  plain*      cosine decay with a linear warm-up over 5% of the budget: the baseline
  plain       the same cosine decay without warm-up
  sl-linear   sentence-length curriculum, c_linear (p = 1)
  sl-sqrt     sentence-length curriculum, c_sqrt (p = 2)
  sr-linear   sentence-rarity curriculum, c_linear
  sr-sqrt     sentence-rarity curriculum, c_sqrt
Curricula score the *source* side (the paper's `source-sentence` selector), c0 = 0.01 (the
paper's value in every configuration) and T = half the budget. The paper fixes T in steps
(3k for its En-Vi RNN, 20k for its Transformers) and suggests T near the steps the baseline
needs for ~90% of its final BLEU. A budget fraction keeps one ratio for any budget; 0.5 is
a first guess, not tuned. The curriculum runs use plain's schedule, without warm-up: the
paper's point is that the curriculum replaces warm-up ("Plain*" is its only warm-up
column). The scoring time is charged to the run as overhead.

Evaluation and the target. Every `eval_every` of the budget the model decodes the validation
set (greedy) and the curve records the *best validation BLEU so far* (metric
`best_val_bleu`, the raw value is `val_bleu`); the weights of the best evaluation are kept
in memory. So a run's `final` is its best validation BLEU, the suite's target (margin 0) is
plain*'s best validation BLEU, and time to target is when a run's validation BLEU first
reaches it: the paper's "time to reach the baseline's best BLEU". After the last evaluation
the best weights are restored and the test set (test_2016_flickr) is decoded once with beam
4 (GNMT length penalty 0.6; quick: greedy on 200 sentences), into `notes["test_bleu"]` and
the report's "test BLEU" row. Selection uses validation only; the test set is read once.
Beam 4 costs roughly 4x a greedy pass, once per run and off the training clock. The best
weights are not checkpointed: a resumed run (`hasten train --resume`) restarts the best.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch
from torch import nn

from hasten.bench.harness import Recipe, Suite, register_method, register_suite, register_task
from hasten.bench.mt_metrics import bleu, translate
from hasten.core.config import option
from hasten.core.errors import ConfigError
from hasten.core.trainer import Hook, TrainConfig, TrainState, autocast_for
from hasten.data.translation import (
    MULTI30K_LANGS,
    BPETokenizer,
    ParallelText,
    TranslationData,
    count_tokens,
    load_multi30k,
    train_bpe,
)
from hasten.models.transformer import build_transformer, translation_loss
from hasten.select.curriculum import CompetenceSampler
from hasten.select.difficulty import sentence_length, sentence_rarity
from hasten.select.per_example import Scores

PAIRS = tuple(f"{s}-{t}" for s, t in itertools.permutations(MULTI30K_LANGS, 2))
TEST_SPLIT = "test_2016_flickr"
VOCAB = 8000
WARMUP = 0.05  # plain*: linear warm-up over this fraction of the budget
C0 = 0.01  # Platanios et al. 2019, every configuration
T_FRACTION = 0.5  # curriculum length as a fraction of the budget
METRIC = "best_val_bleu"

FULL_MODEL: dict[str, Any] = {"d_model": 256, "heads": 4, "encoder_layers": 3,
                              "decoder_layers": 3, "ff": 1024, "dropout": 0.1}
QUICK_MODEL: dict[str, Any] = {"d_model": 64, "heads": 2, "encoder_layers": 1,
                               "decoder_layers": 1, "ff": 128, "dropout": 0.1}


@dataclass(frozen=True)
class Decoding:
    """How a run is evaluated: validation every `eval_every` (greedy), test once at the end."""

    eval_every: float
    val_limit: int | None  # validation sentences per evaluation (None: all)
    test_beam: int
    test_limit: int | None


FULL = Decoding(eval_every=0.05, val_limit=None, test_beam=4, test_limit=None)
QUICK = Decoding(eval_every=0.25, val_limit=100, test_beam=1, test_limit=200)


@dataclass
class MTOptions:
    """The mt suite's options (`hasten bench mt --pair fr-en`, or `--set pair=fr-en`)."""

    pair: str = option("en-de", "the paper's En-De; any ordered pair of Multi30k's en, de, "
                                "fr and cs runs the same way (task mt-PAIR)")


def is_mt_task(task: str) -> bool:
    """The tasks the curriculum methods apply to."""
    return task.startswith("mt-") and task[3:] in PAIRS


def pair_task(pair: str) -> str:
    """The task name of a language pair ("fr-en" -> "mt-fr-en"); a ConfigError for a pair
    Multi30k lacks."""
    if pair not in PAIRS:
        raise ConfigError(f"Multi30k has no language pair {pair!r}; known: {', '.join(PAIRS)}")
    return f"mt-{pair}"


# -----------------------------------------------------------------------------
# data, cached per pair in-process


@dataclass
class PairData:
    """One pair's tokenizer and its train, validation and test sets."""

    tokenizer: BPETokenizer
    train: TranslationData
    val: TranslationData
    test: TranslationData


@cache
def _tokenizer(langs: tuple[str, str], vocab: int) -> BPETokenizer:
    """One joint BPE per unordered pair (en-de and de-en share it)."""
    text = load_multi30k(langs[0], langs[1], "train")
    return train_bpe(text.src + text.tgt, vocab)


@cache
def pair_data(src: str, tgt: str, vocab: int = VOCAB) -> PairData:
    """Multi30k `src`->`tgt`: joint BPE, then train / val / test_2016_flickr encoded."""
    tok = _tokenizer(tuple(sorted((src, tgt))), vocab)
    sets = [TranslationData.from_text(load_multi30k(src, tgt, split), tok)
            for split in ("train", "val", TEST_SPLIT)]
    return PairData(tok, *sets)


@cache
def _difficulty(src: str, tgt: str, kind: str) -> Scores:
    text = pair_data(src, tgt).train.text
    assert isinstance(text, ParallelText)
    return (sentence_length if kind == "length" else sentence_rarity)(text.src)


# -----------------------------------------------------------------------------
# evaluation: best validation BLEU so far, best weights kept, test BLEU at the end


@dataclass
class BestValidation(Hook):
    """`evaluate` (greedy validation BLEU, reported as the best so far) and the hook that,
    after the run's last evaluation, restores the best weights and decodes the test set."""

    data: PairData
    decoding: Decoding
    notes: dict[str, Any]
    best: float = float("-inf")
    best_eval: int | None = None  # which evaluation (1, 2, ...) was the best
    best_step: int | None = None  # ... and after how many optimizer steps
    best_state: dict[str, torch.Tensor] | None = None
    evals: int = 0
    history: list[float] = field(default_factory=list)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        val, tok = self.data.val, self.data.tokenizer
        assert val.text is not None
        hyps = translate(model, val, tok, beam=1, limit=self.decoding.val_limit)
        score = bleu(hyps, val.text.tgt[: len(hyps)])
        self.evals += 1
        self.history.append(score)
        if score > self.best:
            self.best = score
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.best_eval, self.best_step = self.evals, None
        return {METRIC: self.best, "val_bleu": score}

    def on_eval(self, state: TrainState, metrics: dict[str, float]) -> None:
        if self.best_eval == self.evals and self.best_step is None:
            self.best_step = state.step
        # the trainer's last evaluation is the only one at (or past) the end of the budget
        if state.progress < 1.0 and not state.budget.exhausted():
            return
        self.finish(state)

    def finish(self, state: TrainState) -> None:
        """Restore the best weights and score them once on the test set."""
        model = state.raw_model
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        test, tok = self.data.test, self.data.tokenizer
        assert test.text is not None
        was_training = model.training
        model.eval()
        with torch.no_grad(), autocast_for(state.config, state.dist.device):
            hyps = translate(model, test, tok, beam=self.decoding.test_beam,
                             limit=self.decoding.test_limit)
        model.train(was_training)
        score = bleu(hyps, test.text.tgt[: len(hyps)])
        label = f"test BLEU ({TEST_SPLIT}, {_beam_text(self.decoding.test_beam)})"
        self.notes.update({
            "test_bleu": score, "test_split": TEST_SPLIT, "test_beam": self.decoding.test_beam,
            "test_sentences": len(hyps), "best_val_bleu": self.best,
            "best_val_eval": self.best_eval, "best_val_step": self.best_step,
            "val_bleu_history": self.history, "report_rows": {label: score}})


def _beam_text(beam: int) -> str:
    return "greedy" if beam == 1 else f"beam {beam}"


# -----------------------------------------------------------------------------
# tasks


def _mt_task(src: str, tgt: str):
    def task(seed: int, quick: bool) -> Recipe:
        data = pair_data(src, tgt)
        tok = data.tokenizer
        decoding = QUICK if quick else FULL
        torch.manual_seed(seed)
        model = build_transformer(tok.vocab_size, pad_id=tok.pad_id, bos_id=tok.bos_id,
                                  eos_id=tok.eos_id, **(QUICK_MODEL if quick else FULL_MODEL))
        cfg = TrainConfig(budget="60s" if quick else "30m", lr=1e-3, schedule="cosine",
                          schedule_params={"warmup": WARMUP, "final": 0.0}, micro_batch=128,
                          betas=(0.9, 0.98), weight_decay=0.01, clip=1.0, precision="bf16",
                          eval_every=decoding.eval_every, metric=METRIC, tensorboard=False)
        notes: dict[str, Any] = {
            "dataset": f"multi30k {src}-{tgt}", "pair": f"{src}-{tgt}", "quick": quick,
            "model": "pre-norm transformer", "model_size": QUICK_MODEL if quick else FULL_MODEL,
            "vocab": tok.vocab_size, "train_pairs": len(data.train),
            "val_sentences": decoding.val_limit or len(data.val), "schedule": "plain*"}
        best = BestValidation(data, decoding, notes)
        return Recipe(model=model, train_data=data.train,
                      loss_fn=translation_loss(0.1, "token"), evaluate=best.evaluate,
                      config=cfg, hooks=[best],
                      tokens_fn=lambda b: count_tokens(b, tok.pad_id), notes=notes)
    task.__doc__ = f"Multi30k {src}->{tgt}, a small Transformer, plain* (warm-up) recipe"
    return task


for _pair in PAIRS:
    _src, _tgt = _pair.split("-")
    register_task(pair_task(_pair))(_mt_task(_src, _tgt))


# -----------------------------------------------------------------------------
# methods


@register_method("plain*", applies=is_mt_task)
def plain_star(recipe: Recipe) -> Recipe:
    """Cosine decay after a linear warm-up (5% of the budget): the baseline."""
    recipe.config.schedule_params = {"warmup": WARMUP, "final": 0.0}
    recipe.notes["schedule"] = "plain*"
    return recipe


@register_method("plain", applies=is_mt_task)
def plain(recipe: Recipe) -> Recipe:
    """The same cosine decay with no warm-up."""
    recipe.config.schedule_params = {"warmup": 0.0, "final": 0.0}
    recipe.notes["schedule"] = "plain"
    return recipe


def _curriculum(kind: str, p: float):
    def method(recipe: Recipe) -> Recipe:
        recipe = plain(recipe)
        src, tgt = recipe.notes["pair"].split("-")
        scores = _difficulty(src, tgt, kind)
        recipe.sampler = CompetenceSampler(scores, p=p, c0=C0, T_fraction=T_FRACTION,
                                           seed=recipe.config.seed)
        recipe.overhead_seconds += scores.seconds
        recipe.notes.update({"curriculum": scores.name, "p": p, "c0": C0,
                             "T_fraction": T_FRACTION, "scoring_seconds": scores.seconds})
        return recipe
    name = "c_linear" if p == 1 else "c_sqrt"
    method.__doc__ = f"source sentence {kind} curriculum, {name}, no warm-up"
    return method


for _kind, _short in (("length", "sl"), ("rarity", "sr")):
    for _p, _name in ((1.0, "linear"), (2.0, "sqrt")):
        register_method(f"{_short}-{_name}", applies=is_mt_task)(_curriculum(_kind, _p))

register_suite(Suite(
    name="mt", tasks=lambda options: [pair_task(options.pair)], options=MTOptions,
    methods=["plain*", "plain", "sl-linear", "sl-sqrt", "sr-linear", "sr-sqrt"], margin=0.0,
    description="Multi30k: competence-based curriculum vs plain training (Platanios et al. "
                "2019); target = plain*'s best validation BLEU"))
