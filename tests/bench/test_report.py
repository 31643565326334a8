"""Tests for hasten.bench.report on hand-built results with exactly known answers."""

from __future__ import annotations

import copy
import json
import math
import statistics

import pytest
from rich.console import Console

from hasten.bench.curves import plot_curves
from hasten.bench.report import (
    NOT_REACHED,
    fill_targets,
    load_results,
    markdown_report,
    merge_results,
    rich_tables,
    summarize,
    write_report,
)
from hasten.core.errors import ConfigError, DataError


def _work(seconds: float, examples_per_second: int) -> dict[str, float]:
    """Counters that grow linearly with time, so work at a hit is exactly known."""
    return {
        "steps": 10 * seconds,
        "examples_forwarded": examples_per_second * seconds,
        "examples_backpropagated": examples_per_second * seconds,
        "tokens": 0,
        "flops": 1e9 * seconds,
    }


def _run(
    task: str,
    method: str,
    seed: int,
    final: float | None,
    hit: float | None,
    before: float,
    *,
    metric: str = "accuracy",
    higher_is_better: bool = True,
    examples_per_second: int = 100,
    seconds: int = 10,
) -> dict:
    """A run evaluated at t = 1..seconds: `before` until t == hit, then `final` from there on."""
    curve = []
    for t in range(1, seconds + 1):
        value = final if hit is not None and t >= hit else before
        curve.append([float(t), _work(t, examples_per_second), value])
    return {
        "task": task,
        "method": method,
        "seed": seed,
        "metric": metric,
        "higher_is_better": higher_is_better,
        "final": final,
        "train_seconds": float(seconds),
        "target": None,
        "time_to_target": None,
        "relative_time": None,
        "work": _work(seconds, examples_per_second),
        "curve": curve,
    }


def _results(runs: list[dict]) -> dict:
    return {
        "schema_version": 1,
        "suite": "vision",
        "created": "2026-11-28T05:40:00+00:00",
        "machine": "test box",
        "code": "abc1234",
        "command": "hasten bench vision --quick",
        "status": "complete",
        "runs": runs,
    }


BASE_FINALS = [90.0, 92.0, 91.0]  # median 91
BASE_HITS = [4, 6, 8]  # median 6 s
FAST_HITS = [2, 3, 4]  # median 3 s -> relative time 0.5


def _vision() -> dict:
    """digits: fast (listed first) halves the time and, at half the rate, quarters the work;
    never stays below the target. lm: loss, lower is better, baseline only."""
    runs = [
        _run("digits", "fast", s, 91.5, FAST_HITS[s], 50.0, examples_per_second=50)
        for s in range(3)
    ]
    runs += [_run("digits", "baseline", s, BASE_FINALS[s], BASE_HITS[s], 50.0) for s in range(3)]
    runs += [_run("digits", "never", s, 60.0, None, 60.0) for s in range(3)]
    runs += [
        _run("lm", "baseline", s, f, 5, 3.0, metric="loss", higher_is_better=False)
        for s, f in enumerate([2.0, 2.2, 2.1])
    ]
    return _results(runs)


def _by(results: dict, task: str, method: str) -> list[dict]:
    return [r for r in results["runs"] if r["task"] == task and r["method"] == method]


def test_target_is_baseline_median_minus_margin():
    results = fill_targets(_vision(), margins={"digits": 1.0, "lm": 0.1})
    for run in _by(results, "digits", "never") + _by(results, "digits", "fast"):
        assert run["target"] == statistics.median(BASE_FINALS) - 1.0 == 90.0
        assert run["baseline"] == "baseline"
        assert run["target_margin"] == 1.0


def test_default_margin_is_zero():
    results = fill_targets(_vision())
    assert {r["target"] for r in _by(results, "digits", "fast")} == {91.0}


def test_time_and_work_to_target():
    results = fill_targets(_vision(), margins={"digits": 1.0})
    base = _by(results, "digits", "baseline")
    assert [r["time_to_target"] for r in base] == [4.0, 6.0, 8.0]
    assert base[1]["work_to_target"] == _work(6, 100)
    assert [r["relative_time"] for r in base] == [4 / 6, 1.0, 8 / 6]
    fast = _by(results, "digits", "fast")
    assert [r["relative_time"] for r in fast] == [2 / 6, 0.5, 4 / 6]
    # fast backprops 50 examples/s against the baseline's 100: a quarter of the work at 3 s vs 6 s
    assert fast[1]["relative_work"]["examples_backpropagated"] == 0.25
    assert fast[1]["relative_work"]["flops"] == 0.5
    assert fast[1]["relative_work"]["tokens"] is None  # 0 / 0 is not a ratio


