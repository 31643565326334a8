"""What each command-line setting does, with its units: the start of every flag's `--help`
line (`hasten.core.config.flag_help` adds the default and the reason for it), one text per
idea for every command. A command passes its own texts where a name means something of its
own there (`--epochs` of prune's proxy, of distill's evaluation networks, of glue's
fine-tuning).

Where it is shown: no measured result (every command's `--help`).
"""

from __future__ import annotations

BUDGET_UNITS = "a number and a unit: s, m, h (wall clock), steps, ex (examples), tok " \
               "(tokens) or flop (FLOPs)"

WHAT = {
    # every command
    "out": "the folder the command writes",
    "overwrite": "write into an --out folder that holds a result or other files (an earlier "
                 "result there is replaced)",
    "resume": "continue what --out holds (a stopped run or record) where it stopped",
    "quiet": "print no progress lines",
    "seed": "the random seed (an integer)",
    "device": "where to run: cpu, cuda, cuda:N or mps",
    "budget": f"how much to train: {BUDGET_UNITS}",
    "precision": "the arithmetic of forward and backward: fp32, or bf16 autocast",
    "compile": "compile the model with torch.compile first",
    "checkpoint_every": "optimizer steps between checkpoints",
    "keep_checkpoints": "checkpoints kept in --out/checkpoints (the newest first)",
    "cache_dir": "the folder for prepared data kept between runs",
    "cache": "the folder for prepared corpora kept between runs",
    # benchmarks
    "quick": "run the smoke-test version of every task (tiny data, short budgets)",
    "seeds": "runs of each method on each task, seeds FIRST_SEED, FIRST_SEED + 1, ...",
    "first_seed": "the first seed of the runs",
    "tasks": "the tasks to run, a comma list (hasten list tasks; yours as "
             "FILE.py:FUNCTION)",
    "methods": "the methods to run, a comma list (hasten list methods)",
    "baseline": "the method the others are compared with",
    "repeat_flagged": "run once more a run timed while the machine was busy",
    "task": "the task to run (hasten list tasks)",
    "pair": "the Multi30k language pair, SRC-TGT (en, de, fr, cs)",
    "prune_ratio": "InfoBatch's r: the chance a below-mean-loss example is skipped in an "
                   "epoch, in [0, 1)",
    "anneal": "the fraction of the budget after which InfoBatch trains on all the data",
    "distill_budget": "each distillation's budget (s, m, h or steps; METHOD=BUDGET,... per "
                      "method)",
    "levers": "the levers to stack, a comma list",
    "fraction": "the fraction of the baseline's budget each lever run trains",
    "pays": "the share of time to target a lever must save to stay (0.05: 5%)",
    "tune_seed": "the seed of the validation trials that choose the settings",
    "part": "which runs of the plan: all, levers or controls",
    "tune_only": "choose the settings, write OUT/choices.json and stop",
    "choices_file": "a choices.json to reuse instead of choosing again",
    "levers_from": "a validation result.json whose kept levers (and choices) to use",
    # bench chaos
    "kills": "times the run is killed (SIGKILL) and resumed",
    "save_kills": "kills aimed inside a checkpoint write",
    "steps": "optimizer steps of the run",
    "micro_batch": "examples per forward pass per process",
    "spread": "checkpoint intervals after a checkpoint within which a kill lands",
    "ranks": "processes: 1, or 2 for a DDP pair",
    "kill_rank": "the rank killed in a DDP pair",
    "collective_timeout": "seconds a rank waits for a dead peer",
    "exit_within": "seconds the surviving rank may take to exit",
    "save_pause": "seconds a checkpoint write pauses between files when a kill aims at it",
    "timeout": "seconds any one process may run",
    "work_dir": "the folder for the runs' own folders",
    # pretraining and language-model evaluation
    "corpus": "text files or folders (.txt, .md, .jsonl, optionally .gz)",
    "recipe": "the pretraining recipe (hasten list recipes)",
    "objective": "the pretraining objective: mlm or electra",
    "arch": "the encoder architecture",
    "size": "how the model is sized: auto (to the budget and the machine) or recipe",
    "seq_len": "tokens per row",
    "vocab_size": "WordPiece vocabulary size (tokens)",
    "filter": "drop documents that are hard to compress (Cramming's filter)",
    "cutoff": "the filter's cutoff: keep a document when tokens < CUTOFF x characters",
    "dedup": "drop duplicate documents first",
    "unit": "what a document is: paragraph or line",
    "heldout": "the text held out for the held-out loss",
    "eval_every": "the fraction of the budget between evaluations",
    "checkpoints": "checkpoints per run, spread over the expected steps",
    "evals": "the evaluations to run, a comma list: blimp, probes, mlm_loss",
    "blimp_pairs": "BLiMP pairs scored per paradigm",
    "blimp_full": "score every BLiMP pair (67 x 1,000)",
    "blimp_dir": "a folder of BLiMP's PARADIGM.jsonl(.gz) files",
    "glue_dir": "a folder holding GLUE's SST-2 and STS-B",
    "heldout_corpus": "text for the held-out MLM loss",
    "heldout_rows": "rows of the held-out text scored",
    "vocab_corpus": "a corpus whose words a BLiMP pair's words must all be in",
    "batch_tokens": "tokens per forward pass (rows x length)",
    "bootstrap": "bootstrap resamples for the 95% interval",
    "controls": "score an untrained copy of the model too",
    "word_l2r": "score a word's pieces left to right (PLL-word-l2r)",
    "model_dir": "a model folder",
}
