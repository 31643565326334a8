"""Numbers on a page tied to the records they come from, and recomputed from them.

A figure on the results page carries an anchor, an HTML comment right after it that says
where it comes from; the rendered page shows only the number:

    92.40<!-- =summary/fashion-mnist/baseline/final -->

The record is the section's (a line `<!-- record: FILE.json -->` names it for what follows,
until the next such line) or named in the anchor (`<!-- =FILE.json:PATH -->`, or for one path
of an expression, `{FILE.json:PATH}`, say a difference between two records). A PATH walks
the record: keys separated by `/` (a key holding `/` or spaces in double quotes), list items
picked by their fields (`runs[method=baseline,seed=0]`, or by position, `rows[2]`). Its first
key may also be `summary` (`hasten.bench.report.summarize` of the record: medians over
seeds of `final`, `final_min`, `final_max`, `relative_time`, `relative_work/flops`,
`extra/LABEL`, `train_seconds`, ...) or `decision` (`hasten.bench.evidence.decisions`,
by method, work counted in examples backpropagated; `decision_flops` in FLOPs):
`decision/infobatch@0.7/vs_baseline/interval/low` (and `.../run_time_ratio/mean`, whole
runs' time over the rival's); or `paired` (any two methods' final
metrics, paired by seed: `paired/hasten/hf-linear/low`, fields mean, low, high, n); or
`ladder` (a pretraining ladder's held-out loss at ROWS held-out rows, by the plan's rule in
`hasten.bench.ladder_verdicts`: `ladder/4096/4e13/original-data/d`, fields mean and n of the
row's seeds, and, against crammed at that rung, d, low, high, floor). A path
that picks several values (a filter matching several runs) gives a list, for a function to
reduce. An anchor may be an expression over paths in braces, numbers, + - * / and the
functions `median`, `mean`, `min`, `max`, `abs`, `len`: `<!-- ={a/b} - {c/d} -->`,
`<!-- =100 * {x} -->`. The rounding is the number's own: the value must round to the digits
shown.

`check_page(text, load)` lists every problem: a figure without an anchor (a number with a
decimal point or a thousands separator in prose, every number in a table's body past its
first column; code, headings, comments, link targets, versions and dates aside), an anchor
whose path is missing, and a value that does not round to the figure shown. `<!-- set -->`
after a figure says it is a setting or a quoted figure (a paper's), not a measurement.

Where it is used: tests/test_results_page.py checks docs/benchmarks.md and
docs/what-pays-off.md with it (the README holds no measured figure); docs/benchmarks.md,
"How to read these figures", explains the anchors.
"""

from __future__ import annotations

import ast
import math
import re
import statistics
from collections.abc import Callable, Mapping
from typing import Any

from hasten.bench import ladder_verdicts
from hasten.bench.evidence import DATA_WORK, STEP_WORK, compare, decisions
from hasten.bench.report import summarize

ANCHOR = re.compile(r"<!--\s*(=|set\b)(.*?)-->", re.S)
RECORD_LINE = re.compile(r"^<!--\s*record:\s*(\S+)\s*-->\s*$")
NAMED = re.compile(r"^([\w.-]+\.json):(.*)$", re.S)  # FILE.json:PATH
# a number as pages write it: sign, thousands separators, decimals
NUMBER = re.compile(r"(?<![\w.@/])(?<![A-WYZa-wyz]-)"
                    r"([+\-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[+\-−]?\d+(?:\.\d+)?)"
                    r"(?=x\b|[^\w@/]|$)(?!\.\d|-[A-Za-z]|:\d)")
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "median": lambda xs: statistics.median(xs), "mean": lambda xs: statistics.fmean(xs),
    "min": min, "max": max, "abs": abs, "len": len}


class AnchorError(ValueError):
    """An anchor that cannot be resolved (its message says why)."""


# --- paths -----------------------------------------------------------------------------------


def split_path(path: str) -> list[str]:
    """`a/"b/c"/d[x=1]` -> ["a", "b/c", "d[x=1]"] (slashes inside quotes or brackets kept)."""
    parts, cur, quote, depth = [], "", False, 0
    for ch in path.strip():
        if ch == '"':
            quote = not quote
            continue
        if not quote and ch == "[":
            depth += 1
        elif not quote and ch == "]":
            depth -= 1
        if ch == "/" and not quote and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return [p for p in parts if p != ""]


def _pick(value: Any, key: str, where: str) -> Any:
    name, _, selector = key.partition("[")
    if name:
        if not isinstance(value, Mapping) or name not in value:
            raise AnchorError(f"{where}: no key {name!r}")
        value = value[name]
    if not selector:
        return value
    selector = selector.rstrip("]")
    if not isinstance(value, list):
        raise AnchorError(f"{where}: {name!r} is not a list")
    if selector.lstrip("-").isdigit():
        return value[int(selector)]
    wanted = dict(part.split("=", 1) for part in selector.split(","))
    found = [item for item in value if isinstance(item, Mapping)
             and all(str(item.get(k)) == v for k, v in wanted.items())]
    if not found:
        raise AnchorError(f"{where}: no item with {selector}")
    return found[0] if len(found) == 1 else found


