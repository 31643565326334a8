"""The distill suite (quick mode, digits): sets built once and reused, build time charged,
cross-seed rows in the report, the disk cache, the suite's options (no module state), the
accuracy-vs-iterations helper, the CLI."""

import json

import pytest
from conftest import run_in_process

import hasten.bench.distill as bd
from hasten.bench.harness import SUITES, run_suite
from hasten.bench.report import markdown_report, summarize
from hasten.core.errors import ConfigError


@pytest.fixture
def fresh(monkeypatch):
    """An empty in-process set cache for the test, restored afterwards."""
    monkeypatch.setattr(bd, "_sets", {})


def test_suite_lists_tasks_and_methods():
    suite = SUITES["distill"]
    assert suite.tasks == ["distill-ipc1", "distill-ipc10", "distill-ipc50"]
    assert suite.methods[0] == "random"
    assert set(suite.methods) == {"random", "full-data", "herding", "k-center", "dm", "idm",
                                  "dc", "dsa", "mtt"}


def test_quick_ipc1_runs_reuse_the_set_and_charge_its_time(fresh):
    results = run_suite("distill", quick=True, seeds=2, tasks=["distill-ipc1"],
                        methods=["random", "full-data", "dm"])
    runs = {(r["method"], r["seed"]): r for r in results["runs"]}
    for seed in (0, 1):
        dm = runs[("dm", seed)]
        assert dm["notes"]["set_shape"] == [10, 1, 8, 8]  # ipc 1 x 10 classes of digits
        assert dm["notes"]["iterations"] == 2
        assert dm["overhead_seconds"] == dm["notes"]["distill_seconds"] > 0
        assert dm["curve"][0][0] >= dm["overhead_seconds"]  # charged on the curve
        assert dm["notes"]["distill_seed"] == 0
        assert runs[("random", seed)]["notes"]["set_shape"] == [10, 1, 8, 8]
    # one set per (method, ipc, distill seed): seed 1 trains on seed 0's set, same charge
    assert runs[("dm", 0)]["notes"]["cached"] is None
    assert runs[("dm", 1)]["notes"]["cached"] == "memory"
    assert runs[("dm", 1)]["overhead_seconds"] == runs[("dm", 0)]["overhead_seconds"]
    assert runs[("full-data", 0)]["overhead_seconds"] == 0.0
    assert runs[("full-data", 0)]["notes"]["set_size"] == 1437

    summary = summarize(results)["distill-ipc1"]
    for method in ("random", "dm", "full-data"):
        extra = summary[method]["extra"]
        assert set(bd.ROWS) <= set(extra)
        finals = [runs[(method, s)]["final"] for s in (0, 1)]
        assert extra["mean accuracy (%)"] == pytest.approx(sum(finals) / 2)
        assert extra["std accuracy"] == pytest.approx(abs(finals[0] - finals[1]) / 2)
        assert extra["train s on the set"] > 0
    assert summary["dm"]["extra"]["distill iterations"] == 2
    assert summary["full-data"]["extra"]["distill s"] is None
    # full data (30 epochs) overtakes a 10-image set, so the time to its accuracy is known
    assert summary["random"]["extra"]["full-data s to same accuracy"] > 0
    report = markdown_report(results)
    for label in ("| std accuracy |", "| distill s |", "| full-data s to same accuracy |"):
        assert label in report


def test_disk_cache_is_keyed_and_reused(fresh, monkeypatch, tmp_path):
    cached = bd.DistillOptions(cache_dir=str(tmp_path))
    first = bd.build_set("dm", 1, 0, quick=True, options=cached)
    assert first.cached is None and (tmp_path / f"{first.key}.safetensors").is_file()
    assert bd.build_set("dm", 1, 0, quick=True, options=cached).cached == "memory"
    monkeypatch.setattr(bd, "_sets", {})
    again = bd.build_set("dm", 1, 0, quick=True, options=cached)
    assert again.cached == "disk" and again.seconds == pytest.approx(first.seconds)
    assert again.syn.images.shape == (10, 1, 8, 8)
    # another budget is another set
    other = bd.build_set("dm", 1, 0, quick=True,
                         options=bd.DistillOptions(distill_budget="dm=1steps",
                                                   cache_dir=str(tmp_path)))
    assert other.cached is None and other.key != first.key
    assert other.syn.meta["iterations"] == 1
    # the options are per call: nothing stays behind for the next one
    assert bd.settings_for(True).budgets["dm"] == "2steps"
    # MTT's experts are trained once and charged to every ipc
    a = bd.build_set("mtt", 1, 0, quick=True, options=cached)
    b = bd.build_set("mtt", 10, 0, quick=True, options=cached)
    assert a.syn.meta["experts_trained"] == 1 and b.syn.meta["experts_trained"] == 0
    assert b.seconds > b.syn.meta["train_seconds"]


def test_idm_builds_with_its_scaled_queue(fresh):
    built = bd.build_set("idm", 1, 0, quick=True)
    assert built.syn.images.shape == (10, 1, 8, 8) and built.syn.meta["method"] == "idm"
    assert built.syn.meta["options"]["pool"] == bd.QUICK.options["idm"]["pool"]
    assert bd.SETTINGS.options["idm"] == bd.IDM_CPU


def test_iteration_curve_evaluates_one_run_at_each_checkpoint(fresh):
    rows = bd.iteration_curve("dm", 1, [1, 3], quick=True, models=1)
    assert [r["iterations"] for r in rows] == [1, 3]
    assert rows[1]["distill_seconds"] >= rows[0]["distill_seconds"] > 0
    assert all(0 <= r["accuracy_mean"] <= 100 for r in rows)


def test_options_settings_and_cache_dir():
    assert bd.settings_for(False).cache_dir == "runs/distill-cache"
    assert bd.settings_for(True).cache_dir is None
    assert bd.settings_for(False, bd.DistillOptions(cache_dir="none")).cache_dir is None
    s = bd.settings_for(False, bd.DistillOptions(distill_budget="5m"))
    assert s.budgets == {m: "5m" for m in bd.DISTILLERS}
    assert SUITES["distill"].options is bd.DistillOptions


def test_distill_budget_parsing():
    assert bd.parse_distill_budget("5m") == {m: "5m" for m in bd.DISTILLERS}
    assert bd.parse_distill_budget("dm=2m,mtt=100steps") == {"dm": "2m", "mtt": "100steps"}
    with pytest.raises(ConfigError):
        bd.parse_distill_budget("kip=2m")
    with pytest.raises(ConfigError):
        bd.parse_distill_budget("1e6tok")


def test_cli_runs_the_quick_suite(tmp_path):
    proc = run_in_process("bench", "distill", "--quick", "--tasks", "distill-ipc1", "--methods",
                          "random,k-center", "--distill-budget", "1steps", "--quiet",
                          "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "report.md").read_text()
    assert "## distill-ipc1" in report and "| distill s |" in report
    results = json.loads((tmp_path / "result.json").read_text())
    assert results["options"] == {"distill_budget": "1steps", "cache_dir": "auto"}
    assert results["status"] == "complete"
    assert json.loads((tmp_path / "config.json").read_text())["options"]["distill_budget"] \
        == "1steps"
