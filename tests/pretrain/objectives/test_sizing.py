"""The budget sizing rule, with a deterministic step timer so every number is exact."""

import pytest

from hasten.core.errors import ConfigError
from hasten.pretrain.objectives.flops import flops_per_token, non_embedding_parameters
from hasten.pretrain.objectives.sizing import (
    MENU,
    PROBE_ROWS,
    choose_size,
    describe,
    fit_micro_batch,
    memory_bytes,
    plan_wall_clock,
)

GIB = 2.0 ** 30


class FakeTimer:
    """A micro-step of `rows` rows of a shape costs 10 ms plus its training FLOPs at
    `flops_per_s`; records which shapes were probed."""

    def __init__(self, flops_per_s: float) -> None:
        self.rate, self.probed = flops_per_s, []

    def __call__(self, shape, rows):
        self.probed.append(shape)
        return 0.01 + 3 * flops_per_token(shape.config(128), 128, 0.25) * rows * 128 / self.rate


def _n(shape):
    return non_embedding_parameters(shape.config(128))


@pytest.mark.parametrize("budget, rate", [("60s", 5e10), ("1h", 5e10), ("24h", 1e14)])
def test_wall_clock_budget_buys_the_chosen_steps(budget, rate):
    timer = FakeTimer(rate)
    size = choose_size(budget, step_seconds=timer, free_bytes=64 * GIB)
    probed = list(timer.probed)
    seconds = {"60s": 60, "1h": 3600, "24h": 86400}[budget]
    probe = timer(size.shape, PROBE_ROWS)
    step = probe * max(1.0, size.micro_batch / PROBE_ROWS) * (size.batch // size.micro_batch)
    # the measured step time buys at least the chosen number of steps, and min_steps
    assert seconds / step >= size.steps >= 200
    assert step <= 0.02 * seconds + 1e-9  # no step longer than 2% of the budget
    # the shape is compute-optimal by the 20-tokens-per-parameter rule: it meets it, and
    # the next larger one (the first that failed, so the last probed) does not
    i = MENU.index(size.shape)
    if size.tokens < 20 * _n(size.shape):  # only the smallest may fail the rule
        assert i == 0 and probed == [MENU[0]]
    elif i + 1 < len(MENU):
        nxt = MENU[i + 1]
        assert probed == list(MENU[:i + 2])  # probing stopped at the first failure
        micro, batch, rows_per_s = plan_wall_clock(seconds, timer(nxt, PROBE_ROWS), 128, 200,
                                                   0.02)
        assert seconds * rows_per_s * 128 < 20 * _n(nxt)
    assert size.tokens == pytest.approx(seconds * size.micro_batch * 128
                                        / (probe * max(1, size.micro_batch / PROBE_ROWS)))


def test_the_choices_grow_with_the_budget():
    sizes = [choose_size(b, step_seconds=FakeTimer(5e10), free_bytes=64 * GIB)
             for b in ("60s", "1h", "24h")]
    assert [MENU.index(s.shape) for s in sizes] == sorted(MENU.index(s.shape) for s in sizes)
    assert sizes[0].shape == MENU[0] and sizes[-1].shape != MENU[0]
    assert sizes[0].batch <= sizes[-1].batch <= 8192


def test_a_slow_machine_gets_fewer_steps_not_longer_ones():
    # a probe step of 2 s against a 60 s budget: one 16-row micro-batch per step
    size = choose_size("60s", step_seconds=lambda shape, rows: 2.0, free_bytes=64 * GIB)
    assert (size.shape, size.micro_batch, size.batch, size.steps) == (MENU[0], 16, 16, 30)
    assert "none met it, so the smallest" in size.reason


def test_flop_and_token_budgets_need_no_timer():
    size = choose_size("1e16flop", free_bytes=64 * GIB)
    per_token = 3 * flops_per_token(size.shape.config(128), 128, 0.25)
    assert size.tokens == pytest.approx(1e16 / per_token)
    assert size.tokens >= 20 * _n(size.shape)
    nxt = MENU[MENU.index(size.shape) + 1]
    assert 1e16 / (3 * flops_per_token(nxt.config(128), 128, 0.25)) < 20 * _n(nxt)
    assert size.steps >= 200 and size.batch & (size.batch - 1) == 0  # a power of two
    tok = choose_size("1e8tok", free_bytes=64 * GIB)
    assert tok.tokens == 1e8 and tok.batch == 2048 and tok.steps == 381
    line = describe(tok, "1e8tok")
    assert line.startswith("size: ") and "~381 steps" in line and "Hoffmann" in line
    with pytest.raises(ConfigError, match="a budget in steps cannot size a model"):
        choose_size("100steps")
    with pytest.raises(ConfigError, match="needs a measured step time"):
        choose_size("60s")


def test_memory_caps_the_micro_batch():
    big = MENU[-1]
    need = memory_bytes(big, 128, 128, "bf16")
    assert memory_bytes(big, 128, 128, "fp32") > need > memory_bytes(big, 64, 128, "bf16")
    assert fit_micro_batch(big, 128, 128, "bf16", free=2 * need) == 128
    assert fit_micro_batch(big, 128, 128, "bf16", free=2 * need - 1) == 64
    assert fit_micro_batch(big, 128, 128, "bf16", free=0) == 1


def test_a_shape_set_by_hand_gets_its_steps_capped():
    from hasten.pretrain.objectives.sizing import cap_step

    # probe 0.1 s for 16 rows; 60 s budget -> a step may take 1.2 s
    assert cap_step(60.0, 0.1, 128, 8192) == (128, 128 * 1)  # 0.8 s per micro-step
    assert cap_step(600.0, 0.1, 128, 8192) == (128, 128 * 15)  # 12 s: 15 micro-steps
    assert cap_step(600.0, 0.1, 128, 256) == (128, 256)  # never raised
    assert cap_step(10.0, 0.1, 128, 8192) == (32, 32)  # 0.2 s: a 32-row micro-batch
    assert cap_step(1.0, 0.5, 128, 8192) == (1, 1)  # even one row is too slow: one row
