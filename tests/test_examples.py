"""Every example runs, on a small budget, in a fresh process; the README shows their code."""

import importlib.util
import json
import math
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

EXAMPLES = ROOT / "examples"
README_SNIPPETS = ["plain_loop.py", "hf_trainer.py", "lightning_loop.py"]
LEVER_LOOPS = ["trainer_levers.py", "plain_loop_levers.py", "hf_trainer.py",
               "lightning_loop.py"]  # one lever list, four loops (docs/your-loop.md)


def run_example(name, *args, cwd=None, timeout=600):
    """Run examples/NAME with ARGS; returns the JSON summary its last line prints."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)],
                          cwd=cwd or ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def snippet(name):
    text = (EXAMPLES / name).read_text()
    return text.split("# [readme]\n", 1)[1].split("# [/readme]", 1)[0]


def test_readme_shows_the_examples_code_verbatim():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use it in your loop"):]
    section = section[:section.index("\n## ", 5)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks == [snippet(name) for name in README_SNIPPETS]


def test_the_loop_guide_shows_the_same_code():
    guide = (ROOT / "docs" / "your-loop.md").read_text()
    for name in [*README_SNIPPETS, *LEVER_LOOPS]:
        assert f"From `examples/{name}`:\n\n```python\n{snippet(name)}```" in guide, name


def test_every_example_is_tested():
    tested = {"plain_loop.py", "plain_loop_levers.py", "hf_trainer.py", "lightning_loop.py",
              "own_task.py", "trainer_levers.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_plain_loop_stops_on_a_steps_and_a_seconds_budget():
    steps = run_example("plain_loop.py", "25steps")
    assert steps["steps"] == 25 and steps["last_lr"] == 0.0 and steps["accuracy"] > 10
    seconds = run_example("plain_loop.py", "1.5s")
    assert seconds["train_seconds"] >= 1.5 and seconds["steps"] >= 1
    assert 0.0 <= seconds["last_lr"] < 3e-3


def test_every_snippet_runs_as_printed(tmp_path):
    """A snippet alone (its imports included) is a program: written to a file and run with a
    tiny budget, it ends with exit 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    for name in ["plain_loop.py", "trainer_levers.py"]:
        path = tmp_path / name
        path.write_text(snippet(name))
        proc = subprocess.run([sys.executable, str(path), "3steps"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (name, proc.stderr[-2000:])


@pytest.mark.parametrize("name", ["plain_loop_levers.py", "trainer_levers.py"])
def test_the_three_levers_act_in_a_plain_loop_and_in_the_trainer(name):
    out = run_example(name, "8steps")
    assert out["steps"] == 8
    # step 0 is primed (the first tenth of the budget: every row of the 64-row draw trains),
    # then each step scores 64 drawn rows and backpropagates the top 32
    assert out["examples_backpropagated"] == 64 + 7 * 32
    assert out["examples_forwarded"] == 64 + 7 * (64 + 32)


def cosine_with_warmup(p, warmup=0.06):
    if p < warmup:
        return p / warmup
    return 0.5 * (1 + math.cos(math.pi * (p - warmup) / (1 - warmup)))


@pytest.mark.slow
def test_hf_trainer_example_stops_on_a_steps_and_a_seconds_budget(tmp_path):
    steps = run_example("hf_trainer.py", "5steps", cwd=tmp_path)
    assert steps["steps"] == 5 and steps["last_lr"] == 0.0  # the schedule ended with it
    assert steps["examples_backpropagated"] < steps["examples_forwarded"]  # selection acted
    seconds = run_example("hf_trainer.py", "2s", cwd=tmp_path)
    assert seconds["train_seconds"] >= 2.0 and seconds["last_lr"] == 0.0


@pytest.mark.slow
def test_lightning_example_stops_on_a_steps_and_a_seconds_budget(tmp_path):
    steps = run_example("lightning_loop.py", "5steps", cwd=tmp_path)
    assert steps["steps"] == 5
    assert steps["examples_backpropagated"] < steps["examples_forwarded"]  # selection acted
    seconds = run_example("lightning_loop.py", "2s", cwd=tmp_path)
    assert seconds["train_seconds"] >= 2.0


def test_own_task_makes_a_recipe_that_trains(capsys):
    spec = importlib.util.spec_from_file_location("own_task", EXAMPLES / "own_task.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing it trains nothing and prints nothing
    assert capsys.readouterr().out == ""
    from hasten import Recipe, train

    recipe = module.make_recipe(seed=1, quick=True)
    assert isinstance(recipe, Recipe) and recipe.config.budget == "150steps"
    assert len(recipe.train_data) == 3200
    result = train(recipe.model, recipe.train_data, recipe.loss_fn, recipe.config,
                   evaluate=recipe.evaluate)
    assert result.steps == 150 and result.final > 70.0
    again = module.make_recipe(seed=1, quick=True)  # the same seed builds the same task
    assert again.train_data.tensors[0].equal(recipe.train_data.tensors[0])
