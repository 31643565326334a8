"""hasten.core.errors.run_script: a script's exit code is its main's; a HastenError is one
line on stderr and the error's exit code, no traceback."""

from __future__ import annotations

import pytest

from hasten.core.errors import ConfigError, run_script


def test_run_script_exits_with_mains_code_or_one_line_and_the_errors_code(capsys):
    def bad() -> int:
        raise ConfigError("no such file x.json")

    with pytest.raises(SystemExit) as done:
        run_script(bad)
    assert done.value.code == 2 and capsys.readouterr().err == \
        "hasten: error: no such file x.json\n"
    with pytest.raises(SystemExit) as done:
        run_script(lambda: 3)
    assert done.value.code == 3 and capsys.readouterr().err == ""
