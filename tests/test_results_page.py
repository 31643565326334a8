"""The results page, docs/benchmarks.md, checked against the results files and the modules
that point at it: short enough to read, every results file named, every named file present
(or marked as a run still to be committed), every section a module names present, no
workplace words, and every figure on it (and on docs/what-pays-off.md) recomputed from the
record its anchor names (`hasten.bench.anchors`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from hasten.bench.anchors import check_page
from hasten.bench.records import load_record

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
PAGES = (PAGE, ROOT / "docs" / "what-pays-off.md")
RESULTS = ROOT / "benchmarks" / "results"
PENDING = "figures added when the run is committed"
REFERENCE = re.compile(r'docs/benchmarks\.md(?:,\s*|\s*\(\s*)"([^"]+)"(?:\s+and\s+"([^"]+)")?')


def page_text() -> str:
    return PAGE.read_text(encoding="utf-8")


def headings() -> set[str]:
    return {line.lstrip("#").strip() for line in page_text().splitlines()
            if line.startswith("#")}


def module_references() -> list[tuple[str, str]]:
    found = []
    for folder in ("hasten", "scripts", "examples"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = " ".join(path.read_text(encoding="utf-8").split())
            for match in REFERENCE.finditer(text):
                found += [(str(path.relative_to(ROOT)), name) for name in match.groups() if name]
    return found


def test_page_is_under_500_lines() -> None:
    assert len(page_text().splitlines()) < 500


def test_every_results_file_is_named_on_the_page() -> None:
    text = page_text()
    missing = [p.name for p in sorted(RESULTS.glob("*.json")) if p.name not in text]
    assert missing == []


def test_every_named_results_file_exists_or_is_marked_pending() -> None:
    text = page_text()
    dated = r"([\w.-]+-\d{8}\.json)"
    pending = {m for line in text.splitlines() if PENDING in line
               for m in re.findall("benchmarks/results/" + dated, line)}
    named = set(re.findall("benchmarks/results/" + dated, text))
    named |= set(re.findall("`" + dated + "`", text))
    absent = sorted(n for n in named if not (RESULTS / n).exists() and n not in pending)
    assert absent == []
    # a pattern such as mt-en-de-*-20261129.json must match at least one file
    for pattern in re.findall(r"`([\w.*-]+\*[\w.*-]*\.json)`", text):
        assert list(RESULTS.glob(pattern)), pattern


def test_pending_sections_name_their_files() -> None:
    lines = [line for line in page_text().splitlines() if PENDING in line]
    assert all(line.startswith("Results file: benchmarks/results/") for line in lines)


def test_every_section_a_module_names_is_a_heading() -> None:
    references = module_references()
    assert len(references) > 20
    known = headings()
    assert [(path, name) for path, name in references if name not in known] == []


def test_no_workplace_words() -> None:
    text = page_text()
    assert re.findall(r"\b(?:session|issue|round)s?\b", text, flags=re.IGNORECASE) == []
    assert re.findall(r"#\d", text) == []


@functools.cache
def load(name: str) -> Mapping[str, Any]:
    """The record of a current results file (superseded ones, in a folder below, are not read)."""
    if Path(name).name != name:
        raise ValueError(f"{name}: not a current results file")
    return load_record(RESULTS / name)


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_every_figure_on_the_page_recomputes_from_its_record(page: Path) -> None:
    text = page_text() if page == PAGE else page.read_text(encoding="utf-8")
    assert check_page(text, load) == []
