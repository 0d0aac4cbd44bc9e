"""Runbook texts shared by the tests of opsbook.runbook (written with ``write_runbook``)."""

from __future__ import annotations

from opsbook import runbook as rb

GOOD = """
name: good
description: two steps and a gate
parameters:
  a: {type: int, default: 3, help: first number}
  mode: {type: enum, allowed: [fast, slow], default: fast}
  where: {type: path, required: true}
secrets:
  - {env: SOME_TOKEN, help: a token}
steps:
  - id: first
    notebook: notebooks/add.ipynb
    parameters: {x: "{{ params.a }}", y: 4, items: [1, 2], label: "{{ params.mode }}"}
  - id: gate
    gate: approval
    message: "total is {{ steps.first.outputs.total }}"
  - id: second
    notebook: notebooks/chart.ipynb
    when: "{{ steps.first.outputs.total > 5 }}"
    parameters: {n: "{{ steps.first.outputs.total }}"}
    on_failure: undo
  - id: undo
    notebook: notebooks/add.ipynb
"""

TYPED = """
name: typed
parameters:
  s: {type: str, default: ""}
  i: {type: int, default: 0}
  f: {type: float, default: 0.0}
  b: {type: bool, default: false}
  l: {type: list, default: []}
steps:
  - id: one
    notebook: notebooks/add.ipynb
"""


def problems_of(write_runbook, text: str) -> list[str]:
    return rb.validate(rb.load(write_runbook(text)))
