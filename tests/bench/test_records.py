"""Results as records: the header every file carries (schema version, code, machine,
created, the command as retyped with its core pinning), the one reader (the schema, no
adapters) that loads every committed results file in benchmarks/results/, each superseded
file's successor, and a suite that keeps its finished runs when a later run fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT
from rich.console import Console
from torch import nn
from torch.utils.data import TensorDataset

from hasten.bench.harness import (
    METHODS,
    SUITES,
    TASKS,
    Recipe,
    Suite,
    register_method,
    register_suite,
    register_task,
    run_suite,
)
from hasten.bench.records import (
    SCHEMA_VERSION,
    command_line,
    cpu_list,
    load_record,
    pinning,
    write_record,
)
from hasten.bench.report import markdown_report, rich_tables, summarize
from hasten.core.errors import DataError
from hasten.core.trainer import TrainConfig

RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
SUPERSEDED = ROOT / "benchmarks" / "results" / "superseded"


def test_every_committed_results_file_loads_and_renders():
    assert len(RESULTS) >= 38
    successors = {}
    for path in RESULTS:
        record = load_record(path)
        assert record["schema_version"] == SCHEMA_VERSION and record["runs"], path.name
        for key in ("suite", "created", "machine", "code", "command", "status"):
            assert isinstance(record[key], str) and record[key], (path.name, key)
        assert all({"task", "method", "seed", "final"} <= set(r) for r in record["runs"])
        md = markdown_report(record)
        assert md.count("\n## ") == len(summarize(record)) > 0, path.name
        console = Console(record=True, width=200, file=open(os.devnull, "w"))  # noqa: SIM115
        for table in rich_tables(record):
            console.print(table)
        if record.get("supersedes"):
            successors[record["supersedes"]] = path.name
    # every superseded file has its successor in results/, and nothing else sits beside them
    superseded = sorted(p.name for p in SUPERSEDED.iterdir())
    assert len(superseded) >= 33 and sorted(successors) == superseded


def test_the_reader_takes_the_schema_only_and_keeps_extra_keys(tmp_path):
    old = SUPERSEDED / "electra-20261128.json"
    with pytest.raises(DataError, match="electra-20261128.json: not a hasten record "
                                        r"\(schema_version None, expected 1\)"):
        load_record(old)
    electra = load_record(ROOT / "benchmarks" / "results" / "electra-20261207.json")
    raw = json.loads(old.read_text())
    assert [r["method"] for r in electra["runs"]] == [row["row"] for row in raw["rows"]]
    assert [r["final"] for r in electra["runs"]] == [row["glue_average"] for row in raw["rows"]]
    assert electra["glue_settings"] == raw["glue_settings"]  # extra keys kept as they were
    assert electra["supersedes"] == "electra-20261128.json"
    # a record of this schema with keys another suite adds (rung FLOPs, metric tables)
    header = {"schema_version": SCHEMA_VERSION, "suite": "ladder", "created": "now",
              "machine": "m", "code": "c", "command": "hasten bench ladder",
              "status": "complete"}
    path = tmp_path / "ladder.json"
    write_record({**header, "rung_flops": [1e12],
                  "runs": [{"task": "t", "method": "m", "seed": 0, "final": 1.5,
                            "metric": "loss", "higher_is_better": False,
                            "metrics": {"loss": 1.5, "glue": {"cola": 10.0}},
                            "curve": [[1.0, {"steps": 1}, 1.5]]}]}, path)
    record = load_record(path)
    assert record["source"]["path"] == str(path) and record["rung_flops"] == [1e12]
    assert "## t" in markdown_report(record)
    write_record({**header, "status": "", "runs": []}, path)
    with pytest.raises(DataError, match="ladder.json: the record's header lacks status"):
        load_record(path)
    write_record({**header, "runs": [{"task": "t"}]}, path)
    with pytest.raises(DataError, match="'runs' must be a list of runs, each with a task and "
                                        "a method"):
        load_record(path)


def test_cpu_lists_and_the_command_as_retyped():
    assert cpu_list([0]) == "0" and cpu_list([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    pins = {"cpus": [0], "all_cpus": False, "env": {"OMP_NUM_THREADS": "1"}}
    assert command_line(["bench", "mt", "--methods", "plain*"], pins) == (
        "taskset -c 0 env OMP_NUM_THREADS=1 hasten bench mt --methods 'plain*'")
    assert command_line(["demo"], {"cpus": [0, 1], "all_cpus": True, "env": {}}) == \
        "hasten demo"
    # a script's records say how the script was called, with the same pinning
    assert command_line(["--out", "a b.json"], pins, program="python scripts/x.py") == (
        "taskset -c 0 env OMP_NUM_THREADS=1 python scripts/x.py --out 'a b.json'")
    here = pinning()
    assert here["cpus"] == sorted(os.sched_getaffinity(0)) and "env" in here


def test_a_pinned_run_records_its_pinning(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores to pin to one")
    from own_tasks import write_task

    task = f"{write_task(tmp_path)}:make_recipe"
    env = {**{k: v for k, v in os.environ.items() if k != "MKL_NUM_THREADS"},
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # the command names what is set
    subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "hasten", "bench", "vision",
                    "--tasks", task, "--quiet", "--out", str(tmp_path / "b")], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=300)
    record = json.loads((tmp_path / "b" / "result.json").read_text())
    assert record["command"].startswith("taskset -c 0 env OMP_NUM_THREADS=1 hasten bench ")
    assert record["pinning"]["cpus"] == [0] and record["pinning"]["all_cpus"] is False
    assert record["schema_version"] == SCHEMA_VERSION and record["code"]
    assert record["status"] == "complete" and record["machine"]


@pytest.fixture
def failing_suite():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    data = TensorDataset(x, (x[:, 0] > 0).long())

    @register_task("records-tiny")
    def tiny(seed: int, quick: bool) -> Recipe:
        return Recipe(nn.Linear(3, 2), data,
                      lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"),
                      lambda m: {"accuracy": 50.0}, TrainConfig(budget="2steps"))

    @register_method("records-breaks")
    def breaks(recipe: Recipe) -> Recipe:
        raise RuntimeError("the method broke")

    register_suite(Suite("records-suite", tasks=["records-tiny"],
                         methods=["baseline", "records-breaks"]))
    yield
    TASKS.pop("records-tiny"), METHODS.pop("records-breaks"), SUITES.pop("records-suite")


def test_a_failing_run_keeps_the_finished_ones_and_resume_skips_them(tmp_path,
                                                                    failing_suite):
    with pytest.raises(RuntimeError, match="the method broke"):
        run_suite("records-suite", seeds=2, out=tmp_path)
    record = load_record(tmp_path / "result.json")
    assert record["status"] == "failed" and record["planned_runs"] == 4
    assert [(r["method"], r["seed"]) for r in record["runs"]] == [("baseline", 0)]
    assert record["error"] == ("records-tiny / records-breaks / seed 0: RuntimeError: the "
                               "method broke")
    done = run_suite("records-suite", seeds=2, methods=["baseline"], out=tmp_path / "b")
    assert done["status"] == "complete"
    part = {**done, "status": "stopped", "runs": done["runs"][:1]}
    write_record(part, tmp_path / "b" / "result.json")
    again = run_suite("records-suite", seeds=2, methods=["baseline"], out=tmp_path / "b",
                      resume=True)
    assert [r["seed"] for r in again["runs"]] == [0, 1]
    assert again["runs"][0]["curve"] == part["runs"][0]["curve"]  # kept, not run again
