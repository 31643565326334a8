"""Levers: every speed-up as one object, combined in one list that works the same in
hasten's trainer, the HF Trainer, Lightning and a plain loop.

    from hasten.levers import train
    train(recipe, levers=["curriculum", "infobatch:prune=0.3", "sb-topk"])

Spec strings name a lever and its settings (`hasten list levers`); `+` joins levers into one
arm for `hasten bench`. The rules that combine them are `hasten.levers.compose`; a loop hasten
does not own uses `hasten.levers.loop.LeverLoop` (the HF and Lightning callbacks are built on
it). A new lever is one class in one file (docs/extending.md).
"""

from hasten.levers import curriculum, dynamic, selective, static, step  # noqa: F401 (register)
from hasten.levers.base import (
    LEVERS,
    NEEDS,
    ROLES,
    Lever,
    parse_lever,
    parse_levers,
    register_lever,
    split_specs,
)
from hasten.levers.compose import apply_levers, check_combination, lever_costs
from hasten.levers.curriculum import Curriculum
from hasten.levers.dynamic import DropEasiest, InfoBatchLever, RandomDrop
from hasten.levers.run import train
from hasten.levers.selective import Sb, SbProxy, SbTopk, StaleSb
from hasten.levers.static import StaticPrune
from hasten.levers.step import AdamWKernel, Bf16, ChannelsLast, Compile, MicroBatch, Schedule

__all__ = ["LEVERS", "NEEDS", "ROLES", "AdamWKernel", "Bf16", "ChannelsLast", "Compile",
           "Curriculum", "DropEasiest", "InfoBatchLever", "Lever", "MicroBatch", "RandomDrop",
           "Sb", "SbProxy", "SbTopk", "Schedule", "StaleSb", "StaticPrune", "apply_levers",
           "check_combination", "lever_costs", "parse_lever", "parse_levers", "register_lever",
           "split_specs", "train"]
