import json
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import timed_command  # noqa: E402

from hasten.bench.records import load_record  # noqa: E402


def test_limit_is_a_quarter_over_the_budget_plus_fifteen_seconds():
    assert timed_command.limit_seconds(60) == 90.0 and timed_command.limit_seconds(4) == 20.0


def test_a_timed_command_becomes_a_record_with_its_summary(tmp_path, capsys):
    summary, out = tmp_path / "summary.json", tmp_path / "timed.json"
    write = (f"import json; json.dump({{'steps': 7, 'stopped': 'budget', 'other': 1}}, "
             f"open({str(summary)!r}, 'w'))")
    assert timed_command.main(["--budget", "2", "--summary", str(summary), "--out", str(out),
                               "--repeats", "2", "--", sys.executable, "-c", write]) == 0
    record = load_record(out)
    assert record["source"]["layout"] == "record" and record["status"] == "complete"
    assert [r["seed"] for r in record["runs"]] == [0, 1]
    for run in record["runs"]:
        assert run["exit_code"] == 0 and run["limit_seconds"] == 17.5 and run["within_limit"]
        assert run["summary"] == {"steps": 7, "stopped": "budget"}
        assert run["final"] == run["wall_seconds"] > 0
    assert record["command"] == shlex.join([sys.executable, "-c", write])
    assert "run 2/2: exit 0" in capsys.readouterr().out


def test_a_failing_command_exits_one_and_no_command_is_refused(tmp_path):
    out = tmp_path / "timed.json"
    assert timed_command.main(["--budget", "1", "--out", str(out), "--",
                               sys.executable, "-c", "raise SystemExit(3)"]) == 1
    assert json.loads(out.read_text())["runs"][0]["exit_code"] == 3
    with pytest.raises(SystemExit) as e:
        timed_command.main(["--budget", "1", "--out", str(out)])
    assert e.value.code == 2


def test_the_record_pins_the_timed_command_not_the_timer():
    pins = timed_command.command_pinning(
        ["taskset", "-c", "1,3-4", "env", "OMP_NUM_THREADS=1", "hasten", "cram", "A=B"])
    assert pins["cpus"] == [1, 3, 4] and pins["env"]["OMP_NUM_THREADS"] == "1"
    assert "A" not in pins["env"] and pins["torch_threads"] is None
    assert pins["timer"]["cpus"] == timed_command.pinning()["cpus"]
    plain = timed_command.command_pinning(["hasten", "cram"])
    assert plain["cpus"] == plain["timer"]["cpus"]
