"""The pretraining plan's rule: the floor from crammed's seeds, Welch intervals, verdicts and
trends, the loss read at a fixed row count and masks, the ELECTRA gate, and the plan's
commit before the rows'."""

import math

import pytest

from hasten.bench import ladder_verdicts as lv

T4 = 2.7764451051977987  # t(0.975, 4)


def _run(method, seed, rung=1e13, **metrics):
    grid = metrics.pop("grid", None)
    run = {"method": method, "seed": seed, "rung_flops": rung, "metrics": metrics}
    if grid is not None:
        run["eval_details"] = {"mlm_loss_grid": grid}
    return run


def test_floor_is_the_half_width_of_a_same_recipe_difference():
    assert lv.t975(4) == pytest.approx(T4)
    assert lv.floor([1.0, 2.0, 3.0]) == pytest.approx(T4 * 1.0 * math.sqrt(2 / 3))
    assert lv.floor([5.0, 5.0, 5.0]) == 0.0
    assert math.isnan(lv.floor([1.0]))


def test_compare_worse_better_and_no_difference():
    crammed = [4.0, 4.1, 4.2]
    worse = lv.compare([5.0, 5.1, 5.2], crammed, floor_value=0.5)
    half = T4 * math.sqrt(0.01 / 3 * 2)  # equal variances: Welch's df is 4
    assert worse["d"] == pytest.approx(1.0)
    assert (worse["low"], worse["high"]) == (pytest.approx(1 - half), pytest.approx(1 + half))
    assert worse["verdict"] == "worse"
    assert lv.compare([3.0, 3.1, 3.2], crammed, 0.5)["verdict"] == "better"
    # a gap inside the floor is no difference, whatever its interval
    assert lv.compare([4.3, 4.4, 4.5], crammed, 0.5)["verdict"] == "no difference"
    # a gap beyond the floor whose interval spans 0 is no difference
    assert lv.compare([3.0, 5.0, 7.0], crammed, 0.5)["verdict"] == "no difference"
    # higher is better (a probe): a higher row is better
    assert lv.compare([60.0, 61.0, 62.0], [50.0, 51.0, 52.0], 2.0,
                      lower_is_better=False)["verdict"] == "better"


def test_trend_between_rungs():
    small = {"d": 1.0, "verdict": "worse"}
    assert lv.trend(small, {"d": 2.0, "verdict": "worse"}, 0.5) == "grows"
    assert lv.trend(small, {"d": 1.2, "verdict": "worse"}, 0.5) == "holds"
    assert lv.trend(small, {"d": 0.2, "verdict": "no difference"}, 0.5) == "shrinks"
    assert lv.trend(small, {"d": -2.0, "verdict": "better"}, 0.5) == "changes sign"


def test_the_loss_is_read_at_the_fixed_rows_and_masks():
    run = _run("crammed", 0, mlm_loss_15=9.0,
               grid={"256": {"1": 5.0, "2": 6.0, "3": 7.0}, "4096": {"1": 5.5, "2": 5.5}})
    assert lv.metric_value(run, "mlm_loss_15") == 9.0
    assert lv.metric_value(run, "mlm_loss_15", loss_rows=256) == 6.0
    assert lv.metric_value(run, "mlm_loss_15", loss_rows=256, mask_seeds=[1, 2]) == 5.5
    assert lv.metric_value(run, "mlm_loss_15", loss_rows=1024) is None


def test_verdicts_floor_and_gate_on_a_small_ladder():
    runs = []
    for seed, (c, o, ctl) in enumerate([(5.0, 6.0, 9.0), (5.1, 6.1, 9.1), (5.2, 6.2, 9.2)]):
        runs += [_run("control", seed, mlm_loss_15=ctl, probe_sst2=60.0 + seed,
                      probe_stsb=70.0 + seed),
                 _run("crammed", seed, mlm_loss_15=c, probe_sst2=60.5 + seed,
                      probe_stsb=60.0 + seed),
                 _run("original-setup", seed, mlm_loss_15=o),
                 _run("crammed", seed, rung=4e13, mlm_loss_15=c - 1),
                 _run("original-setup", seed, rung=4e13, mlm_loss_15=o)]
    fl = lv.floors(runs)
    assert fl["mlm_loss_15"] == pytest.approx(T4 * 0.1 * math.sqrt(2 / 3))
    got = lv.verdicts(runs)
    assert [(v["row"], v["rung"], v["verdict"]) for v in got] == [
        ("original-setup", 1e13, "worse"), ("original-setup", 4e13, "worse")]
    assert got[0]["d"] == pytest.approx(1.0) and got[1]["d"] == pytest.approx(2.0)
    assert got[1]["trend"] == "grows" and got[0]["seed_direction"] == "far worse (50.2)"
    gate = lv.electra_gate(runs, fl)
    # SST-2: +0.5 over the control, inside its floor; STS-B: the control is higher
    assert not gate["probe_sst2"]["clears"] and not gate["probe_stsb"]["clears"]
    assert gate["probe_sst2"]["crammed"] == pytest.approx(61.5)


def test_plan_order_reads_git():
    first = lv.plan_order({"code": "f8d6d7a"}, "benchmarks/plans/pretrain-ladder.md")
    assert first["commit"] == "91c4904" and first["plan_first"]
    before = lv.plan_order({"code": "ffde83e"}, "benchmarks/plans/pretrain-ladder.md")
    assert not before["plan_first"]
    assert lv.report_lines({"runs": []}) == [
        "the record names no plan (its options have no `plan`)"]


def test_part_one_chooses_the_row_count_by_the_mask_spread():
    """N is the smallest row count where every crammed seed's spread over the mask seeds is
    at most a quarter of the floor at that N."""
    def grid(base, spread256, spread1024):
        return {"256": {"1": base, "2": base + spread256},
                "1024": {"1": base, "2": base + spread1024},
                "4096": {"1": base, "2": base}}

    runs = [_run("crammed", s, grid=grid(5.0 + 0.1 * s, 0.2, 0.01)) for s in range(3)]
    choice = lv.choose_loss_rows(runs)
    # floor at 1024: T4 x 0.1 x sqrt(2/3) = 0.227; a quarter is 0.057 > 0.01; at 256 0.2 > it
    assert choice["rows"] == 1024
    assert choice["by_rows"][256]["spread"] == pytest.approx(0.2)
    assert choice["by_rows"][1024]["floor"] == pytest.approx(T4 * 0.1 * math.sqrt(2 / 3))
    noisy = [_run("crammed", s, grid={"256": {"1": 5.0 + 0.1 * s, "2": 6.0}}) for s in range(3)]
    assert lv.choose_loss_rows(noisy, counts=(256,))["rows"] == 256  # none fits: the largest


def test_report_shows_the_plan_committed_before_the_rows(capsys):
    """`hasten report` on a ladder record prints the plan's first commit and whether every
    row ran at or after it (git order)."""
    from hasten.cli import main

    record = "benchmarks/results/pretrain-verdicts-part1-bf16-20261207.json"
    assert main(["report", str(lv.ROOT / record), "--quiet"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("plan benchmarks/plans/pretrain-verdicts.md: first committed d5d725a")
    assert line.endswith("rows ran at d5d725a: the plan came first")