def resolve(record: Mapping[str, Any], path: str) -> Any:
    """The value at `path` in `record` (see the module docstring)."""
    parts = split_path(path)
    if not parts:
        raise AnchorError("an empty path")
    if parts[0] == "summary":
        value: Any = summarize(record)
        parts = parts[1:]
    elif parts[0] in ("decision", "decision_flops"):
        counter = DATA_WORK if parts[0] == "decision" else STEP_WORK
        value = {row["method"]: row for row in decisions(record, counter)}
        value = {m: {**row, "vs_baseline": _interval(row["vs_baseline"]),
                     "vs_plain": _interval(row["vs_plain"])} for m, row in value.items()}
        parts = parts[1:]
    elif parts[0] == "paired":
        value, parts = _paired(record, parts[1:])
    elif parts[0] == "ladder":
        value, parts = _ladder(record, parts[1:])
    else:
        value = record
    for i, key in enumerate(parts):
        where = "/".join(parts[:i + 1])
        if isinstance(value, list) and not key.startswith("["):  # a key of each item
            value = [_pick(v, key, where) for v in value]
        else:
            value = _pick(value, key, where)
    return value


def _paired(record: Mapping[str, Any], parts: list[str]) -> tuple[Any, list[str]]:
    """`LEVER/AGAINST/...`: the paired 95% interval of LEVER's final metric minus AGAINST's
    (`hasten.bench.evidence.compare`), and the rest of the path."""
    if len(parts) < 2:
        raise AnchorError("paired needs paired/METHOD/AGAINST/FIELD")
    row = compare(record.get("runs") or [], parts[0], parts[1], 0.0, DATA_WORK)
    if row is None:
        raise AnchorError(f"paired: fewer than two seeds with both {parts[0]} and {parts[1]}")
    return _interval(row)["interval"], parts[2:]


def _ladder(record: Mapping[str, Any], parts: list[str]) -> tuple[Any, list[str]]:
    """`ROWS/RUNG/ROW/...`: the row's held-out loss at ROWS rows over its seeds (mean, n) and,
    where crammed ran at that rung, the plan's comparison with it (d, low, high, floor)."""
    if len(parts) < 3 or not parts[0].isdigit():
        raise AnchorError("ladder needs ladder/ROWS/RUNG/ROW/FIELD")
    how = {"loss_rows": int(parts[0])}
    runs = record.get("runs") or []
    try:
        rung = float(parts[1])
    except ValueError:
        raise AnchorError(f"ladder: rung {parts[1]!r} is not a FLOP count") from None
    values = ladder_verdicts.values_by_row(runs, "mlm_loss_15", **how)
    seeds = values.get((rung, parts[2]))
    if not seeds:
        raise AnchorError(f"ladder: no {parts[2]} at {parts[1]} with a loss at {parts[0]} rows")
    out: dict[str, Any] = {"mean": statistics.fmean(seeds), "n": len(seeds)}
    for v in ladder_verdicts.verdicts(runs, **how):
        if v["row"] == parts[2] and v["rung"] == rung:
            out.update(d=v["d"], low=v["low"], high=v["high"], floor=v["floor"])
    return out, parts[3:]


def _interval(row: Mapping[str, Any] | None) -> Any:
    if row is None:
        return None
    def fields(i: Any) -> Any:
        return None if i is None else {"mean": i.mean, "low": i.low, "high": i.high, "n": i.n}
    return {**row, "interval": fields(row["interval"]),
            "run_time_ratio": fields(row.get("run_time_ratio"))}


# --- expressions ---------------------------------------------------------------------------


def evaluate(record: Mapping[str, Any], expression: str,
             load: Callable[[str], Mapping[str, Any]] | None = None) -> float:
    """A number from an anchor's expression (one path, or paths in braces with arithmetic);
    with `load`, a path in braces may name its own record: `{FILE.json:PATH}`."""
    refs: dict[str, Any] = {}

    def ref(match: re.Match[str]) -> str:
        name = f"_r{len(refs)}"
        source, path = record, match.group(1)
        if load is not None and (own := NAMED.match(path.strip())) is not None:
            source, path = load(own.group(1)), own.group(2)
        refs[name] = resolve(source, path)
        return name

    text = expression.strip()
    if "{" not in text:
        text = "{" + text + "}"
    source = re.sub(r"\{([^{}]*)\}", ref, text)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        raise AnchorError(f"cannot read the expression {expression!r}") from err
    value = _eval(tree.body, refs)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnchorError(f"{expression!r} gives {value!r}, not a number")
    return float(value)


def _eval(node: ast.AST, refs: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name) and node.id in refs:
        return refs[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand, refs)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult,
                                                            ast.Div)):
        a, b = _eval(node.left, refs), _eval(node.right, refs)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        return a * b if isinstance(node.op, ast.Mult) else a / b
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id in FUNCTIONS and len(node.args) == 1:
        arg = _eval(node.args[0], refs)
        values = [float(v) for v in arg] if isinstance(arg, list) else arg
        return FUNCTIONS[node.func.id](values)
    raise AnchorError(f"not allowed in an anchor: {ast.dump(node)[:60]}")


