"""The command line as a fuzzing property: `hasten.cli.main` with random argument lists (a
command, or none, or garbage; its own flags and others'; values from a pool of meaningful,
wrong and random words). A call must end in exit code 0, or 2 with exactly one line
`hasten: error: ...` on stderr and nothing written; `--help`/`--version` exit 0.

Arguments that get past every check would start real work: the functions where the work
begins are replaced by one that raises `Reached` (the arguments were accepted, which is an
answer too). Paths are relative (the call runs in an empty folder), so nothing outside it
can be read or written."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from fuzz_props import PropertyFailure, hang_guard, reader
from hypothesis import strategies as st

from hasten.core.errors import HastenError

COMMANDS = ["demo", "bench", "report", "train", "prune", "distill", "cram", "glue", "eval-lm",
            "list"]
SUITES = ["vision", "demo", "steps", "selective", "prune", "distill", "mt", "mlm", "electra",
          "pretrain-ladder", "nosuch"]
WORDS = ["digits", "mnist1d", "nosuch", "1", "0", "-1", "3", "0.5", "1.5", "1e400", "nan",
         "inf", "", " ", "none", "true", "x=1", "lr=0.1", "budget=2steps", "=", "a,b",
         "2steps", "1e6tok", "5s", "0s", "soon", "fp32", "bf16", "cpu", "cuda", "tpu",
         "baseline", "el2n", "random", "dm", "mtt", "out", "file", "c.toml", "c.json",
         "tasks", "methods", "[1,2]", "{}", "\u00e9\u00e8", "-", "--", "eval", "-5m", "-1",
         "0.5steps", "cpu:7", "run", "model"]
# where real work would begin (module, attribute): replaced while fuzzing
WORK = [("hasten.bench.harness", "train_recipe"), ("hasten.bench.harness", "run_suite"),
        ("hasten.pretrain.cram", "cram"), ("hasten.distill.methods", "distill_with"),
        ("hasten.distill.evaluate", "evaluate"), ("hasten.select.prune", "prune_with"),
        ("hasten.pretrain.glue", "evaluate_glue"), ("hasten.bench.mlm", "run"),
        ("hasten.bench.electra", "run"), ("hasten.bench.ladder", "run")]


class Reached(BaseException):
    """The arguments were accepted and real work was about to start."""


def _reached(*args: Any, **kwargs: Any) -> Any:
    raise Reached


@cache
def flags(command: str) -> list[str]:
    """Every option string of `command` (of `hasten` itself for an unknown one)."""
    from hasten.cli import build_parser

    parser = build_parser([command])
    actions = parser._actions
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict) and \
                command in action.choices:
            actions = action.choices[command]._actions
    return sorted({s for a in actions for s in a.option_strings})


def _safe(word: str) -> bool:
    """No absolute or home paths, no way up: the call stays inside its folder."""
    return not word.startswith(("/", "~")) and ".." not in word and "\x00" not in word


random_words = st.text(max_size=12).filter(_safe)


TEMPLATES = [
    ["train", "--task", "digits", "--out", "out", "--budget", "2steps"],
    ["bench", "vision", "--tasks", "digits", "--methods", "baseline", "--out", "out"],
    ["prune", "--data", "digits", "--scorer", "random", "--keep", "0.5", "--out", "out"],
    ["distill", "--data", "digits", "--method", "random", "--ipc", "1", "--out", "out"],
    ["distill", "eval", "set.safetensors", "--epochs", "1"],
    ["cram", "--corpus", "corpus.txt", "--budget", "2steps", "--out", "out"],
    ["glue", "model", "--tasks", "rte", "--out", "out"],
    ["eval-lm", "model", "--evals", "mlm_loss", "--out", "out"],
    ["train", "--task", "digits", "--out", "run", "--budget", "-5m", "--overwrite"],
    ["report", "r.json", "--out", "out"],
    ["list", "methods", "--suite", "vision"],
    ["demo", "--out", "out", "--seeds", "1"],
]


def _word(draw: Any, known: list[str]) -> str:
    pick = draw(st.integers(0, 9))
    if pick < 4:
        return draw(st.sampled_from(known))
    return draw(st.sampled_from(WORDS)) if pick < 8 else draw(random_words)


@st.composite
def free_argv(draw: Any) -> list[str]:
    """A command (or garbage), maybe a suite, then flags and words in any order."""
    command = draw(st.sampled_from(COMMANDS) | random_words)
    args = [command] if draw(st.integers(0, 9)) else []
    if command == "bench":
        args.append(draw(st.sampled_from(SUITES) | random_words))
    known = flags(command) if command in COMMANDS else flags("")
    for _ in range(draw(st.integers(0, 6))):
        args.append(_word(draw, known))
    return args


@st.composite
def edited_argv(draw: Any) -> list[str]:
    """A working command line with a few tokens replaced, dropped, added or repeated."""
    args = list(draw(st.sampled_from(TEMPLATES)))
    known = flags(args[0])
    for _ in range(draw(st.integers(1, 3))):
        op, i = draw(st.integers(0, 3)), draw(st.integers(0, len(args)))
        if op == 0 and i < len(args):
            args[i] = _word(draw, known)
        elif op == 1 and i < len(args):
            del args[i]
        elif op == 2:
            args.insert(i, _word(draw, known))
        elif i < len(args):
            args.insert(i, args[i])
    return args


def argv() -> st.SearchStrategy[list[str]]:
    return free_argv() | edited_argv()


@contextlib.contextmanager
def _no_work() -> Iterator[None]:
    """The functions that start work replace by `_reached`, in their modules and wherever a
    module holds them by name (every command module is imported first, so none binds the
    stand-in for good), and put back after."""
    import importlib
    import sys

    from hasten.cli import COMMANDS

    for command_module in set(COMMANDS.values()):
        importlib.import_module(f"hasten.cli.{command_module}")
    originals = [getattr(importlib.import_module(m), name) for m, name in WORK]
    saved = []
    for module in [m for n, m in list(sys.modules.items()) if n.startswith("hasten")]:
        for name, value in list(vars(module).items()):
            if any(value is original for original in originals):
                saved.append((module, name, value))
                setattr(module, name, _reached)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@reader("cli-arguments", argv())
def check_cli(tmp: Path, args: list[str]) -> str:
    from hasten.cli import main

    (tmp / "file").write_text("x")
    (tmp / "c.toml").write_text('budget = "2steps"\n[train]\nseed = 1\n')
    (tmp / "c.json").write_text('{"budget": [1]}')
    (tmp / "corpus.txt").write_text("A few words.\n\nAnd a second paragraph.\n")
    (tmp / "r.json").write_text('{"suite": "s", "runs": []}')
    (tmp / "set.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (tmp / "model").mkdir()  # a model folder with damaged weights
    (tmp / "model" / "config.json").write_text('{"model_type": "bert"}')
    (tmp / "model" / "model.safetensors").write_bytes(b"\xff" * 64)
    (tmp / "run").mkdir()  # a finished run of someone else's
    (tmp / "run" / "result.json").write_text("{}")
    before = _tree(tmp)
    err, out = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(tmp)
    try:
        with _no_work(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), \
                hang_guard():
            code = main(list(args))
    except Reached:
        return "ok"
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise PropertyFailure(f"SystemExit({exit_.code}): {err.getvalue()[-300:]!r}") \
                from None
        return "ok"
    except HastenError as e:
        raise PropertyFailure(f"main raised {type(e).__name__} instead of exiting 2: {e}") \
            from None
    except PropertyFailure:
        raise
    except BaseException as e:  # noqa: B036 - every other ending is the failure looked for
        raise PropertyFailure(f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from e
    finally:
        os.chdir(here)
    text = err.getvalue()
    if code == 2:
        lines = text.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("hasten: error: "):
            raise PropertyFailure(f"exit 2 with stderr {text[-400:]!r}")
        new = _tree(tmp) - before
        if new:
            raise PropertyFailure(f"refused, but wrote {sorted(new)[:5]}")
        return "error"
    if code != 0:
        raise PropertyFailure(f"exit {code} with stderr {text[-400:]!r}")
    return "ok"
