"""The README: its taste of the API runs as printed, its links lead somewhere (the results page
first), and every command has its section in docs/commands.md."""

import re

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT
from torch import nn
from torch.utils.data import TensorDataset

from hasten.cli import COMMANDS

README = (ROOT / "README.md").read_text()


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_the_taste_runs_as_printed(fake_clock, capsys):
    (code,) = re.findall(r"```python\n(.*?)```", _section(README, "A taste"), re.S)
    assert len(code.strip().splitlines()) == 3
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    dataset = TensorDataset(x, (x[:, 0] > 0).long())

    def per_example_loss(model, batch):
        fake_clock.sleep(4.0)  # every micro-batch takes 4 s: the 20 minutes are 300 steps
        return F.cross_entropy(model(batch[0]), batch[1], reduction="none")

    def my_eval(model):
        return {"accuracy": 100.0 * (model(x).argmax(1) == dataset.tensors[1]).float().mean()}

    torch.manual_seed(0)
    scope = {"model": nn.Linear(8, 2), "dataset": dataset, "per_example_loss": per_example_loss,
             "my_eval": my_eval}
    exec(code, scope)
    result = scope["result"]
    assert result.stopped == "budget" and result.steps == 300
    assert result.ledger["train"] == pytest.approx(1200.0)
    assert len(result.curve) == 10 and result.final == result.curve[-1][2] > 70.0  # chance: 50
    assert capsys.readouterr().out.startswith(f"{result.final} {result.work}")


def test_links_lead_to_files_and_the_results_page_comes_first():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert links and all((ROOT / link).exists() for link in links), links
    read_on = re.findall(r"\]\(([^)]+)\)", _section(README, "Read on"))
    assert read_on[0] == "docs/benchmarks.md"


def test_every_command_has_its_section_in_the_command_page():
    page = (ROOT / "docs" / "commands.md").read_text()
    titles = re.findall(r"^## `hasten ([a-z-]+)`$", page, re.M)
    assert sorted(titles) == sorted(COMMANDS)
    for link in re.findall(r"\]\(([a-z-]+\.md)(?:#[^)]*)?\)", page):
        assert (ROOT / "docs" / link).is_file(), link
