import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_hasten(*args, env=None, timeout=300, check=False):
    """Run `python -m hasten ARGS` in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "hasten", *map(str, args)], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"hasten {' '.join(map(str, args))} failed:\n{proc.stderr}")
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
