"""Anchors tie a page's figures to records (`hasten.bench.anchors`): paths, filters,
summaries and expressions resolve; a figure must round to its value; a figure without an
anchor, a missing path and a wrong value are each reported; code, headings, dates,
versions and table headers need none."""

from __future__ import annotations

import pytest

from hasten.bench.anchors import AnchorError, check_page, evaluate, figures, resolve

RECORD = {"suite": "s", "margin": 0.5, "notes": {"rows": {"a/b": 2.5}},
          "runs": [{"task": "t", "method": "baseline", "seed": s, "final": f,
                    "higher_is_better": True, "train_seconds": 10.0 + s,
                    "work": {"flops": 100.0}}
                   for s, f in enumerate([90.0, 92.0, 91.0])]
          + [{"task": "t", "method": "fast", "seed": 0, "final": 91.5,
              "work": {"flops": 40.0}}]}


def test_paths_filters_summaries_and_expressions():
    assert resolve(RECORD, "runs[method=fast]/final") == 91.5
    assert resolve(RECORD, "runs[method=baseline,seed=2]/final") == 91.0
    assert resolve(RECORD, "runs[method=baseline]/final") == [90.0, 92.0, 91.0]
    assert resolve(RECORD, 'notes/rows/"a/b"') == 2.5
    assert resolve(RECORD, "runs[3]/work/flops") == 40.0
    assert resolve(RECORD, "summary/t/baseline/final") == 91.0  # the median over seeds
    assert resolve(RECORD, "summary/t/baseline/final_max") == 92.0
    assert evaluate(RECORD, "{runs[method=fast]/work/flops} / {runs[seed=0,method=baseline]"
                            "/work/flops}") == 0.4
    assert evaluate(RECORD, "median({runs[method=baseline]/train_seconds}) - 1") == 10.0
    assert evaluate(RECORD, "100 * {margin}") == 50.0
    with pytest.raises(AnchorError, match="no key 'nope'"):
        resolve(RECORD, "runs[method=fast]/nope")
    with pytest.raises(AnchorError, match="no item with method=slow"):
        resolve(RECORD, "runs[method=slow]/final")
    with pytest.raises(AnchorError, match="not allowed in an anchor"):
        evaluate(RECORD, "{margin} ** 2")


def test_which_numbers_are_figures():
    found = [t for _, _, t in figures("ConvNet-3 at 0.61x, 92.40 (91.9-92.5) on 2 cores, "
                                      "1,200,128 examples, torch 2.13.0, 2026-11-28 05:47, "
                                      "`92.1` and [link](x-0.5.md)", False)]
    assert found == ["0.61", "92.40", "91.9", "92.5", "1,200,128"]
    assert [t for _, _, t in figures("| 0.9 | 90.05 | 12 |", True)] == ["90.05", "12"]


def test_a_page_is_checked_figure_by_figure():
    load = {"r.json": RECORD}.__getitem__
    page = "\n".join([
        "# Results 2.5", "<!-- record: r.json -->",
        "The baseline ends at 91.00<!-- =summary/t/baseline/final --> and fast at "
        "0.40x<!-- ={runs[method=fast]/work/flops} / 100 --> the FLOPs.",
        "| run | accuracy | seconds |", "|---|---:|---:|",
        "| 1 | 92.0<!-- =runs[method=baseline,seed=1]/final --> | 11<!-- =r.json:"
        "runs[method=baseline,seed=1]/train_seconds --> |",
        "A margin of 0.5<!-- set --> points.", "```", "hasten bench 1.5", "```"])
    assert check_page(page, load) == []
    bad = page.replace("91.00<!--", "91.40<!--").replace("0.40x<!-- =", "0.40x <!-- =") \
        .replace("| 11<!-- =r.json:runs[method=baseline,seed=1]", "| 11<!-- =r.json:runs["
                 "method=baseline,seed=9]").replace("0.5<!-- set -->", "0.5")
    assert check_page(bad, load) == [
        "line 3: 91.40: r.json:summary/t/baseline/final is 91.0",
        "line 6: 11: r.json: runs[method=baseline,seed=9]: no item with method=baseline,"
        "seed=9",
        "line 7: 0.5: no anchor"]
    assert check_page("A figure 1.5<!-- =margin -->.", load) == [
        "line 1: 1.5: no record named (a `<!-- record: FILE -->` line or FILE: in it)"]


