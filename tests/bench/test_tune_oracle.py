"""The tune evaluation's oracle (`hasten.bench.tune_oracle`): the configuration with the lowest
median modelled time in the lever stack's test-phase verdict, its levers as the stack's quality
record has them, put on the tune task's recipe as the stack put them; refused where the stack
measured nothing or nothing reached the target."""

from __future__ import annotations

import json

import pytest

import hasten.bench.tune_suite  # noqa: F401  (registers the oracle)
from hasten.bench.harness import build_recipe
from hasten.bench.tune_oracle import oracle_configuration
from hasten.core.errors import ConfigError

FASHION_LEVERS = {"schedule": {"name": "linear", "params": {"warmup": 0.05}}, "bf16": {},
                  "batch": {"scale": 0.5}, "compile": {},
                  "infobatch": {"ratio": 0.5, "anneal": 0.875}}


def test_the_oracle_is_the_stack_tests_fastest_configuration_on_each_task():
    fashion = oracle_configuration("fashion-mnist")
    assert fashion["method"] == "stack-minus-proxy"
    assert fashion["median"] == pytest.approx(0.2303991752007425)
    assert fashion["stack"]["levers"] == FASHION_LEVERS
    assert fashion["stack"]["fraction"] == 0.6
    sst = oracle_configuration("sst2-small")
    assert sst["method"] == "stack-minus-proxy"
    assert sst["median"] == pytest.approx(0.5364075221070163)
    assert sst["stack"]["levers"]["curriculum"] == {"T_fraction": 0.2}
    assert sst["stack"]["levers"]["batch"] == {"scale": 0.25}
    with pytest.raises(ConfigError, match="the oracle is defined for fashion-mnist, "
                                          "sst2-small, not 'mt-en-de'"):
        oracle_configuration("mt-en-de")


def test_a_verdict_where_no_configuration_reaches_the_target_has_no_oracle(tmp_path):
    verdict = {"schema_version": 1, "created": "2026-12-07T00:00:00+00:00", "machine": "m",
               "code": "abc", "command": "c", "status": "complete", "suite": "stack-verdict",
               "baseline": "tuned-baseline", "inputs": {"quality": "q.json"},
               "runs": [{"task": "t", "method": "tuned-baseline",
                         "notes": {"by_seed": {"0": 1.0}}},
                        {"task": "t", "method": "stack",
                         "notes": {"by_seed": {"0": None, "1": 0.5, "2": None}}}]}
    (tmp_path / "stack-verdict-fashion-10k-w32-test-20261207.json").write_text(
        json.dumps(verdict))
    with pytest.raises(ConfigError, match="no configuration reaches its target on the "
                                          "median seed, so there is no oracle"):
        oracle_configuration("fashion-mnist", tmp_path)


def test_the_oracle_arm_puts_the_recorded_levers_on_the_tune_recipe():
    plain = build_recipe("fashion-mnist", "baseline", 0, True, budget="1200s")
    recipe = build_recipe("fashion-mnist", "oracle", 0, True, budget="1200s")
    cfg = recipe.config
    assert cfg.budget == "720s"  # the stack's fraction 0.6 of B
    assert (cfg.precision, cfg.compile) == ("bf16", True)
    assert cfg.micro_batch == plain.config.micro_batch // 2
    assert cfg.schedule == "linear" and cfg.schedule_params == {"warmup": 0.05}
    assert recipe.notes["stack"]["levers"] == FASHION_LEVERS
    assert recipe.notes["oracle"]["method"] == "stack-minus-proxy"
    assert recipe.notes["recipe_fingerprint"] == \
        hasten.bench.tune_suite.recipe_fingerprint(plain)
    with pytest.raises(ConfigError, match="method 'oracle' does not apply to task mt-en-de"):
        build_recipe("mt-en-de", "oracle", 0, True, budget="1200s")