def test_never_reaching_method_has_none_everywhere():
    results = fill_targets(_vision(), margins={"digits": 1.0})
    for run in _by(results, "digits", "never"):
        assert run["time_to_target"] is None
        assert run["work_to_target"] is None
        assert run["relative_time"] is None
        assert run["relative_work"] is None


def test_lower_is_better_target_adds_margin():
    results = fill_targets(_vision(), margins={"lm": 0.1})
    lm = _by(results, "lm", "baseline")
    assert lm[0]["target"] == pytest.approx(2.1 + 0.1)
    # the curve is 3.0 until t = 5, then the final loss (2.0, 2.2, 2.1): all at or below 2.2
    assert [r["time_to_target"] for r in lm] == [5.0, 5.0, 5.0]
    assert [r["relative_time"] for r in lm] == [1.0, 1.0, 1.0]


def test_baselines_mapping_and_run_field():
    runs = [_run("t", "sgd", s, 80.0, 4, 10.0) for s in range(3)]
    runs += [_run("t", "adam", s, 80.0, 2, 10.0) for s in range(3)]
    results = fill_targets(_results(copy.deepcopy(runs)), baselines={"t": "sgd"})
    assert {r["relative_time"] for r in _by(results, "t", "adam")} == {0.5}
    for run in runs:
        run["baseline"] = "adam"
    results = fill_targets(_results(runs))
    assert {r["relative_time"] for r in _by(results, "t", "sgd")} == {2.0}


def test_summarize_medians_and_reached_counts():
    summary = summarize(fill_targets(_vision(), margins={"digits": 1.0}))
    assert list(summary) == ["digits", "lm"]
    assert list(summary["digits"]) == ["baseline", "fast", "never"]
    base, fast, never = (summary["digits"][m] for m in ("baseline", "fast", "never"))
    assert base["final"] == 91.0 and base["final_min"] == 90.0 and base["final_max"] == 92.0
    assert base["relative_time"] == 1.0
    assert fast["time_to_target"] == 3.0
    assert fast["relative_time"] == 0.5
    assert fast["relative_work"]["examples_backpropagated"] == 0.25
    assert fast["reached"] == "3/3" and never["reached"] == "0/3"
    assert never["relative_time"] is None and never["relative_work"] == {}
    assert base["seeds"] == 3 and base["train_seconds"] == 10.0


def _table_lines(markdown: str) -> list[list[str]]:
    """Header rows of each markdown table (the line before a |---| separator), as cells."""
    lines = markdown.splitlines()
    return [
        [c.strip() for c in lines[i - 1].strip("|").split("|")]
        for i, line in enumerate(lines)
        if line.startswith("|:---")
    ]


def test_markdown_one_table_per_task_with_baseline_first():
    md = markdown_report(fill_targets(_vision(), margins={"digits": 1.0, "lm": 0.1}))
    headers = _table_lines(md)
    assert headers == [["", "baseline", "fast", "never"], ["", "baseline"]]
    assert "## digits" in md and "## lm" in md
    assert "hasten bench vision --quick" in md and "test box" in md
    row = next(line for line in md.splitlines() if line.startswith("| relative time |"))
    assert row == f"| relative time | 1.00 | 0.50 | {NOT_REACHED} |"
    row = next(line for line in md.splitlines() if line.startswith("| accuracy (%) |"))
    assert "91.00 (90.00–92.00)" in row
    row = next(line for line in md.splitlines() if line.startswith("| relative examples back"))
    assert row.endswith(f"| 1.00 | 0.25 | {NOT_REACHED} |")
    assert "Target: accuracy ≥ 90.00 = `baseline` median 91.00 − margin 1; 3 seeds per" in md
    assert "Target: loss ≤ 2.20 = `baseline` median 2.10 + margin 0.1" in md
    assert "nan" not in md.lower()


def test_tokens_row_only_where_runs_count_tokens():
    assert "relative tokens" not in markdown_report(fill_targets(_vision()))  # tokens are 0
    runs = [_run("mt", "plain", 0, 30.0, 8, 10.0), _run("mt", "curriculum", 0, 31.0, 4, 10.0)]
    for run, tokens_per_second in zip(runs, (1000, 800), strict=True):
        for point in run["curve"]:
            point[1]["tokens"] = tokens_per_second * point[0]
    md = markdown_report(fill_targets(_results(runs), baselines={"mt": "plain"}))
    row = next(line for line in md.splitlines() if line.startswith("| relative tokens |"))
    assert row == "| relative tokens | 1.00 | 0.40 |"  # 800 * 4 / (1000 * 8)


