import json
import os
import subprocess
import sys
import textwrap

from conftest import ROOT

from hasten import Budget
from hasten.integrations.clock import share_budget

SCRIPT = textwrap.dedent("""
    import json, sys
    import torch.distributed as dist
    from hasten import Budget
    from hasten.integrations.clock import share_budget

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    clock = Budget("10s")
    clock.ledger.seconds["train"] = 1.0 + 2.0 * rank  # rank 1's clock ran 2 s longer
    steps = Budget("5steps")
    steps.work.steps = 5 if rank == 1 else 3  # only rank 1 has spent its budget
    out = {"clock_spent": share_budget(clock), "clock": clock.used(),
           "steps_spent": share_budget(steps), "steps": steps.used()}
    with open(f"{sys.argv[1]}/rank{rank}.json", "w") as f:
        json.dump(out, f)
    dist.destroy_process_group()
""")


def test_processes_share_the_largest_clock_and_stop_together(tmp_path):
    script = tmp_path / "share.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(script), str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got == {"clock_spent": False, "clock": 3.0, "steps_spent": True,
                       "steps": 5.0 if rank == 1 else 3.0}


def test_one_process_keeps_its_own_budget():
    budget = Budget("2steps")
    budget.work.steps = 2
    assert share_budget(budget) is True and budget.used() == 2
