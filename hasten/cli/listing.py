"""`hasten list [WHAT]`: what hasten knows, one line each, read from its registries:
commands, suites, tasks (and installed ones), methods (and where each applies), scorers,
selectors, distillation methods, pretraining recipes and objectives."""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Callable, Iterable
from typing import Any

from hasten.bench.harness import METHODS, SUITES, TASKS, applies, lookup, suite_tasks
from hasten.bench.own import installed_tasks
from hasten.bench.suites import load_suites
from hasten.cli import COMMANDS
from hasten.cli.distill import BASELINES
from hasten.core.config import defaults
from hasten.distill.methods import METHODS as DISTILLERS
from hasten.levers import LEVERS
from hasten.pretrain.objectives import available
from hasten.pretrain.objectives.recipes import RECIPES
from hasten.select import text as text_scores
from hasten.select.prune import SELECT_METHODS, TEXT_SCORERS, classification_scorers
from hasten.select.scorers import SCORERS
from hasten.select.selectors import SELECTORS

NAME = "list"
HELP = "list commands, suites, tasks, methods, scorers, selectors, distillers, recipes"
WHAT = ("commands", "suites", "tasks", "methods", "levers", "scorers", "selectors", "distillers",
        "recipes")


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help=HELP, description=__doc__)
    p.add_argument("what", nargs="?", choices=WHAT, help="one kind (default: all)")
    p.add_argument("--suite", help="methods and tasks: only those of this suite")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    load_suites(everything=True)
    kinds = [args.what] if args.what else list(WHAT)
    for kind in kinds:
        lines = list(SECTIONS[kind](args.suite))
        if len(kinds) > 1:
            print(f"{kind}:")
        width = max((len(name) for name, _ in lines), default=0)
        for name, text in lines:
            print(f"  {name:<{width}}  {text}" if len(kinds) > 1 else f"{name:<{width}}  {text}")
    return 0


UNDESCRIBED = "(no description: its function has no docstring)"


def plural(n: int, noun: str) -> str:
    """`1 method`, `2 methods`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _doc(obj: Any) -> str:
    text = inspect.getdoc(obj) or ""
    return " ".join(text.split("\n\n")[0].split())


def _suite_of(suite: str | None) -> Any:
    return lookup("suite", SUITES, suite) if suite else None


def _commands(_: str | None) -> Iterable[tuple[str, str]]:
    for name, module in COMMANDS.items():
        yield name, importlib.import_module(f"hasten.cli.{module}").HELP


def _suites(_: str | None) -> Iterable[tuple[str, str]]:
    for s in SUITES.values():
        options = f"; options: {', '.join(s.options.__dataclass_fields__)}" if s.options else ""
        rows = "row" if s.own_rows is not None else "method"
        yield s.name, f"{s.description} ({plural(len(s.methods), rows)}{options})"


def _tasks(suite: str | None) -> Iterable[tuple[str, str]]:
    chosen = _suite_of(suite)
    used: dict[str, list[str]] = {}
    for s in SUITES.values():
        for t in (suite_tasks(s, _default_options(s))):
            used.setdefault(t, []).append(s.name)
    for name, fn in TASKS.items():
        if chosen is not None and chosen.name not in used.get(name, []):
            continue
        where = f" [suite {', '.join(used[name])}]" if name in used else ""
        yield name, (_doc(fn) or UNDESCRIBED) + where
    if chosen is None:
        for name, target in installed_tasks().items():
            yield name, f"installed ({target})"


def _default_options(suite: Any) -> Any:
    return suite.options() if suite.options is not None else None


def _levers(_: str | None) -> Iterable[tuple[str, str]]:
    """Each lever: what it does, its settings with their defaults, what it needs."""
    for name, cls in LEVERS.items():
        settings = ""
        if cls.Settings is not None:
            values = defaults(cls.Settings)
            settings = " [" + ", ".join(f"{k}={v}" for k, v in values.items()) + "]"
        needs = f"; needs {', '.join(cls.needs)}" if cls.needs else ""
        yield name, f"{_doc(cls)}{settings} ({cls.kind} lever{needs})"


def _methods(suite: str | None) -> Iterable[tuple[str, str]]:
    chosen = _suite_of(suite)
    for name, fn in METHODS.items():
        where = [s.name for s in SUITES.values() if s.run is None
                 and all(applies(name, t) for t in suite_tasks(s, _default_options(s)))]
        if chosen is not None and chosen.name not in where:
            continue
        scope = "every task" if all(
            applies(name, t) for s in SUITES.values()
            for t in suite_tasks(s, _default_options(s))) else f"suites {', '.join(where)}"
        yield name, f"{_doc(fn) or UNDESCRIBED} [{scope}]"


def _scorers(_: str | None) -> Iterable[tuple[str, str]]:
    for name in classification_scorers():
        yield name, _doc(SCORERS[name]) or "a classification scorer"
    functions: dict[str, Callable[..., Any]] = {
        "tokens-per-char": text_scores.tokens_per_char, "length": text_scores.length,
        "rarity": text_scores.unigram_rarity}
    for name in TEXT_SCORERS:
        yield name, f"text: {_doc(functions[name])}"


def _selectors(_: str | None) -> Iterable[tuple[str, str]]:
    own = {"balanced": "hardest, each class keeping its share",
           "random": "a uniform random subset (seeded)"}
    for name in SELECT_METHODS:
        yield name, own.get(name) or _doc(SELECTORS[name])


def _distillers(_: str | None) -> Iterable[tuple[str, str]]:
    for name, cls in DISTILLERS.items():
        text = _doc(sys.modules[cls.__module__]).split(". ")[0] or UNDESCRIBED
        if name == "dsa":  # DC's module, with the augmentation on
            text = "DSA: DC with differentiable Siamese augmentation (Zhao & Bilen, ICML 2021)."
        yield name, text
    for name in BASELINES:
        yield name, "coreset baseline (no budget)"


def _recipes(_: str | None) -> Iterable[tuple[str, str]]:
    for name, recipe_class in RECIPES.items():
        recipe = recipe_class()
        yield name, (f"pretraining recipe: {recipe.arch} encoder, "
                     f"{recipe.hidden} hidden x {recipe.layers} layers")
    for name in available():
        yield f"objective {name}", "a pretraining objective (hasten cram --objective)"


SECTIONS: dict[str, Callable[[str | None], Iterable[tuple[str, str]]]] = {
    "commands": _commands, "suites": _suites, "tasks": _tasks, "methods": _methods,
    "levers": _levers,
    "scorers": _scorers, "selectors": _selectors, "distillers": _distillers, "recipes": _recipes}
