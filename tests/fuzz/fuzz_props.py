"""The fuzzing harness shared by tests/fuzz and scripts/reliability_figures.py.

A reader's property: whatever bytes (or text, or arguments) it is given, it returns a result
or raises a `HastenError` whose message is one line; never another exception, never a hang.
`READERS` maps a reader's name to (hypothesis strategy, check); `check(tmp, example)` writes
the example under the empty folder `tmp`, calls the reader and raises `PropertyFailure` on a
broken promise. `run_property(name, examples)` runs one property for a number of examples;
with `collect=True` it keeps going after a failure and returns the counts instead of raising,
which is how the figures script counts cases per reader.

Examples are valid files mutated (bytes flipped or set, cut short, garbage inserted, ranges
deleted or repeated), plain random bytes, and structured variants (a header's fields, a JSON
value, a consistent-but-wrong checkpoint) that get past the first checks.
"""

from __future__ import annotations

import gzip
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as fixed_seed
from hypothesis import strategies as st

from hasten.core.errors import HastenError

HANG_SECONDS = 60.0  # one example taking longer than this counts as a hang
TEST_EXAMPLES = 40  # per reader in the test suite (the figures script runs more) ...
SLOW_READERS = {"checkpoint": 15}  # ... except these, whose examples take a run each
BASE = settings(deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much,
                                       HealthCheck.large_base_example])


class PropertyFailure(AssertionError):
    """A reader broke its promise: another exception, a multi-line message, or a hang."""


class Hang(BaseException):
    """Raised by the alarm when one example runs past `HANG_SECONDS`."""


# --- mutations -----------------------------------------------------------------------------

OPS = ("flip", "set", "truncate", "insert", "delete", "repeat")


@st.composite
def mutated(draw: Any, seed: bytes, max_ops: int = 4) -> bytes:
    """`seed` with 1..max_ops random edits."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        op, n = draw(st.sampled_from(OPS)), len(data)
        if op in ("flip", "set") and n:
            i = draw(st.integers(0, n - 1))
            data[i] = data[i] ^ (1 << draw(st.integers(0, 7))) if op == "flip" else \
                draw(st.integers(0, 255))
        elif op == "truncate":
            data = data[:draw(st.integers(0, n))]
        elif op == "insert":
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.binary(min_size=1, max_size=32))
        elif op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del data[i:i + draw(st.integers(1, 32))]
        elif op == "repeat" and n:
            i = draw(st.integers(0, n - 1))
            data[i:i] = data[i:i + draw(st.integers(1, 32))]
    return bytes(data)


def damaged(seed: bytes, random_size: int = 256) -> st.SearchStrategy[bytes]:
    """Mutations of `seed`, and plain random bytes."""
    return st.one_of(mutated(seed), st.binary(max_size=random_size))


def gz_damaged(plain: bytes) -> st.SearchStrategy[bytes]:
    """A gzip file: its compressed bytes mutated, its content mutated then compressed again,
    or random bytes."""
    packed = gzip.compress(plain, mtime=0)
    return st.one_of(mutated(packed), mutated(plain).map(lambda b: gzip.compress(b, mtime=0)),
                     st.binary(max_size=256))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


# --- the property --------------------------------------------------------------------------


@contextmanager
def hang_guard(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Raise `Hang` in the main thread when the block runs past `seconds` (a no-op elsewhere
    and where SIGALRM does not exist)."""
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def one_line(err: HastenError) -> None:
    """A HastenError's message must be one non-empty line (what `hasten: error:` prints)."""
    text = str(err)
    if not text.strip() or text.splitlines() != [text]:
        raise PropertyFailure(f"{type(err).__name__} message is not one line: {text!r}")


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """("ok", value) or ("error", the HastenError); anything else is a PropertyFailure."""
    try:
        with hang_guard():
            return "ok", fn(*args, **kwargs)
    except HastenError as err:
        one_line(err)
        return "error", err
    except Hang as err:
        raise PropertyFailure(f"hang: {err}") from None
    except PropertyFailure:
        raise
    except Exception as err:
        where = traceback.extract_tb(err.__traceback__)[-1]
        raise PropertyFailure(f"{type(err).__name__}: {' '.join(str(err).split())[:300]} "
                              f"(at {Path(where.filename).name}:{where.lineno})") from err


# --- running -------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one property run saw: examples tried, failures, the first few failure lines."""

    reader: str
    cases: int = 0
    failures: int = 0
    errors: int = 0  # examples refused with a HastenError (the rest were read)
    seconds: float = 0.0
    slowest: float = 0.0
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"cases": self.cases, "failures": self.failures, "refused": self.errors,
                "read": self.cases - self.failures - self.errors,
                "seconds": round(self.seconds, 3), "slowest_case_seconds": round(self.slowest, 3),
                "failure_examples": self.examples}


READERS: dict[str, tuple[st.SearchStrategy[Any], Callable[[Path, Any], Any]]] = {}


def reader(name: str, strategy: st.SearchStrategy[Any]) -> Callable[[Callable], Callable]:
    """Register `check(tmp, example)` as reader `name`'s property over `strategy`."""

    def register(check: Callable[[Path, Any], Any]) -> Callable[[Path, Any], Any]:
        READERS[name] = (strategy, check)
        return check

    return register


def run_property(name: str, examples: int, collect: bool = False, seed: int | None = None
                 ) -> Tally:
    """Run reader `name`'s property on `examples` examples. `collect`: count failures and go
    on (for the figures) instead of raising the first; `seed` fixes the examples drawn."""
    strategy, check = READERS[name]
    tally = Tally(name)
    phases = [Phase.explicit, Phase.generate] if collect else \
        [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]

    @settings(BASE, max_examples=examples, phases=phases)
    @given(example=strategy)
    def prop(example: Any) -> None:
        started = time.perf_counter()
        tally.cases += 1
        try:
            with tempfile.TemporaryDirectory(prefix="hasten-fuzz-") as tmp:
                kind = check(Path(tmp), example)
            tally.errors += kind == "error"
        except PropertyFailure as err:
            tally.failures += 1
            if len(tally.examples) < 5:
                tally.examples.append(f"{err} <- {example!r}"[:600])
            if not collect:
                raise
        finally:
            spent = time.perf_counter() - started
            tally.seconds += spent
            tally.slowest = max(tally.slowest, spent)

    (fixed_seed(seed)(prop) if seed is not None else prop)()
    return tally
