"""The pretraining ladder: each row changes one part of the crammed recipe, the plan (rows,
rungs, seeds), a shape fixed per rung by the FLOP rule, and a tiny ladder run end to end
(records in the harness layout, reuse of finished rows, rows split over calls)."""

import json
from pathlib import Path

import pytest
from conftest import run_in_process

from hasten.bench import ladder
from hasten.bench.ladder import ROWS, LadderOptions, plan, row_recipe, run_ladder, rung_size
from hasten.bench.report import load_results, markdown_report
from hasten.core.errors import ConfigError
from hasten.pretrain.objectives.flops import non_embedding_parameters

ROOT = Path(__file__).resolve().parents[2]
GUTENBERG = ROOT.parent / "shared" / "data" / "gutenberg" / "11-0.txt"


def _diff(name, rung=4e13):
    base, _ = row_recipe(ROWS["crammed"], rung, LadderOptions())
    r, _ = row_recipe(ROWS[name], rung, LadderOptions())
    a, b = base.to_dict(), r.to_dict()
    return {k for k in a if a[k] != b[k] and k != "name"}, r


def test_each_row_changes_one_part():
    base, size = row_recipe(ROWS["crammed"], 4e13, LadderOptions())
    assert (base.cutoff, base.lr, base.arch, base.vocab_size) == (0.3, 1e-3, "crammed", 8192)
    assert (base.layers, base.hidden, base.batch) == (size.shape.layers, size.shape.hidden,
                                                      size.batch)
    assert _diff("original-data")[0] == {"cutoff"}
    assert _diff("original-arch")[0] == {"arch", "sparse", "dropout"}
    changed, r = _diff("minimal-arch")
    assert changed == {"arch", "sparse", "dropout"} and r.arch == "bert-prenorm"
    setup, r = _diff("original-setup")
    assert {"lr", "betas", "eps", "clip", "schedule", "schedule_params", "mask_rate",
            "sparse", "batch_ramp"} <= setup
    assert not setup & {"arch", "hidden", "layers", "cutoff", "vocab_size", "batch"}
    minimal, r = _diff("minimal-train")
    assert minimal == setup - {"lr", "schedule", "schedule_params"}  # lr 1e-3 + triangle back
    assert (r.lr, r.schedule, r.mask_rate, r.betas) == (1e-3, "triangle", 0.15, (0.9, 0.999))
    assert _diff("electra")[1].mask_rate == 0.15
    assert ROWS["electra@0.25"].fraction == 0.25 and ROWS["electra@0.5"].fraction == 0.5
    assert not ROWS["control"].trains


def test_plan_rows_rungs_seeds():
    runs = plan(LadderOptions())
    at = {g: [(row.name, s) for g2, row, s in runs if g2 == g] for g in (1e13, 4e13)}
    assert sorted({g for g, _, _ in runs}) == [1e13, 4e13]  # two rungs 4x apart
    assert at[1e13] == at[4e13] and len(at[1e13]) == 3 * len(ROWS)  # every row, 3 seeds
    assert at[1e13][:len(ROWS)] == [(name, 0) for name in ROWS]  # seed by seed
    assert plan(LadderOptions(), rows=["crammed"], rungs=[4e13]) == [
        (4e13, ROWS["crammed"], s) for s in range(3)]
    few = plan(LadderOptions(seeds={"control": 1}, large_rows=["crammed"]),
               rows=["control", "crammed"])
    assert [(g, r.name, s) for g, r, s in few] == [
        (1e13, "control", 0), (1e13, "crammed", 0), (1e13, "crammed", 1),
        (1e13, "crammed", 2), (4e13, "crammed", 0), (4e13, "crammed", 1),
        (4e13, "crammed", 2)]
    with pytest.raises(ConfigError, match="unknown row 'bert'"):
        plan(LadderOptions(), rows=["bert"])


def test_rung_shapes_follow_the_flop_rule():
    o = LadderOptions()
    sizes = [rung_size(g, o) for g in o.rungs]
    assert [rung_size(g, o) for g in o.rungs] == sizes  # no timing: the same every call
    assert [s.batch for s in sizes] == [64, 256]
    assert [rung_size(g, o).shape.hidden for g in (1e13, 3e14, 1e16)] == [128, 192, 256]
    for s in sizes:
        assert s.shape.vocab_size == 8192 and s.steps >= 200
        n = non_embedding_parameters(s.shape.config())
        assert s.tokens >= 20 * n or s.shape == ladder.menu(o)[0]


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    folder = tmp_path_factory.mktemp("books")
    text = GUTENBERG.read_text(encoding="utf-8-sig")
    for i, name in enumerate(["Carroll__A.txt", "Carroll__B.txt", "Wells__C.txt"]):
        (folder / name).write_text(text[20_000 * (i + 1):20_000 * (i + 2)])
    return folder


def _tiny(tmp_path, books, **kw):
    return LadderOptions(**{**dict(corpus=[str(books)], heldout="authors:W-Z", tiny=True,
                                   vocab_size=300, precision="fp32", rungs=[5e9],
                                   seeds_per_row=1, min_steps=3, eval_rows=16,
                                   loss_grid_rows=[8, 16], mask_seeds=[1, 2],
                                   out=str(tmp_path / "ladder"),
                                   cache=str(tmp_path / "cache")), **kw})


