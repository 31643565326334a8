"""The layout rules, checked on the source: no module over 500 lines, no function over 80
lines (tests excluded), and the folders are floors:

    core        hasten/core/ (budget, schedules, trainer and its loop, state, resume,
                checkpoint, distributed, guards, stop, lock, runlog, target, flops, config,
                errors, sampling, recipes and tasks, paths)
      -> methods   hasten/data, models, text, select, steps, distill, levers, pretrain
      -> harness   hasten/bench, integrations, tuning
      -> cli       hasten/cli, hasten/__main__

A module may import from its own floor or any floor below it, never above, and the imports
form no cycle. Every import counts, those inside functions too: an import is deferred (written
inside a function) only for an optional dependency, named in OPTIONAL below, so no deferred
import can hide a cycle. The package's `__init__` (a namespace that loads its names on first
use) and `hasten._moved` (old paths of moved modules, resolved by name at import time) are the
two places that name modules of every floor."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hasten"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

# the folders of each floor (a module's floor is its first folder under hasten/)
FLOORS = {
    "core": (0, {"core", "_moved"}),
    "methods": (1, {"data", "models", "text", "select", "steps", "distill", "levers",
                    "pretrain"}),
    "harness": (2, {"bench", "integrations", "tuning"}),
    "cli": (3, {"cli", "__main__"}),
}
# third-party packages a module may import inside a function: the optional extras (the HF and
# Lightning adapters, plots, TensorBoard) and the heavy packages one task or scorer needs
# (each adds 1-2.5 s to a command's start-up on this machine)
OPTIONAL = {"transformers", "pytorch_lightning", "lightning", "accelerate", "matplotlib",
            "tensorboard", "torch.utils.tensorboard", "sklearn", "scipy", "datasets",
            "mnist1d", "datasketch", "sacrebleu"}
EXEMPT = {"hasten", "hasten._moved"}  # see the module docstring


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def floor(module: str) -> int:
    """The floor of a hasten module; a module in no floor's folder fails the test."""
    parts = module.split(".")
    if len(parts) == 1:  # the package itself
        return 0
    for level, folders in FLOORS.values():
        if parts[1] in folders:
            return level
    raise AssertionError(f"hasten.{parts[1]} is in no floor's folder: add it to "
                         "FLOORS in tests/test_layout.py")


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py")
                  if ".venv" not in p.parts)


def _base(node: ast.ImportFrom, path: Path) -> str:
    base = node.module or ""
    if node.level:
        package = module_name(path) if path.name == "__init__.py" else \
            module_name(path).rpartition(".")[0]
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
    return base


def imports(path: Path) -> set[str]:
    """The hasten modules `path` imports anywhere (the longest module name that exists)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hasten")}
        elif isinstance(node, ast.ImportFrom):
            base = _base(node, path)
            if base.startswith("hasten"):
                subs = {f"{base}.{a.name}" for a in node.names}
                found |= {m for m in subs if _exists(m)}
                if not all(_exists(m) for m in subs):  # a name defined in `base` itself
                    found.add(base)
    return {m for m in found if _exists(m)}


def deferred_imports(path: Path) -> list[str]:
    """Imports written inside a function that are not of an OPTIONAL package."""
    out = []
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [_base(node, path)] if isinstance(node, ast.ImportFrom) else [])
            out += [f"{module_name(path)}:{node.lineno} {n}" for n in names
                    if n.split(".")[0] not in OPTIONAL and n not in OPTIONAL]
    return out


def _exists(module: str) -> bool:
    path = ROOT / module.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                out.append(f"{where}:{node.lineno} {node.name} ({length} lines)")
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) - {module_name(p)} for p in sources("hasten")
            if module_name(p) not in EXEMPT}


def cycles(edges: dict[str, set[str]]) -> list[str]:
    """Every cycle a depth-first walk meets, as 'a -> b -> a'."""
    found: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    # a package importing its own submodules (hasten.distill -> hasten.distill.dm) is how
    # packages re-export; only cycles through two different modules count
    return [c for c in found if not _package_and_child(c)]


def _package_and_child(cycle: str) -> bool:
    nodes = cycle.split(" -> ")
    return len(set(nodes)) == 2 and any(a != b and b.startswith(a + ".")
                                        for a in nodes for b in nodes)


def test_no_module_over_500_lines():
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for p in sources("hasten")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not long, "modules over 500 lines: " + ", ".join(long)


def test_no_function_over_80_lines():
    long = [f for p in sources("hasten", "scripts", "examples") for f in long_functions(p)]
    assert not long, "functions over 80 lines: " + ", ".join(long)


def test_every_module_is_in_a_floor_folder():
    for path in sources("hasten"):
        floor(module_name(path))


def test_no_import_runs_up_a_floor():
    upward = [f"{mine} -> {target}" for mine, targets in graph().items()
              for target in targets if floor(target) > floor(mine)]
    assert not upward, "imports up a floor: " + ", ".join(sorted(upward))


def test_no_import_cycle_deferred_imports_included():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(found)


def test_imports_are_deferred_only_for_optional_dependencies():
    deferred = [d for p in sources("hasten") if module_name(p) not in EXEMPT
                for d in deferred_imports(p)]
    assert not deferred, ("imports inside functions (only OPTIONAL packages may be): "
                          + ", ".join(deferred))


def test_the_rules_catch_what_they_name(tmp_path):
    """The checker itself: a long function, the floors, an unknown folder, a cycle and a
    deferred import are seen."""
    sample = tmp_path / "sample.py"
    sample.write_text("def short():\n    import json\n    import matplotlib\n    return 1\n\n\n"
                      "def long():\n" + "    x = 1\n" * 90)
    assert [f.split(" ", 1)[1] for f in long_functions(sample)] == ["long (91 lines)"]
    assert floor("hasten.cli.bench") > floor("hasten.bench.harness") > floor(
        "hasten.select.prune") > floor("hasten.core.trainer") == floor("hasten")
    with pytest.raises(AssertionError, match="in no floor's folder"):
        floor("hasten.somewhere_new")
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a -> b -> c -> a"]
    fake = PACKAGE / "core" / "sample_for_layout_test.py"
    assert [d.split(" ")[1] for d in deferred_imports(_copy(sample, fake))] == ["json"]


def _copy(src: Path, dst: Path) -> Path:
    """`src` checked as if it sat at `dst` (read only: nothing is written under hasten/)."""
    class Placed(type(dst)):  # a path that reads `src` but is named `dst`
        def read_text(self, *a, **k):
            return src.read_text(*a, **k)
    return Placed(dst)
