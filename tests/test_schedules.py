import pytest

from hasten.errors import ConfigError
from hasten.schedules import (
    SCHEDULES,
    batch_multiple,
    constant,
    cosine,
    linear,
    make_schedule,
    one_cycle,
    triangle,
)

# (schedule, params, value at p=0, p=0.5, p=1), worked out by hand
CASES = [
    (constant, {}, 1.0, 1.0, 1.0),
    (constant, {"warmup": 0.5}, 0.0, 1.0, 1.0),
    (linear, {}, 1.0, 0.5, 0.0),
    (linear, {"warmup": 0.25, "final": 0.1}, 0.0, 1 - 0.9 * (0.25 / 0.75), 0.1),
    (cosine, {}, 1.0, 0.5, 0.0),
    (cosine, {"warmup": 0.0, "final": 0.2}, 1.0, 0.6, 0.2),
    (one_cycle, {"peak_at": 0.5, "start": 0.04, "final": 0.0}, 0.04, 1.0, 0.0),
    (triangle, {}, 0.25, 0.25 + 0.75 * 0.5 / 0.75, 0.0),
]


@pytest.mark.parametrize("fn, params, at0, at_half, at1", CASES)
def test_schedule_values(fn, params, at0, at_half, at1):
    assert fn(0.0, **params) == pytest.approx(at0, abs=1e-12)
    assert fn(0.5, **params) == pytest.approx(at_half, abs=1e-12)
    assert fn(1.0, **params) == pytest.approx(at1, abs=1e-12)


def test_triangle_is_cramming_shape():
    # 25% of peak at the start, the peak at 75% of the budget, zero at the end
    assert triangle(0.0) == 0.25
    assert triangle(0.75) == 1.0
    assert triangle(0.875) == pytest.approx(0.5)
    assert triangle(1.0) == 0.0


def test_every_schedule_stays_in_range_and_clips_progress():
    for name, fn in SCHEDULES.items():
        values = [fn(i / 100) for i in range(101)]
        assert all(0.0 <= v <= 1.0 for v in values), name
        assert fn(-1.0) == fn(0.0) and fn(2.0) == fn(1.0), name


def test_make_schedule_binds_parameters_and_rejects_bad_ones():
    s = make_schedule("cosine", warmup=0.1)
    assert s(0.05) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="unknown schedule 'zigzag'"):
        make_schedule("zigzag")
    with pytest.raises(ConfigError, match="bad parameters for schedule 'triangle'"):
        make_schedule("triangle", warmup=0.1)


def test_batch_ramp():
    assert batch_multiple(0.0, start=1, end=8, until=0.5) == 1
    assert batch_multiple(0.25, start=1, end=8, until=0.5) == 4  # floor(1 + 7 * 0.5)
    assert batch_multiple(0.5, start=1, end=8, until=0.5) == 8
    assert batch_multiple(1.0, start=1, end=8, until=0.5) == 8
    assert batch_multiple(0.3, start=4, end=4) == 4
    with pytest.raises(ConfigError):
        batch_multiple(0.1, start=0, end=4, until=0.5)


def test_step_schedule_drops_once_at_its_point():
    from hasten.schedules import make_schedule

    s = make_schedule("step")
    assert [s(p) for p in (0.0, 0.49, 0.5, 1.0)] == [1.0, 1.0, 0.1, 0.1]
    s = make_schedule("step", at=0.25, factor=0.5)
    assert (s(0.2), s(0.25)) == (1.0, 0.5)