@pytest.mark.slow
def test_tiny_ladder_end_to_end(tmp_path, books):
    lines = []
    o = _tiny(tmp_path, books, seeds={"control": 2})
    results = run_ladder(o, ["control", "crammed", "electra"], say=lines.append)
    runs = results["runs"]
    assert [(r["method"], r["seed"]) for r in runs] == [("control", 0), ("crammed", 0),
                                                        ("electra", 0), ("control", 1)]
    for r in runs:
        assert r["task"] == "ladder@5e09flop" and r["rung_flops"] == 5e9
        assert r["metric"] == "mlm_loss_15" and set(r["metrics"]) == {
            "blimp", "probe_sst2", "probe_stsb", "mlm_loss_15"}
        assert r["notes"]["report_rows"].keys() == {"probe_sst2", "probe_stsb", "blimp"}
        assert r["baseline"] == "control" and r["budget"] == "5e+09flop"
    control, crammed, electra, control1 = runs
    assert control["work"]["flops"] == 0 and control["stopped"] == "not trained"
    assert crammed["work"]["flops"] >= 5e9 and crammed["stopped"] == "budget"
    assert crammed["notes"]["loss_curve"]
    assert electra["metrics"]["mlm_loss_15"] is None  # the discriminator has no MLM head
    assert crammed["metrics"]["mlm_loss_15"] < control["metrics"]["mlm_loss_15"]
    assert control["metrics"]["mlm_loss_15"] != control1["metrics"]["mlm_loss_15"]
    # the loss at every row count and mask seed; mlm_loss_15 is the mean over the seeds
    grid = crammed["eval_details"]["mlm_loss_grid"]
    assert set(grid) == {"8", "16"} and all(set(v) == {"1", "2"} for v in grid.values())
    assert crammed["metrics"]["mlm_loss_15"] == pytest.approx(
        (grid["16"]["1"] + grid["16"]["2"]) / 2)
    # the harness's report reads it
    assert "ladder@5e09flop" in markdown_report(results)
    # a second call reuses every finished row; a row run alone joins the same results
    lines.clear()
    again = run_ladder(o, ["control", "crammed", "electra", "original-data"],
                       say=lines.append)
    assert sum("reusing" in x for x in lines) == 4 and len(again["runs"]) == 5
    assert again["runs"][0]["final"] == runs[0]["final"]
    # changed settings: a stale row is not reused and not reported
    other = run_ladder(_tiny(tmp_path, books, eval_rows=8), ["control"])
    assert [r["method"] for r in other["runs"]] == ["control"]


@pytest.mark.slow
def test_cli_suite_and_bad_input(tmp_path, books):
    out = tmp_path / "bench"
    env = {"HASTEN_CACHE": str(tmp_path / "cache")}
    proc = run_in_process("bench", "electra", "--quick", "--corpus", books, "--out", out,
                          "--methods", "control,electra", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    res = load_results(out / "result.json")
    assert res["suite"] == "pretrain-ladder" and [r["method"] for r in res["runs"]] == [
        "control", "electra"]
    assert (out / "report.md").is_file()
    proc = run_in_process("bench", "mlm", "--quick", "--corpus", books, "--out", out,
                          "--budget", "3s", env=env)
    assert proc.returncode == 2 and "rungs are FLOPs" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_in_process("bench", "mlm", "--quick", "--corpus", books, "--out", out,
                          "--methods", "bert", env=env)
    assert proc.returncode == 2 and "unknown row 'bert'" in proc.stderr
    assert json.loads((out / "result.json").read_text())["runs"]


@pytest.mark.slow
def test_a_flop_row_is_bit_exact_from_its_settings(tmp_path, books):
    """The same row run twice from its settings (FLOP budget, FLOP-rule shape, seeds)
    trains the same steps to the same losses, bit for bit, and scores the same."""
    runs = [run_ladder(_tiny(tmp_path, books, out=str(tmp_path / name)), ["crammed"])["runs"][0]
            for name in ("a", "b")]
    a, b = runs
    assert a["key"] == b["key"] and a["work"] == b["work"]
    assert a["notes"]["loss_curve"] == b["notes"]["loss_curve"]
    assert a["metrics"] == b["metrics"]
    assert a["eval_details"]["mlm_loss_grid"] == b["eval_details"]["mlm_loss_grid"]


def test_the_pretraining_tables_are_suites_of_the_harness():
    """mlm, electra and pretrain-ladder are registered suites that run their own rows:
    `hasten bench` dispatches them through `Suite.own_rows`; the tasks x methods runner refuses
    them with one line naming the command."""
    from hasten.bench import electra, mlm
    from hasten.bench.harness import SUITES, run_suite

    assert SUITES["pretrain-ladder"].own_rows is ladder.run
    assert SUITES["mlm"].own_rows is mlm.run and SUITES["electra"].own_rows is electra.run
    assert SUITES["pretrain-ladder"].methods == list(ROWS)
    assert SUITES["electra"].methods == ["control", "crammed", "electra", "electra@0.5",
                                         "electra@0.25"]
    with pytest.raises(ConfigError, match="runs its own rows: `hasten bench mlm`"):
        run_suite("mlm")