def test_ranges_and_differences_between_records():
    other = {"runs": [{"task": "t", "method": "slow", "seed": 0, "final": 89.5}]}
    load = {"r.json": RECORD, "o.json": other}.__getitem__
    # a range anchored at both ends reads as the page shows it, "90.0-92.0", not -92.0
    assert [t for _, _, t in figures("90.0<!-- =a -->-92.0<!-- =b -->", False)] \
        == ["90.0", "92.0"]
    assert evaluate(RECORD, "{o.json:runs[0]/final} - 89", load) == 0.5
    page = "\n".join([
        "<!-- record: r.json -->",
        "Finals 90.0<!-- =runs[seed=0,method=baseline]/final -->-92.0<!-- =runs[seed=1]/final"
        " -->, +1.5<!-- ={summary/t/baseline/final} - {o.json:runs[0]/final} --> over o.",
        "| run | range |", "|---|---|",
        "| 1 | 90.0<!-- =runs[seed=0,method=baseline]/final -->-91.5<!-- =runs[method=fast]/final"
        " --> |"])
    assert check_page(page, load) == []
    # a difference between two named records needs no section record
    assert check_page("A gap of 1.5<!-- ={o.json:runs[0]/final} - 88 -->.", load) == []
    assert check_page("A gap of 1.5<!-- ={o.json:runs[0]/final} - 87 -->.", load) == [
        "line 1: 1.5: {o.json:runs[0]/final} - 87 is 2.5"]


def test_any_two_methods_paired_by_seed():
    runs = [{"task": "t", "method": m, "seed": s, "final": f, "work": {}}
            for m, finals in (("a", [80.0, 81.0, 79.0]), ("b", [79.0, 81.0, 78.0]))
            for s, f in enumerate(finals)]
    record = {"margin": 0.0, "runs": runs}
    # differences 1, 0, 1: mean 2/3, standard error 1/3, t(0.975, 2) = 4.303
    assert resolve(record, "paired/a/b/mean") == pytest.approx(2 / 3)
    assert resolve(record, "paired/a/b/low") == pytest.approx(2 / 3 - 4.303 / 3)
    assert resolve(record, "paired/b/a/high") == pytest.approx(-2 / 3 + 4.303 / 3)
    assert resolve(record, "paired/a/b/n") == 3
    with pytest.raises(AnchorError, match="fewer than two seeds with both a and c"):
        resolve(record, "paired/a/c/mean")
    with pytest.raises(AnchorError, match="paired needs"):
        resolve(record, "paired/a")


def test_a_ladder_row_against_crammed_by_the_plans_rule():
    def run(row, seed, loss, rung=1e13):
        grid = {"4096": {"1234": loss - 0.01, "1235": loss + 0.01}, "256": {"1234": 9.0}}
        return {"task": f"ladder@{rung:.0e}", "method": row, "seed": seed, "rung_flops": rung,
                "final": 0.0, "eval_details": {"mlm_loss_grid": grid}}
    runs = [run("crammed", s, v) for s, v in enumerate([5.0, 5.2, 5.1])]
    runs += [run("original-data", s, v) for s, v in enumerate([6.0, 6.2, 6.1])]
    record = {"runs": runs + [run("crammed", 0, 4.0, rung=4e13)]}
    # both rows: s = 0.1; Welch df 4, t(0.975, 4) = 2.776; floor 2.776 x 0.1 x sqrt(2/3)
    half = 2.776 * (0.01 / 3 * 2) ** 0.5
    assert resolve(record, "ladder/4096/1e13/original-data/d") == pytest.approx(1.0)
    assert resolve(record, "ladder/4096/1e13/original-data/low") == pytest.approx(1 - half,
                                                                                 abs=1e-3)
    assert resolve(record, "ladder/4096/1e13/original-data/floor") == pytest.approx(half,
                                                                                   abs=1e-3)
    assert resolve(record, "ladder/4096/1e13/crammed/mean") == pytest.approx(5.1)
    assert resolve(record, "ladder/4096/4e13/crammed/n") == 1
    with pytest.raises(AnchorError, match="no minimal-arch at 1e13 with a loss at 4096"):
        resolve(record, "ladder/4096/1e13/minimal-arch/mean")
    with pytest.raises(AnchorError, match="ladder needs"):
        resolve(record, "ladder/1e13/crammed")
