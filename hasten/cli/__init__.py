"""The `hasten` command line: one module per command, each thin (parse, call, print).

    hasten demo                          quick vision suite on embedded data, table + report
    hasten bench SUITE [--quick] ...     run a suite; write result.json, report.md, curves.png
    hasten report FILE... [--out DIR]    render (and join) results files
    hasten train --task T --out DIR ...  one training run (resumable; works under torchrun)
    hasten prune --data D --keep F --scorer S --out DIR    score examples, keep a subset
    hasten distill --data D --method dm --ipc 10 --out DIR  distil a dataset (or `eval FILE`)
    hasten cram --corpus PATH... --budget 30m --out DIR    budgeted BERT pretraining + export
    hasten glue MODEL_DIR [--out DIR]    GLUE-small fine-tuning (CoLA, SST-2, MRPC, STS-B, RTE)
    hasten eval-lm MODEL_DIR [--out DIR] BLiMP, linear probes and held-out MLM loss of a model
    hasten bench stack --task T ...      the lever stack's plan (choices once, parts, verdict)
    hasten bench chaos [--kills N] ...   kill a run at random moments, resume, compare
    hasten list [WHAT]                   commands, suites, tasks, methods, scorers, ...

Every command takes `--config FILE.toml` and `--set KEY=VALUE` (flags win over both, `--set`
over the file) and writes the resolved settings to `config.json` in the folder it writes.
Exit codes: 0 done; 2 a problem with the input (one line, `hasten: error: ...`); 3 a run
stopped on a non-finite loss; 143 stopped by SIGTERM, 130 by SIGINT (one line saying what
was kept and how to continue).

A command module has `NAME`, `HELP`, `add_parser(subparsers)` (its flags, generated from its
settings dataclass) and `run(args) -> int`; adding a command is one module and one entry
in `COMMANDS`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from hasten import __version__
from hasten.cli import common
from hasten.cli.common import Parser, stop_line
from hasten.core import stop
from hasten.core.errors import ConfigError, HastenError
from hasten.core.eval_plan import count_wall_from, process_start

# command -> its module in hasten.cli
COMMANDS = {"demo": "demo", "bench": "bench", "report": "report", "train": "train",
            "prune": "prune", "distill": "distill", "cram": "cram", "glue": "glue",
            "eval-lm": "eval_lm", "tune": "tune", "list": "listing"}


def build_parser(argv: Sequence[str] = ()) -> Parser:
    """The `hasten` parser. `argv` lets a command shape its flags by what follows it
    (`hasten bench mt --help` lists the mt suite's own options)."""
    parser = Parser(prog="hasten", description="Reach a target quality with less compute, "
                                               "and prove it on your own data.")
    parser.add_argument("--version", action="version", version=f"hasten {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=Parser)
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, module_name in COMMANDS.items():
        if chosen is not None and chosen != name:
            continue  # only the command in use is imported (and its dependencies)
        module = importlib.import_module(f"hasten.cli.{module_name}")
        if chosen == name:  # the command in use gets its flags; without one, a help line each
            module.add_parser(sub, list(argv))
        else:
            sub.add_parser(name, help=module.HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code (see the module docstring)."""
    if argv is None:  # a command: its wall limit counts from the process start
        count_wall_from(process_start())
    argv = list(sys.argv[1:] if argv is None else argv)
    common.ARGV[:] = argv
    try:
        with stop.watch():
            args, extras = build_parser(argv).parse_known_args(argv)
            if extras:
                raise ConfigError(_unknown(args, extras))
            return int(args.run(args))
    except HastenError as err:
        print(f"hasten: error: {one_line(str(err))}", file=sys.stderr)
        return err.exit_code
    except stop.Stopped as err:
        print(stop_line(err), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(stop_line(stop.Stopped("sigint")), file=sys.stderr)
        return stop.EXIT_CODES["sigint"]


def one_line(text: str) -> str:
    """`text` with every character that would break or hide a line (newlines, carriage
    returns, other control and separator characters, e.g. from an argument) escaped."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def _unknown(args: object, extras: list[str]) -> str:
    """The error for flags a command does not have (a command may say where they belong)."""
    command = getattr(args, "command", "")
    module = importlib.import_module(f"hasten.cli.{COMMANDS[command]}")
    hint = getattr(module, "unknown_hint", None)
    message = hint(args, extras) if hint is not None else None
    return message or (f"unrecognized arguments: {' '.join(extras)} (see `hasten {command} "
                       "--help`)")
