"""docs/extending.md says how to add a suite with its own option; its code block is run here
exactly as written, and the suite then runs through the command line with that option."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT

from hasten.bench.harness import METHODS, SUITES, TASKS
from hasten.cli import main

DOC = ROOT / "docs" / "extending.md"


def _section_code(heading: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, f"expected one python block under '## {heading}'"
    return blocks[0]


@pytest.fixture
def toy_suite():
    exec(compile(_section_code("A suite with its own option"), str(DOC), "exec"), {})
    yield
    TASKS.pop("toy"), METHODS.pop("toy-double-lr"), SUITES.pop("toy-suite")


def test_the_documented_suite_runs_with_its_own_option(toy_suite, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "toy-suite", "--help"])
    text = capsys.readouterr().out
    assert "--width WIDTH" in text and "a tiny model: the suite is a demonstration" in text
    out = tmp_path / "toy"
    assert main(["bench", "toy-suite", "--width", "8", "--seeds", "2", "--quiet",
                 "--out", str(out)]) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["options"] == {"width": 8} and record["status"] == "complete"
    assert [(r["method"], r["seed"]) for r in record["runs"]] == [
        ("baseline", 0), ("toy-double-lr", 0), ("baseline", 1), ("toy-double-lr", 1)]
    assert all(r["notes"]["width"] == 8 for r in record["runs"])
    assert record["runs"][1]["config"]["lr"] == 2 * record["runs"][0]["config"]["lr"]
    capsys.readouterr()
    assert main(["train", "--task", "digits", "--method", "toy-double-lr",
                 "--out", str(tmp_path / "x")]) == 2
    assert "method 'toy-double-lr' does not apply to task digits" in capsys.readouterr().err


def test_the_documented_command_names_exist():
    import hasten.cli.common as common

    text = DOC.read_text(encoding="utf-8")
    for name in ("add_settings", "settle", "check_out", "write_settings"):
        assert re.search(rf"`[\w.]*{name}`", text), name
        assert callable(getattr(common, name))


def test_the_documented_lever_trains_in_the_list_and_is_listed(capsys):
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import TensorDataset

    from hasten.core.recipe import Recipe
    from hasten.core.train_config import TrainConfig
    from hasten.levers import LEVERS, parse_lever, train

    exec(compile(_section_code("A lever"), str(DOC), "exec"), {})
    try:
        lever = parse_lever("loss-cap:cap=0.5")
        assert lever.spec() == "loss-cap:cap=0.5" and lever.kind == "data"
        x = torch.randn(64, 4)
        recipe = Recipe(nn.Linear(4, 2), TensorDataset(x, (x[:, 0] > 0).long()),
                        lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"), None,
                        TrainConfig(budget="6steps", micro_batch=16, quiet=True))
        result = train(recipe, levers=[lever, "sb-topk"])
        assert result.steps == 6 and lever.hook.capped > 0  # it capped some losses
        assert list(result.levers) == ["loss-cap:cap=0.5", "sb-topk"]  # its cost reported
        assert main(["list", "levers"]) == 0
        assert "loss-cap" in capsys.readouterr().out
    finally:
        LEVERS.pop("loss-cap")
