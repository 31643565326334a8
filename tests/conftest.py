import importlib
import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cli"))  # shared helpers: own_tasks (task files)
sys.path.insert(0, str(ROOT / "tests" / "levers"))  # four_loops (one problem, four loops)
# One torch thread in this process and in every command it starts: the tests' models are
# tiny, and on a loaded machine a second thread mostly waits for its core, stalling each op.
# Tests of the thread choice set their own value.
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
# the modules whose `time` the trainer reads: budget, ledger, evaluation plan, loop, progress
CLOCKED = ("hasten.core.budget", "hasten.core.eval_plan", "hasten.core.train_loop",
           "hasten.core.trainer", "hasten.core.runlog", "hasten.core.resume")


class FakeClock:
    """A clock for timing tests, in the shape of the `time` module: every read returns `now`
    and then moves it on by `tick` seconds (so a loop that only reads the clock still ends);
    `sleep(s)` moves it on by s at once. Runs timed by it are the same on any machine."""

    def __init__(self, now: float = 1000.0, tick: float = 0.0) -> None:
        self.now, self.tick = now, tick

    def perf_counter(self) -> float:
        read = self.now
        self.now += self.tick
        return read

    monotonic = perf_counter

    def time(self) -> float:
        return 1.7e9 + self.perf_counter()

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def pytest_collection_modifyitems(config, items):
    """The slow tests first (otherwise in collection order): with one worker per core
    (`make test`) they start at once rather than ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def one_thread():
    """One torch thread for the test (tiny models run fastest so), the count restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Commands run in this process set torch's threads (to the cores, or OMP_NUM_THREADS):
    every test starts with one."""
    yield
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def use_clock(monkeypatch, clock: FakeClock, modules=CLOCKED) -> FakeClock:
    """`clock` as the `time` module of `modules` (names) for one test."""
    for name in modules:
        monkeypatch.setattr(importlib.import_module(name), "time", clock)
    return clock


@pytest.fixture
def fake_clock(monkeypatch):
    """The trainer's clock, faked: reads do not move it; `fake_clock.sleep(s)` does."""
    return use_clock(monkeypatch, FakeClock())


def run_hasten(*args, env=None, timeout=300, check=False):
    """Run `python -m hasten ARGS` in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "hasten", *map(str, args)], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"hasten {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def run_in_process(*args, env=None, check=False):
    """`hasten ARGS` in this process (`hasten.cli.main`), with `env` set for the call; returns
    a CompletedProcess as `run_hasten` does. For tests of what a command does; the tests of the
    process itself (exit status, signals, start-up) use `run_hasten`."""
    from hasten.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(err):
        for key, value in (env or {}).items():
            patch.setenv(key, str(value))
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own exits (--help, --version)
            code = exit_.code if isinstance(exit_.code, int) else 1
    proc = subprocess.CompletedProcess(["hasten", *argv], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"hasten {' '.join(argv)} failed:\n{proc.stderr}")
    return proc


@pytest.fixture
def hasten_cli():
    return run_hasten


def help_text(capsys, *argv: str) -> str:
    """What `hasten ARGV --help` prints (in-process; --help exits)."""
    from hasten.cli import main

    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


# the header of a record (`hasten.bench.records`), for tests that write one by hand
RECORD_HEADER = {"schema_version": 1, "suite": "s", "created": "2026-12-07T00:00:00+00:00",
                 "machine": "test box", "code": "abc1234", "command": "hasten test",
                 "status": "complete"}