def test_markdown_marks_partial_reach():
    # margin 0: target 91, so the baseline seed that ends at 90 never reaches it
    md = markdown_report(fill_targets(_vision()))
    row = next(line for line in md.splitlines() if line.startswith("| time to target (s) |"))
    assert row.split("|")[2].strip() == "7.00 (2/3)"  # median of 6 and 8


def test_edge_cases_empty_curves_none_values_single_method():
    runs = [
        _run("solo", "baseline", 0, 70.0, 3, 10.0),
        {
            "task": "solo",
            "method": "baseline",
            "seed": 1,
            "metric": "accuracy",
            "higher_is_better": None,
            "final": None,
            "train_seconds": None,
            "target": None,
            "time_to_target": None,
            "relative_time": None,
            "work": None,
            "curve": [],
        },
        {
            "task": "solo",
            "method": "baseline",
            "seed": 2,
            "metric": "accuracy",
            "higher_is_better": True,
            "final": float("nan"),
            "train_seconds": 5.0,
            "curve": [[1.0, {"steps": 1}, None], [2.0, {"steps": 2}, 75.0]],
        },
        {
            "task": "nobase",
            "method": "other",
            "seed": 0,
            "metric": "bleu",
            "final": 20.0,
            "curve": [],
        },
    ]
    results = fill_targets(_results(runs))
    solo = _by(results, "solo", "baseline")
    assert solo[0]["target"] == 70.0  # NaN and None finals are ignored by the median
    assert solo[1]["time_to_target"] is None and solo[1]["relative_time"] is None
    assert solo[2]["time_to_target"] == 2.0
    assert _by(results, "nobase", "other")[0]["target"] is None
    md = markdown_report(results)
    assert "No target: no `baseline` run with a final bleu" in md
    assert "nan" not in md.lower()
    assert len(rich_tables(results)) == 2
    json.dumps(summarize(results), allow_nan=False)


def test_empty_results():
    results = fill_targets(_results([]))
    assert summarize(results) == {}
    assert "No runs." in markdown_report(results)
    assert rich_tables(results) == []


def test_write_report_files(tmp_path):
    results = fill_targets(_vision(), margins={"digits": 1.0, "lm": 0.1})
    paths = write_report(results, tmp_path / "out" / "vision")
    assert set(paths) == {"results", "report", "curves"}
    assert sorted(p.name for p in (tmp_path / "out" / "vision").iterdir()) == [
        "curves.png",
        "report.md",
        "result.json",
    ]
    text = paths["results"].read_text()
    assert json.loads(text) == results
    assert "NaN" not in text and "Infinity" not in text
    assert paths["report"].read_text() == markdown_report(results)
    assert paths["curves"].read_bytes().startswith(b"\x89PNG")


def test_write_report_replaces_nan_with_null(tmp_path):
    results = fill_targets(_vision())
    results["runs"][0]["final"] = float("nan")
    results["runs"][0]["curve"][0][2] = float("inf")
    paths = write_report(results, tmp_path)
    loaded = json.loads(paths["results"].read_text())
    assert loaded["runs"][0]["final"] is None
    assert loaded["runs"][0]["curve"][0][2] is None
    assert math.isnan(results["runs"][0]["final"])  # the caller's dict is left alone


def test_plot_curves_without_runs_or_targets(tmp_path):
    path = tmp_path / "empty.png"
    plot_curves(_results([]), path)
    assert path.read_bytes().startswith(b"\x89PNG")
    plot_curves(_vision(), path)  # not filled: no target lines, still a plot
    assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["empty.png"]  # no temp files left


def test_rich_tables_render():
    tables = rich_tables(fill_targets(_vision(), margins={"digits": 1.0}))
    assert [len(t.columns) for t in tables] == [4, 2]
    console = Console(record=True, width=200)
    for table in tables:
        console.print(table)
    text = console.export_text()
    assert NOT_REACHED in text and "0.50" in text and "vision: digits" in text


def test_ms_per_step_rows_from_the_train_ledger():
    fast = _run("t", "fast", 0, 91.0, 3, 80.0)
    base = _run("t", "baseline", 0, 91.0, 6, 80.0)
    base.update(ledger={"train": 2.0}, steps=100)  # 20 ms per step
    fast.update(ledger={"train": 1.5}, steps=100)  # 15 ms per step
    md = markdown_report(fill_targets(_results([base, fast])))
    assert "| ms per step | 20.00 | 15.00 |" in md
    assert "| relative ms per step | 1.00 | 0.75 |" in md


