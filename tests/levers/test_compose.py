"""Lever specs, the combination rules and the needs, each refused in one line."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core.errors import ConfigError
from hasten.core.recipe import Recipe
from hasten.core.train_config import TrainConfig
from hasten.levers import (
    Curriculum,
    InfoBatchLever,
    apply_levers,
    parse_lever,
    parse_levers,
    split_specs,
)
from hasten.levers.dynamic import PhasedSampler
from hasten.select.curriculum import CompetenceSampler
from hasten.select.infobatch import InfoBatch


def recipe(**extra) -> Recipe:
    data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    return Recipe(nn.Linear(4, 2), data, lambda m, b: F.cross_entropy(m(b[0]), b[1],
                                                                       reduction="none"),
                  None, TrainConfig(budget="10steps", micro_batch=8), **extra)


def test_a_spec_names_a_lever_and_the_settings_that_differ_from_their_defaults():
    lever = parse_lever("infobatch:prune=0.3, anneal=0.9")
    assert isinstance(lever, InfoBatchLever)
    assert (lever.settings.prune, lever.settings.anneal) == (0.3, 0.9)
    assert lever.spec() == "infobatch:prune=0.3,anneal=0.9"
    assert parse_lever(lever.spec()).spec() == lever.spec()
    assert parse_lever("infobatch:prune=0.5").spec() == "infobatch"  # the default
    assert [x.spec() for x in parse_levers("curriculum:T=0.2+sb-topk:keep=0.25,pool=4")] == [
        "curriculum:T=0.2", "sb-topk:keep=0.25,pool=4"]
    assert parse_lever("adamw:impl=foreach").settings.impl == "foreach"


def test_a_method_list_keeps_each_levers_settings_whole():
    assert split_specs("baseline,infobatch:prune=0.3,anneal=0.9,sb-topk,"
                       "infobatch+sb-topk:keep=0.25,pool=4") == [
        "baseline", "infobatch:prune=0.3,anneal=0.9", "sb-topk",
        "infobatch+sb-topk:keep=0.25,pool=4"]


@pytest.mark.parametrize("spec, message", [
    ("nosuch", "unknown lever 'nosuch'; known: adamw, bf16,"),
    ("infobatch:prune=1.5", "infobatch: prune must be in \\[0, 1\\), got 1.5"),
    ("infobatch:ratio=0.3", "unknown setting 'ratio'"),
    ("infobatch:prune", "settings are KEY=VALUE, got 'prune'"),
    ("sb-topk:keep=0", "sb-topk: keep must be in \\(0, 1\\], got 0"),
    ("curriculum:T=2", "curriculum: T is a budget fraction in \\(0, 1\\], got 2"),
    ("bf16:x=1", "lever 'bf16' has no settings, got x"),
    ("schedule:shape=zigzag", "unknown schedule 'zigzag'"),
    ("prune:scorer=psychic", "prune: unknown scorer 'psychic'"),
])
def test_a_bad_spec_is_one_line(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_lever(spec)


@pytest.mark.parametrize("levers, message", [
    (["sb-topk", "infobatch"], "lever 'infobatch' must come before 'sb-topk': data levers go "
                               "in the order static pruning, curriculum, dynamic pruning, "
                               "selective backprop"),
    (["infobatch", "random-drop"], "levers 'infobatch' and 'random-drop' both prune the "
                                   "epochs: keep one"),
    (["sb", "sb-topk"], "both choose the rows to backpropagate"),
    (["bf16", "bf16"], "lever 'bf16' is listed twice"),
    (["schedule", "schedule:shape=linear"], "listed twice"),
])
def test_levers_that_cannot_combine_are_refused_before_any_work(levers, message):
    with pytest.raises(ConfigError, match=message):
        apply_levers(recipe(), levers)


def test_two_levers_setting_one_field_are_refused():
    from hasten.levers.base import Lever, register_lever

    class Fp16Ish(Lever):  # a second lever that sets the precision
        name = "precision-test"

        def configure(self, config):
            config.precision = "fp32"
            return {"precision": "fp32"}

    register_lever(Fp16Ish)
    try:
        with pytest.raises(ConfigError, match="levers 'bf16' and 'precision-test' both set "
                                              "precision"):
            apply_levers(recipe(), ["bf16", "precision-test"])
    finally:
        from hasten.levers.base import LEVERS
        LEVERS.pop("precision-test")


@pytest.mark.parametrize("spec, need", [
    ("curriculum", "a difficulty per training example \\(Recipe.difficulty\\)"),
    ("sb-proxy", "a small model to score with \\(Recipe.proxy_model\\)"),
])
def test_a_lever_refuses_a_task_without_what_it_needs(spec, need):
    with pytest.raises(ConfigError, match=f"lever '{spec}' needs {need}, which this task "
                                          "does not declare"):
        apply_levers(recipe(), [spec])


def test_a_curriculum_then_pruning_hands_over_at_its_length():
    r = apply_levers(recipe(difficulty=torch.arange(64).numpy()), ["curriculum:T=0.4",
                                                                     "infobatch"])
    assert isinstance(r.sampler, PhasedSampler) and r.sampler.at == 0.4
    assert isinstance(r.sampler.first, CompetenceSampler)
    assert isinstance(r.sampler.second, InfoBatch)
    assert r.notes["levers"] == ["curriculum:T=0.4", "infobatch"]


def test_a_curriculum_given_its_own_difficulty_needs_nothing_from_the_task():
    r = apply_levers(recipe(), [Curriculum(difficulty=list(range(64)), T=0.3)])
    assert isinstance(r.sampler, CompetenceSampler)
    with pytest.raises(ConfigError, match="curriculum: 3 difficulties for 64 training"):
        apply_levers(recipe(), [Curriculum(difficulty=[1, 2, 3])])


def test_step_levers_set_their_fields_and_selection_draws_its_pool():
    r = apply_levers(recipe(), ["bf16", "adamw:impl=foreach", "micro-batch:size=16",
                                "schedule:shape=one-cycle,peak_at=0.2", "sb-topk:pool=4"])
    cfg = r.config
    assert (cfg.precision, cfg.fused, cfg.foreach) == ("bf16", False, True)
    assert cfg.micro_batch == 64  # 4 x the micro-batch lever's 16
    assert (cfg.schedule, cfg.schedule_params) == ("one-cycle", {"peak_at": 0.2})
    assert r.hooks[-1].hook.backward_batch == 16


def test_static_pruning_keeps_its_fraction_and_charges_its_scoring():
    r = apply_levers(recipe(), ["prune:scorer=loss,keep=0.25,epochs=1"])
    assert len(r.train_data) == 16 and r.notes["static_pruning"]["kept"] == 16
    assert r.overhead_seconds > 0 and r.overhead_flops > 0
    assert r.levers[0].costs["seconds"] == r.overhead_seconds
