"""Runbook schema and loading (opsbook.runbook.schema)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook import runbook as rb
from opsbook.errors import ConfigError, RunbookError
from runbookkit import GOOD


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  - id: gate\n", "  - id: gate\n    colour: red\n", "unknown key 'colour'"),
        ("type: int", "type: integer", "parameters.a.type"),
        ("{env: SOME_TOKEN", "{env: some-token", "not an environment variable name"),
        ("  - id: first", "  - id: 'first step'", "must be an identifier"),
    ],
)
def test_schema_errors(write_runbook, old, new, expected) -> None:
    with pytest.raises(RunbookError) as info:
        rb.load(write_runbook(GOOD.replace(old, new, 1)))
    assert expected in str(info.value)


def test_missing_file_and_bad_yaml(write_runbook, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        rb.load(tmp_path / "nope.yaml")
    with pytest.raises(RunbookError, match="not valid YAML"):
        rb.load(write_runbook("name: [unclosed"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout_s", "-5"),
        ("timeout_s", "0"),
        ("timeout_s", ".inf"),
        ("retries", "-1"),
        ("retries", "11"),
    ],
)
def test_numeric_bounds_in_the_schema(write_runbook, field: str, value: str) -> None:
    text = GOOD.replace("    on_failure: undo", f"    on_failure: undo\n    {field}: {value}")
    with pytest.raises(RunbookError, match=f"step 'second' {field}"):
        rb.load(write_runbook(text))


def test_missing_runbook_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        rb.load(tmp_path / "nope.yaml")
    assert info.value.exit_code == 2
