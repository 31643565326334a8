import os
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import hasten.core.recipe as recipe_module
from hasten.bench import harness, machine
from hasten.bench.harness import Recipe, Suite, register_suite, register_task, run_suite
from hasten.bench.machine import (
    TimingMonitor,
    choose_threads,
    cores_available,
    flag_reasons,
    timing_marker,
    timing_note,
    wait_fraction,
)
from hasten.core.trainer import TrainConfig


def _side(load=0.5, probe=None, cpu=10.0, wait=0.0):
    return {"loadavg": [load, 0.4, 0.3], "cpu_count": 2, "cores": [0, 1], "probe_seconds": probe,
            "cpu_seconds": cpu, "wait_seconds": wait}


def test_flag_reasons_name_each_sign_of_a_busy_machine():
    quiet = {"before": _side(probe=0.21), "after": _side(load=1.9), "reference_probe": 0.2,
             "wait_fraction": 0.02}
    assert flag_reasons(quiet) == []
    busy = {"before": _side(load=1.0, probe=0.4), "after": _side(load=3.25),
            "reference_probe": 0.2, "wait_fraction": 0.5}
    assert flag_reasons(busy) == ["probe 2.00x the suite's first",
                                  "load average 3.25 over 2 cores",
                                  "threads waited 50% of their time for a CPU"]
    faster = {"before": _side(probe=0.1), "after": _side(), "reference_probe": 0.2}
    assert flag_reasons(faster) == ["probe 0.50x the suite's first"]
    assert flag_reasons(faster, tolerance=0.6) == []
    assert wait_fraction(_side(cpu=1.0, wait=0.5), _side(cpu=2.0, wait=1.5)) == 0.5
    assert wait_fraction(_side(cpu=None), _side()) is None


def _states(*loads):
    """Snapshots in order: before, after of each run, with the given 1-minute loads."""
    sides = iter([_side(load=load, probe=0.2) for load in loads])
    return lambda probe=True, quick=False: next(sides)


def test_monitor_repeats_a_flagged_run_once_and_keeps_the_second(monkeypatch):
    calls = []
    monkeypatch.setattr(machine, "snapshot", _states(0.5, 4.0, 0.5, 0.5))
    run = TimingMonitor(repeat=True).measure(lambda: calls.append(1) or {"seed": len(calls)})
    assert calls == [1, 1] and run["seed"] == 2
    assert run["timing_flag"] == {"reasons": [], "repeated": True,
                                  "first_reasons": ["load average 4.00 over 2 cores"]}
    monkeypatch.setattr(machine, "snapshot", _states(0.5, 4.0))
    once = TimingMonitor(repeat=False).measure(lambda: ({"seed": 0}, "model"))
    assert once[1] == "model"
    assert once[0]["timing_flag"] == {"reasons": ["load average 4.00 over 2 cores"],
                                      "repeated": False}
    assert once[0]["machine_state"]["before"]["loadavg"][0] == 0.5


def test_note_and_marker_say_which_runs_were_flagged():
    clean = {"task": "digits", "method": "fp32", "seed": 0, "timing_flag": None}
    flagged = {"task": "digits", "method": "bf16", "seed": 0,
               "timing_flag": {"reasons": ["load average 3.10 over 2 cores"], "repeated": False}}
    repeated = {"task": "digits", "method": "bf16", "seed": 1,
                "timing_flag": {"reasons": [], "repeated": True,
                                "first_reasons": ["probe 1.90x the suite's first"]}}
    assert timing_marker([clean]) == "" and timing_note([clean]) == ""
    assert timing_marker([clean, repeated]) == "†"
    assert timing_note([clean, flagged, repeated]) == (
        "† Timing flagged in 2 of 3 runs (1 still flagged): digits/bf16 seed 0: load average "
        "3.10 over 2 cores; digits/bf16 seed 1: probe 1.90x the suite's first; repeated once: "
        "clean. Their wall-clock numbers may reflect other load on the machine; work counters "
        "are unaffected.")


def test_choose_threads_uses_the_cores_of_the_affinity_mask():
    before = torch.get_num_threads()
    try:
        chosen = choose_threads()
        assert chosen["torch_threads"] == len(cores_available()) == torch.get_num_threads()
        assert chosen["cores"] == cores_available()
        assert choose_threads(1)["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)


def _matmuls(seconds=0.4):
    a = torch.randn(160, 160)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        a @ a
    return {"task": "t", "method": "m", "seed": 0}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux affinity")
def test_a_busy_loop_on_the_same_core_is_detected_and_flagged():
    """A process spinning on this run's core: the run's threads wait for their CPU."""
    threads, mask = torch.get_num_threads(), os.sched_getaffinity(0)
    core = min(mask)
    busy = None
    try:
        torch.set_num_threads(1)
        os.sched_setaffinity(0, {core})
        monitor = TimingMonitor()
        monitor.measure(_matmuls, 0.2)  # the suite's first run sets the reference probe
        busy = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, "
                                 f"{{{core}}})\nwhile True:\n    pass\n"])
        time.sleep(0.3)
        run = monitor.measure(_matmuls)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        os.sched_setaffinity(0, mask)
        torch.set_num_threads(threads)
    state = run["machine_state"]
    assert state["before"]["cores"] == [core] and state["before"]["torch_threads"] == 1
    assert state["wait_fraction"] > 0.25
    assert run["timing_flag"] is not None
    assert any(r.startswith("threads waited") for r in run["timing_flag"]["reasons"])
    assert timing_marker([run]) == "†"


def test_suite_runs_record_the_machine_state(monkeypatch):
    tasks = dict(harness.TASKS)  # registrations stay local
    monkeypatch.setattr(harness, "TASKS", tasks)
    monkeypatch.setattr(recipe_module, "TASKS", tasks)
    monkeypatch.setattr(harness, "SUITES", dict(harness.SUITES))
    x = torch.randn(64, 4)
    data = TensorDataset(x, (x[:, 0] > 0).long())

    @register_task("machine-tiny")
    def task(seed: int, quick: bool) -> Recipe:
        torch.manual_seed(seed)
        return Recipe(nn.Linear(4, 2), data,
                      lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"),
                      lambda m: {"accuracy": 50.0}, TrainConfig(budget="4steps", micro_batch=16))

    register_suite(Suite(name="machine-tiny", tasks=["machine-tiny"], methods=["baseline"]))
    results = run_suite("machine-tiny", quick=True, seeds=2, command="test")
    first, second = results["runs"]
    for run in (first, second):
        state = run["machine_state"]
        assert state["before"]["probe_seconds"] > 0 and "timing_flag" in run
        assert state["before"]["cores"] == cores_available()
    assert first["machine_state"]["reference_probe"] == first["machine_state"]["before"][
        "probe_seconds"] == second["machine_state"]["reference_probe"]
