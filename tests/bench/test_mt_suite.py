"""The `mt` suite (Platanios et al. 2019 curriculum on Multi30k): its methods, a quick run of
the baseline and a curriculum, pair validation and the CLI's --pair."""

from __future__ import annotations

import pytest

import hasten.bench.mt as mt
from hasten.bench.harness import METHODS, SUITES, TASKS, run_one, suite_tasks
from hasten.bench.report import fill_targets, markdown_report
from hasten.cli import main
from hasten.core.errors import ConfigError
from hasten.core.paths import data_root

HAS_MULTI30K = (data_root() / "multi30k" / "train.en.gz").is_file()


def test_suite_lists_the_six_methods_with_plain_star_first():
    suite = SUITES["mt"]
    assert suite.methods == ["plain*", "plain", "sl-linear", "sl-sqrt", "sr-linear", "sr-sqrt"]
    assert suite_tasks(suite, mt.MTOptions()) == ["mt-en-de"] and suite.margin == 0.0
    assert suite_tasks(suite, mt.MTOptions(pair="fr-en")) == ["mt-fr-en"]
    assert all(m in METHODS for m in suite.methods)
    assert {"mt-en-de", "mt-fr-en", "mt-en-cs", "mt-cs-de"} <= set(TASKS)


def test_pair_task_names_and_unknown_pair():
    assert mt.pair_task("fr-en") == "mt-fr-en"
    with pytest.raises(ConfigError, match="known: en-de, en-fr") as err:
        mt.pair_task("en-vi")
    assert "'en-vi'" in str(err.value) and "\n" not in str(err.value)


def test_cli_pair_maps_to_its_task(monkeypatch, tmp_path):
    import hasten.bench.harness as harness
    import hasten.bench.report as report

    seen = {}

    def fake_run_suite(name, **kw):
        seen.update(kw, suite=name)
        return {"suite": name, "runs": []}

    monkeypatch.setattr(harness, "run_suite", fake_run_suite)
    monkeypatch.setattr(report, "write_report",
                        lambda results, out: {k: tmp_path / k for k in
                                              ("report", "curves", "results")})
    assert main(["bench", "mt", "--pair", "fr-en", "--quiet", "--out", str(tmp_path)]) == 0
    assert seen["suite"] == "mt" and seen["tasks"] == ["mt-fr-en"]


def test_cli_unknown_pair_is_one_line_and_exit_2(capsys):
    assert main(["bench", "mt", "--pair", "xx-yy", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hasten: error: Multi30k has no language pair 'xx-yy'")
    assert "\n" not in err


def test_quick_runs_record_val_bleu_curves_and_test_bleu():
    assert HAS_MULTI30K, f"Multi30k is missing under {data_root()} (set HASTEN_DATA)"
    runs = []
    for method in ("plain*", "sr-sqrt"):
        # a steps budget: two evaluations (half-way and at the end) on any machine; small
        # fp32 batches (bf16 autocast is emulated, and slow, on CPUs without bf16 units)
        run, model = run_one("mt-en-de", method, 0, quick=True, budget="8steps",
                             eval_every=0.5, micro_batch=16, precision="fp32")
        assert run["metric"] == "best_val_bleu" and len(run["curve"]) >= 2
        values = [v for _, _, v in run["curve"]]
        assert values == sorted(values)  # the best so far never drops
        notes = run["notes"]
        assert run["final"] == pytest.approx(notes["best_val_bleu"]) == pytest.approx(max(
            notes["val_bleu_history"]))
        assert 0.0 <= notes["test_bleu"] <= 100.0
        assert notes["test_split"] == "test_2016_flickr" and notes["test_sentences"] == 200
        assert notes["report_rows"] == {
            "test BLEU (test_2016_flickr, greedy)": notes["test_bleu"]}
        runs.append({**run, "baseline": "plain*"})
    assert runs[0]["notes"]["schedule"] == "plain*" and "curriculum" not in runs[0]["notes"]
    sr = runs[1]["notes"]
    assert (sr["schedule"], sr["curriculum"], sr["p"], sr["c0"]) == (
        "plain", "sentence_rarity", 2.0, 0.01)
    assert runs[1]["config"]["schedule_params"]["warmup"] == 0.0
    md = markdown_report(fill_targets({"suite": "mt", "runs": runs}))
    assert "| test BLEU (test_2016_flickr, greedy) |" in md
    assert "Target: best_val_bleu ≥" in md


def test_another_pair_runs_without_code_changes():
    """Czech has train, val and test_2016_flickr: en-cs runs end to end like en-de."""
    assert HAS_MULTI30K, f"Multi30k is missing under {data_root()} (set HASTEN_DATA)"
    run, _ = run_one("mt-en-cs", "sr-sqrt", 0, quick=True, budget="4steps", eval_every=1.0,
                     micro_batch=16, precision="fp32")
    notes = run["notes"]
    assert (run["task"], notes["pair"], notes["dataset"]) == ("mt-en-cs", "en-cs",
                                                            "multi30k en-cs")
    assert notes["curriculum"] == "sentence_rarity" and 0.0 <= notes["test_bleu"] <= 100.0
    assert notes["test_sentences"] == 200 and run["steps"] >= 1
