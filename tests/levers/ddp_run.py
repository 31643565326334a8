"""The four-loop problem in hasten's trainer with LEVERS, alone or as one rank of a torchrun
job: `python ddp_run.py OUT MICRO_BATCH`. Each process writes OUT/rank-R.json: the rows it
drew and kept each step, and the final weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from four_loops import DIFFICULTY, LEVERS, LR, STEPS, Net, Rows, _record, per_example_loss
from torch.utils.data import default_collate

from hasten.core.distributed import rank_from_env
from hasten.core.recipe import Recipe
from hasten.core.train_config import TrainConfig
from hasten.core.trainer import train
from hasten.levers import apply_levers

if __name__ == "__main__":
    torch.set_num_threads(1)
    out, micro = Path(sys.argv[1]), int(sys.argv[2])
    cfg = TrainConfig(budget=f"{STEPS}steps", lr=LR, optimizer="sgd", momentum=0.0,
                      schedule="constant", micro_batch=micro, quiet=True, tensorboard=False,
                      device="cpu")
    recipe = Recipe(Net(), Rows(), per_example_loss, None, cfg, difficulty=DIFFICULTY,
                    collate_fn=default_collate)
    apply_levers(recipe, LEVERS)
    drawn, kept = _record(recipe.hooks)
    train(recipe.model, recipe.train_data, recipe.loss_fn, recipe.config, hooks=recipe.hooks,
          sampler=recipe.sampler, collate_fn=recipe.collate_fn)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.flatten().tolist() for k, v in recipe.model.state_dict().items()}
    (out / f"rank-{rank_from_env()}.json").write_text(json.dumps(
        {"drawn": drawn.rows, "kept": kept.rows, "weights": weights}))
