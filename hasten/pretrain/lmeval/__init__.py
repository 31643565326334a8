"""Evaluations that can see small-compute pretraining (`hasten eval-lm MODEL_DIR`).

GLUE fine-tuning on a few thousand examples cannot tell a CPU-minutes pretrained encoder
from no pretraining; these can, because nothing is fine-tuned:

- `blimp`: BLiMP minimal pairs zero-shot by masked-LM pseudo-log-likelihood (Salazar et al.
  2020), word-level PLL-word-l2r (Kauf & Ivanova 2023), with bootstrap intervals
  (`bootstrap`) over pairs and over pretraining seeds;
- `heldout`: held-out MLM loss at a common 15% rate with fixed masks;
- `probes`: linear probes on frozen mean-pooled features (SST-2, STS-B);
- `loading`: any HF masked-LM folder, hasten's exports, or a model in memory;
- `evaluate`: `eval_lm(EvalLMConfig)` runs them and writes `eval.json`.

`glue_tasks` holds the GLUE readers and metrics that `hasten.pretrain.glue` shares. The results are
shown in docs/benchmarks.md, "Pretraining ladder: the Cramming ablation by held-out loss".
"""

from hasten.pretrain.lmeval.blimp import (
    blimp_control,
    evaluate_blimp,
    read_blimp,
    seed_matrix,
    select_pairs,
)
from hasten.pretrain.lmeval.bootstrap import bootstrap_difference, bootstrap_interval
from hasten.pretrain.lmeval.evaluate import EvalLMConfig, eval_lm, evaluate_lm
from hasten.pretrain.lmeval.heldout import mlm_loss, pack_text
from hasten.pretrain.lmeval.loading import LM, load_lm, untrained_like, wrap_lm
from hasten.pretrain.lmeval.pll import pll_scores
from hasten.pretrain.lmeval.probes import bag_of_tokens, encoder_features, probe_sst2, probe_stsb

__all__ = ["LM", "EvalLMConfig", "bag_of_tokens", "blimp_control", "bootstrap_difference",
           "bootstrap_interval", "encoder_features", "eval_lm", "evaluate_blimp",
           "evaluate_lm", "load_lm", "mlm_loss", "pack_text", "pll_scores", "probe_sst2",
           "probe_stsb", "read_blimp", "seed_matrix", "select_pairs", "untrained_like", "wrap_lm"]
