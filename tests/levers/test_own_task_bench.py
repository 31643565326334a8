"""An own task file holding only `(seed, quick) -> Recipe` runs the levers suite to a report,
with no extra code: every lever checks what it needs from the recipe itself."""

from __future__ import annotations

import json

from own_tasks import write_task


def test_bench_levers_runs_an_own_task_file_to_a_report(tmp_path, hasten_cli):
    task = write_task(tmp_path)
    out = tmp_path / "levers"
    proc = hasten_cli("bench", "levers", "--tasks", f"{task}:make_recipe", "--methods",
                      "baseline,infobatch,sb-topk,infobatch+sb-topk", "--quick", "--budget",
                      "24steps", "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    files = {p.name for p in out.iterdir()}
    record = json.loads((out / next(n for n in files if n.startswith("result"))).read_text())
    runs = {r["method"]: r for r in record["runs"]}
    assert list(runs) == ["baseline", "infobatch", "sb-topk", "infobatch+sb-topk"]
    assert runs["infobatch"]["notes"]["pruning"]["pruned"] > 0  # it pruned, not a no-op
    work = runs["sb-topk"]["work"]
    assert work["examples_backpropagated"] < work["examples_forwarded"]  # it selected
    assert runs["infobatch+sb-topk"]["notes"]["levers"] == ["infobatch", "sb-topk"]
    report = (out / "report.md").read_text()
    assert "| infobatch+sb-topk |" in report or "infobatch+sb-topk" in report


def test_a_lever_the_task_cannot_feed_is_one_line_before_any_run(tmp_path, hasten_cli):
    task = write_task(tmp_path)
    proc = hasten_cli("bench", "levers", "--tasks", f"{task}:make_recipe", "--methods",
                      "baseline,curriculum", "--quick", "--out", tmp_path / "x")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "hasten: error: lever 'curriculum' needs a difficulty per training example "
        "(Recipe.difficulty), which this task does not declare"]