def test_report_rows_from_run_notes():
    runs = [_run("t", "baseline", s, 91.0, 3, 80.0) for s in range(3)]
    for run, score in zip(runs, [30.0, 32.0, 31.0], strict=True):
        run["notes"] = {"report_rows": {"test BLEU": score}}
    runs.append(_run("t", "other", 0, 90.0, None, 80.0))  # no notes: "n/a"
    results = fill_targets(_results(runs))
    assert summarize(results)["t"]["baseline"]["extra"] == {"test BLEU": 31.0}
    md = markdown_report(results)
    lines = md.splitlines()
    i = lines.index("| test BLEU | 31.00 | n/a |")
    assert lines[i - 1].startswith("| accuracy (%) |")


def _split_by_seed(results: dict, seeds: set[int], **extra) -> dict:
    part = copy.deepcopy(results)
    part["runs"] = [r for r in part["runs"] if r["seed"] in seeds]
    part.update(quick=False, margin=0.5, **extra)
    return fill_targets(part, margins={"digits": 0.5, "lm": 0.5})


def test_merge_equals_the_run_in_one_piece():
    whole = _vision()
    whole.update(quick=False, margin=0.5)
    want = fill_targets(copy.deepcopy(whole), margins={"digits": 0.5, "lm": 0.5})
    a = _split_by_seed(whole, {0, 1}, command="hasten bench vision --seeds 2")
    b = _split_by_seed(whole, {2}, command="hasten bench vision --first-seed 2")
    got = merge_results([a, b])
    assert got["seeds"] == 3 and "--first-seed 2" in got["command"]
    assert len(got["merged_from"]) == 2
    key = lambda r: (r["task"], r["method"], r["seed"])  # noqa: E731
    for mine, theirs in zip(sorted(got["runs"], key=key), sorted(want["runs"], key=key),
                            strict=True):
        for field in ("target", "time_to_target", "relative_time", "relative_work"):
            assert mine[field] == theirs[field], (key(mine), field)
    assert summarize(got) == summarize(want)


def test_parts_over_different_tasks_merge_and_a_task_s_baseline_must_agree():
    whole = _vision()
    by_task = [{**_split_by_seed(whole, {0, 1, 2}), "runs": [r for r in whole["runs"]
                                                            if r["task"] == task]}
               for task in ("digits", "lm")]
    got = merge_results(by_task)
    assert {r["task"] for r in got["runs"]} == {"digits", "lm"}
    other = copy.deepcopy(by_task[0])
    other["runs"] = [{**r, "seed": r["seed"] + 10, "baseline": "fast"} for r in other["runs"]]
    with pytest.raises(ConfigError, match="runs of digits name different baselines"):
        merge_results([by_task[0], other])


def test_merge_rejects_mismatched_or_overlapping_pieces(tmp_path):
    whole = _vision()
    a = _split_by_seed(whole, {0, 1})
    with pytest.raises(ConfigError, match="at least two"):
        merge_results([a])
    with pytest.raises(ConfigError, match="digits / fast / seed 0 appears in more than one"):
        merge_results([a, _split_by_seed(whole, {0, 2})])
    with pytest.raises(ConfigError, match="different suite"):
        merge_results([a, {**_split_by_seed(whole, {2}), "suite": "steps"}])
    with pytest.raises(ConfigError, match="different margin"):
        merge_results([a, {**_split_by_seed(whole, {2}), "margin": 1.0}])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not a results JSON file"):
        load_results(bad)
    with pytest.raises(DataError, match="missing.json: file not found"):
        load_results(tmp_path / "missing.json")
    (tmp_path / "rows.json").write_text('{"rows": []}')
    with pytest.raises(DataError, match="rows.json: not a hasten record"):
        load_results(tmp_path / "rows.json")


def test_report_command_joins_files(tmp_path):
    from conftest import run_in_process

    whole = _vision()
    for name, seeds in (("a", {0, 1}), ("b", {2})):
        write_report(_split_by_seed(whole, seeds), tmp_path / name)
    proc = run_in_process("report", tmp_path / "a" / "result.json",
                          tmp_path / "b" / "result.json", "--out", tmp_path / "joined")
    assert proc.returncode == 0, proc.stderr
    joined = json.loads((tmp_path / "joined" / "result.json").read_text())
    assert joined["seeds"] == 3 and len(joined["runs"]) == len(whole["runs"])
    assert (tmp_path / "joined" / "report.md").exists()
    proc = run_in_process("report", tmp_path / "a" / "result.json", tmp_path / "nope.json",
                          "--out", tmp_path / "x")
    assert proc.returncode == 2 and "nope.json: file not found" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
