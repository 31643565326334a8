"""Fuzzed input never gives a traceback: every reader of user input (IDX files, text and
JSON-lines corpora, GLUE TSV, BLiMP, parallel MT files, distilled and pruned training sets,
checkpoints, model folders, config files, budget strings and the command line itself)
answers random and mutated bytes with a result or a one-line HastenError, never another
exception or a hang; every public API entry point answers random types and shapes per
argument with a result or one ConfigError line (fuzz_api). scripts/reliability_figures.py
runs the same properties on more examples and counts them."""

from __future__ import annotations

import fuzz_api  # noqa: F401 - registers the API entry points
import fuzz_checkpoints  # noqa: F401 - registers the checkpoint property
import fuzz_cli  # noqa: F401 - registers the command-line property
import fuzz_readers  # noqa: F401 - registers the file and string readers
import pytest
from fuzz_props import READERS, SLOW_READERS, TEST_EXAMPLES, run_property

EXPECTED = {"idx-gz", "text-corpus", "glue-tsv", "blimp-jsonl", "mt-parallel",
            "distilled-set", "pruned-set", "model-folder", "checkpoint", "config-file",
            "budget-string", "cli-arguments", "api-train", "api-budget", "api-samplers",
            "api-selective-backprop", "api-recipe-callbacks", "api-levers"}


def test_every_reader_has_a_property():
    assert set(READERS) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fuzzed_input_gives_a_result_or_one_line_error(name):
    examples = SLOW_READERS.get(name, TEST_EXAMPLES)
    tally = run_property(name, examples)
    assert tally.failures == 0, tally.examples
    assert tally.cases >= examples // 2
