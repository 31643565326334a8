"""Chaos: SIGKILL a run with state beyond the model, resume it, compare bit for bit."""

import re

import pytest

from hasten.bench.chaos import ChaosConfig, run_chaos


@pytest.mark.slow
def test_five_kills_one_inside_a_save_resume_bit_identical():
    record = run_chaos(ChaosConfig(kills=5, save_kills=1, seed=0))
    assert record.problems == []
    assert record.kills == 5 and record.kills_in_save == 1
    assert record.resumes == 5  # "resumed from step N" after every kill
    assert record.identical, record.mismatches


@pytest.mark.slow
def test_a_dead_ddp_rank_stops_the_other_in_one_line_and_the_pair_resumes_bit_identical():
    record = run_chaos(ChaosConfig(kills=1, save_kills=0, ranks=2, kill_rank=1, steps=120))
    assert record.problems == [] and record.kills == 1
    assert len(record.survivor_exit_seconds) == 1 and record.survivor_exit_seconds[0] < 60
    assert len(record.survivor_lines) == 1
    assert re.fullmatch(r"hasten: error: rank 0 of 2 lost the other ranks during "
                        r"(a step|a checkpoint|an evaluation) \(.+\); restart the job with "
                        r"--resume", record.survivor_lines[0])
    assert record.resumes == 1 and record.identical, record.mismatches


def test_record_summary_is_one_line():
    from hasten.bench.chaos import ChaosRecord

    record = ChaosRecord(kills=5, kills_in_save=1, resumes=5, identical=True, seconds=41.25)
    assert record.ok
    assert record.summary() == ("5 kills (1 inside a save), 5 resumes, 0 fallbacks: "
                                "bit-identical; 41.2s")
    record = ChaosRecord(kills=1, resumes=1, mismatches=["weights head.bias"],
                         survivor_exit_seconds=[2.5], problems=["x"], seconds=3.0)
    assert not record.ok
    assert record.summary() == ("1 kills (0 inside a save), 1 resumes, 0 fallbacks: DIFFERENT "
                                "(weights head.bias); survivor exited in 2.5s; problems: x; "
                                "3.0s")
