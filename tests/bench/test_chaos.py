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
