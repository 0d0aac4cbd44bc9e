"""The runbooks stay free of repeated parameter lines (benchmarks/runbook_repetition.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location(
    "runbook_repetition", ROOT / "benchmarks" / "runbook_repetition.py"
)
assert _SPEC is not None and _SPEC.loader is not None
repetition_script = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(repetition_script)


def test_counts_lines_of_parameters_and_with_blocks_only() -> None:
    text = """
parameters:
  a: {type: int}
defaults:
  parameters:
    x: "{{ params.a }}"
steps:
  - id: one
    parameters:
      x: "{{ params.a }}"
      y: 1
    timeout_s: 5
  - id: two
    uses: runbooks/other.yaml
    with:
      # a comment is not a line of the block
      y: 1
"""
    assert repetition_script.parameter_lines(text) == [
        'x: "{{ params.a }}"',
        'x: "{{ params.a }}"',
        "y: 1",
        "y: 1",
    ]
    assert repetition_script.repetition(text) == (4, 4)


def test_the_p0_runbook_repeats_no_parameter_line() -> None:
    text = (ROOT / "runbooks" / "p0-platform-hardening.yaml").read_text(encoding="utf-8")
    repeated, total = repetition_script.repetition(text)
    assert (repeated, total) == (0, 18)
