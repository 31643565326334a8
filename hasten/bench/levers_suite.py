"""The `levers` suite: any lever list on any task, side by side with the task's own recipe.

    hasten bench levers --tasks my_task.py:make_recipe \
        --methods baseline,infobatch,sb-topk,infobatch+sb-topk --seeds 3

Each method is `baseline` or a lever list (`hasten list levers`; `+` joins levers, settings
after a colon: `infobatch:prune=0.3,anneal=0.9`); each lever checks what it needs from the
task and refuses in one line what is missing. Tasks default to `digits` (embedded data) so
`hasten bench levers --quick` runs anywhere. The target is the baseline's median final less
0.5 points. Where it is shown: docs/your-loop.md ("Levers on your own task").
"""

from __future__ import annotations

from hasten.bench.harness import Suite, register_suite

register_suite(Suite(
    name="levers", tasks=["digits"],
    methods=["baseline", "infobatch", "sb-topk", "infobatch+sb-topk"], margin=0.5,
    description="any lever list on any task (--tasks, --methods baseline,L1,L1+L2)"))