# --- the page ------------------------------------------------------------------------------


def figure_value(text: str) -> tuple[float, int]:
    """The number a figure shows and its decimals: "+1,200.50" -> (1200.5, 2)."""
    clean = text.replace(",", "").replace("−", "-")
    decimals = len(clean.split(".", 1)[1]) if "." in clean else 0
    return float(clean), decimals


def rounds_to(value: float, shown: float, decimals: int) -> bool:
    """Whether `value` rounded to `decimals` gives `shown` (ties either way)."""
    return math.isfinite(value) and abs(value - shown) <= 0.5 * 10 ** -decimals + 1e-9


def _blank(text: str) -> str:
    """`text` with code spans, link targets and bare HTML comments (not anchors) blanked
    out, same length, so figure positions stay put."""
    def spaces(m: re.Match[str]) -> str:
        return " " * len(m.group(0))
    text = re.sub(r"`[^`]*`", spaces, text)
    text = re.sub(r"\]\([^)]*\)", spaces, text)
    text = re.sub(r"\b\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?", spaces, text)
    text = re.sub(r"\b\d{1,2}:\d{2}(?:-\d{1,2}:\d{2})?\b", spaces, text)
    text = re.sub(r"\b\d+\.\d+\.\d+\S*", spaces, text)  # versions
    return text


def figures(line: str, in_table: bool) -> list[tuple[int, int, str]]:
    """The figures of a line that need an anchor: (start, end, text)."""
    masked = _blank(line)
    # comments (anchors among them) are taken out, not blanked, so that the figures read as
    # the page shows them: "85.82<!-- =a -->-85.88" is a range, not a negative number;
    # `origin` maps each kept character back to its place in the line
    origin = [i for i, _ in enumerate(masked)]
    for m in reversed(list(re.finditer(r"<!--.*?-->", masked, re.S))):
        masked = masked[:m.start()] + masked[m.end():]
        del origin[m.start():m.end()]
    origin.append(len(line))
    first_cell_end = -1
    if in_table:
        first_cell_end = line.find("|", line.find("|") + 1)
    out = []
    for m in NUMBER.finditer(masked):
        text = m.group(1)
        start, end = origin[m.start(1)], origin[m.end(1) - 1] + 1
        if (start > first_cell_end) if in_table else ("." in text or "," in text):
            out.append((start, end, text))
    return out


def _anchor_after(line: str, end: int) -> re.Match[str] | None:
    """The anchor that follows a figure: after at most a unit or closing mark ("x", "%",
    " s", ")") and before any other figure."""
    m = re.compile(r"[^\d<|]{0,12}?(<!--\s*(?:=|set\b).*?-->)").match(line, end)
    return ANCHOR.match(line, m.start(1)) if m else None


def check_page(text: str, load: Callable[[str], Mapping[str, Any]]) -> list[str]:
    """Every problem with a page's figures (empty when each has an anchor that recomputes
    it from its record). `load(name)` returns the record of a results file name."""
    problems, current, in_code = [], None, False
    lines = text.splitlines()
    separator = re.compile(r"^\s*\|[\s:|-]+\|\s*$")
    headers = {i - 1 for i, line in enumerate(lines) if separator.match(line)}
    for number, line in enumerate(lines, 1):
        if number - 1 in headers:
            continue
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code or line.startswith("    ") or line.lstrip().startswith("#"):
            continue
        if (m := RECORD_LINE.match(line.strip())) is not None:
            current = m.group(1)
            continue
        in_table = line.lstrip().startswith("|") and not separator.match(line)
        for _start, end, shown in figures(line, in_table):
            where = f"line {number}: {shown}"
            anchor = _anchor_after(line, end)
            if anchor is None:
                problems.append(f"{where}: no anchor")
                continue
            if anchor.group(1) != "=":
                continue
            problems += _check_anchor(anchor.group(2).strip(), shown, current, load, where)
    return problems


def _check_anchor(body: str, shown: str, current: str | None,
                  load: Callable[[str], Mapping[str, Any]], where: str) -> list[str]:
    name, expression = current, body
    head = NAMED.match(body)
    if head:
        name, expression = head.group(1), head.group(2)
    if name is None and not re.search(r"\{\s*[\w.-]+\.json:", expression):
        return [f"{where}: no record named (a `<!-- record: FILE -->` line or FILE: in it)"]
    named = f"{name}:" if name is not None else ""  # none when each path names its record
    try:
        value = evaluate(load(name) if name is not None else {}, expression, load)
    except (AnchorError, KeyError, IndexError, TypeError, ValueError,
            ZeroDivisionError) as err:
        return [f"{where}: {named} {err}" if named else f"{where}: {err}"]
    figure, decimals = figure_value(shown)
    if not rounds_to(value, figure, decimals):
        return [f"{where}: {named}{expression.strip()} is {value!r}"]
    return []
