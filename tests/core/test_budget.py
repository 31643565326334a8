import pytest

from hasten.core.budget import Budget, Ledger, parse_budget
from hasten.core.errors import ConfigError


@pytest.mark.parametrize("text, unit, amount", [
    ("90s", "seconds", 90.0), ("20m", "seconds", 1200.0), ("24h", "seconds", 86400.0),
    ("1.5h", "seconds", 5400.0), ("2000steps", "steps", 2000.0), ("1e6ex", "examples", 1e6),
    ("3e9tok", "tokens", 3e9), ("1e15flop", "flops", 1e15), (" 5 s ", "seconds", 5.0),
])
def test_parse_budget(text, unit, amount):
    assert parse_budget(text) == (unit, amount)


@pytest.mark.parametrize("text", ["", "90", "s", "ten minutes", "5parsecs", "-3s", "0s", "1e5"])
def test_unparsable_budget_names_the_text(text):
    with pytest.raises(ConfigError, match="budget"):
        parse_budget(text)


def test_progress_of_counter_budgets():
    b = Budget("100steps")
    assert b.progress() == 0.0 and not b.exhausted()
    b.work.steps = 25
    assert b.progress() == 0.25
    assert b.projected_progress(1) == 0.26
    b.work.steps = 100
    assert b.progress() == 1.0 and b.exhausted()
    b.work.steps = 150
    assert b.progress() == 1.0  # clipped

    ex = Budget("1000ex")
    ex.work.examples_forwarded = 500
    assert ex.progress() == 0.5


def test_wall_clock_counts_only_training(fake_clock):
    b = Budget("10s")
    with b.ledger.phase("train"):
        fake_clock.sleep(0.05)
        with b.ledger.phase("eval"):  # pauses the train clock
            fake_clock.sleep(0.1)
        fake_clock.sleep(0.05)
    with b.ledger.phase("checkpoint"):
        fake_clock.sleep(0.05)
    train = b.ledger.seconds["train"]
    assert train == pytest.approx(0.1)
    assert b.ledger.seconds["eval"] == pytest.approx(0.1)
    assert b.ledger.seconds["checkpoint"] == pytest.approx(0.05)
    assert b.used() == pytest.approx(train)
    assert b.progress() == pytest.approx(train / 10)


def test_ledger_state_round_trip(fake_clock):
    a = Ledger()
    with a.phase("setup"):
        fake_clock.sleep(0.01)
    b = Ledger()
    b.load_state_dict(a.state_dict())
    assert b.seconds == a.seconds


def test_budget_state_round_trip():
    a = Budget("1e5ex")
    a.work.examples_forwarded, a.work.steps, a.work.flops = 123, 4, 5.5
    b = Budget("1e5ex")
    b.load_state_dict(a.state_dict())
    assert b.work == a.work and b.progress() == a.progress()


def test_seconds_spec_drops_trailing_zeros_and_parses_back():
    from hasten.core.budget import parse_budget, seconds_spec

    assert [seconds_spec(v) for v in (750.0, 1 / 3, 0.5, 12.25)] == ["750s", "0.333s", "0.5s",
                                                                     "12.25s"]
    assert parse_budget(seconds_spec(216.0)) == ("seconds", 216.0)


def test_public_clock_start_stop(monkeypatch):
    import hasten.core.budget as bm

    now = [100.0]
    monkeypatch.setattr(bm.time, "perf_counter", lambda: now[0])
    b = bm.Budget("10s")
    assert not b.running and b.used() == 0.0
    b.start()
    now[0] += 4.0
    b.start()  # idempotent: the clock keeps its start
    now[0] += 1.0
    assert b.running and b.used() == 5.0 and b.progress() == 0.5
    b.stop()
    now[0] += 100.0  # evaluation, say: off the clock
    b.stop()
    assert not b.running and b.used() == 5.0
    b.start()
    now[0] += 5.0
    assert b.exhausted()
