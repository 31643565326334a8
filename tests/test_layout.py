"""The layout rules, checked on the source: no module over 500 lines, no function over 80
lines (tests excluded), no import cycle, and no import running back up a floor:

    core (budget, schedules, trainer, checkpoint, config, errors, atomic, distributed,
          runlog, flops, target, stop)
      -> data / models / methods (data, models, text, objectives, select, steps, distill,
          lmeval, and the library entry points cram and glue)
      -> bench, integrations
      -> cli (and __main__)

A module may import from its own floor or any floor below it, never above (the package's
`__init__`, a namespace gathering names from every floor, is the one exception). Cycles are
checked on imports that run when a module is imported (top level); an import inside a
function runs later and cannot deadlock, but it still may not run up a floor."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hasten"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

CORE = {"budget", "schedules", "trainer", "checkpoint", "config", "errors", "atomic",
        "distributed", "runlog", "flops", "target", "stop", "guards", "evaluation", "lock",
        "sampling", "train_state", "train_loop", "resume"}
METHODS = {"data", "models", "text", "objectives", "select", "steps", "distill", "lmeval",
           "cram", "glue"}
HARNESS = {"bench", "integrations"}
TOP = {"cli", "__main__"}
FLOORS = {"core": 0, "methods": 1, "bench": 2, "cli": 3}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def floor(module: str) -> int:
    """The floor of a hasten module; a module no floor names fails the test."""
    parts = module.split(".")
    if len(parts) == 1:  # the package itself
        return 0
    head = parts[1]
    for name, members in (("core", CORE), ("methods", METHODS), ("bench", HARNESS),
                          ("cli", TOP)):
        if head in members:
            return FLOORS[name]
    raise AssertionError(f"hasten.{head} belongs to no floor: add it to tests/test_layout.py")


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py")
                  if ".venv" not in p.parts)


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The hasten modules `path` imports (the longest module name that exists)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # `if TYPE_CHECKING:` blocks never run
        nodes = [n for n in nodes if not (isinstance(n, ast.If) and "TYPE_CHECKING" in
                                          ast.unparse(n.test))]
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else \
        module_name(path).rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hasten")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if base.startswith("hasten"):
                subs = {f"{base}.{a.name}" for a in node.names}
                found |= {m for m in subs if _exists(m)}
                if not all(_exists(m) for m in subs):  # a name defined in `base` itself
                    found.add(base)
    return {m for m in found if _exists(m)}


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


def test_no_module_over_500_lines():
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for p in sources("hasten")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not long, "modules over 500 lines: " + ", ".join(long)


def test_no_function_over_80_lines():
    long = [f for p in sources("hasten", "scripts", "examples") for f in long_functions(p)]
    assert not long, "functions over 80 lines: " + ", ".join(long)


def test_no_import_runs_up_a_floor():
    upward = []
    for path in sources("hasten"):
        mine = module_name(path)
        if mine == "hasten":  # the package's own namespace may gather names from any floor
            continue
        for target in imports(path, top_level_only=False):
            if floor(target) > floor(mine):
                upward.append(f"{mine} -> {target}")
    assert not upward, "imports up a floor: " + ", ".join(sorted(upward))


def test_no_import_cycle():
    graph = {module_name(p): imports(p, top_level_only=True) for p in sources("hasten")}
    cycles: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package importing its own submodules (hasten.distill -> hasten.distill.dm) is how
    # packages re-export; only cycles through two different modules count
    real = [c for c in cycles if not _package_and_child(c)]
    assert not real, "import cycles: " + "; ".join(real)


def _package_and_child(cycle: str) -> bool:
    nodes = cycle.split(" -> ")
    return len(set(nodes)) == 2 and any(a != b and b.startswith(a + ".")
                                        for a in nodes for b in nodes)


def test_the_rules_catch_what_they_name(tmp_path):
    """The checker itself: a long function, the floors and an unknown module are seen."""
    sample = tmp_path / "sample.py"
    sample.write_text("def short():\n    return 1\n\n\ndef long():\n" + "    x = 1\n" * 90)
    assert [f.split(" ", 1)[1] for f in long_functions(sample)] == ["long (91 lines)"]
    assert floor("hasten.cli.bench") > floor("hasten.bench.harness") > floor(
        "hasten.select.prune") > floor("hasten.trainer") == floor("hasten")
    with pytest.raises(AssertionError, match="belongs to no floor"):
        floor("hasten.somewhere_new")
