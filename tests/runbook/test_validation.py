"""Static validation of runbooks (opsbook.runbook.validation)."""

from __future__ import annotations

import pytest

from opsbook import runbook as rb
from opsbook.errors import RunbookError
from runbookkit import GOOD, TYPED, problems_of


def test_good_runbook_validates(write_runbook) -> None:
    loaded = rb.load(write_runbook(GOOD))
    assert rb.validate(loaded) == []
    assert loaded.runbook.rollback_step_ids == {"undo"}
    assert loaded.root == loaded.path.parent.parent


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("y: 4", "why: 4", "parameter 'why' is not declared in notebooks/add.ipynb"),
        ("y: 4", 'y: "four"', "parameter 'y' gets 'four' (str) but the notebook declares int"),
        (
            "items: [1, 2]",
            "items: 3",
            "parameter 'items' gets 3 (int) but the notebook declares list",
        ),
        (
            "notebooks/chart.ipynb",
            "notebooks/nope.ipynb",
            "notebook notebooks/nope.ipynb not found",
        ),
        (
            '{{ steps.first.outputs.total }}"}',
            '{{ steps.first.outputs.totl }}"}',
            "step 'first' never records 'totl'",
        ),
        ("{{ params.a }}", "{{ params.b }}", "runbook declares no such parameter"),
        (
            'message: "total is {{ steps.first',
            'message: "total is {{ steps.second',
            "step 'second', which is not an earlier step",
        ),
        (
            "{{ steps.first.outputs.total > 5 }}",
            "{{ steps.first.outputs.total > }}",
            "template syntax error",
        ),
        ("on_failure: undo", "on_failure: nowhere", "on_failure 'nowhere' is neither"),
        (
            'label: "{{ params.mode }}"',
            'label: "{{ params.a }}"',
            "takes runbook parameter 'a' (int) but the notebook declares str",
        ),
        ("{{ params.a }}", "{{ secrets.token }}", "template names 'secrets.token'"),
    ],
)
def test_validation_names_file_step_and_parameter(write_runbook, old, new, expected) -> None:
    assert old in GOOD
    problems = problems_of(write_runbook, GOOD.replace(old, new, 1))
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("rb") for p in problems)  # each names the file


def test_bounds_checked_in_the_schema(write_runbook) -> None:
    problems = problems_of(
        write_runbook, TYPED.replace("i: {type: int, default: 0}", "i: {type: int, min: 5, max: 1}")
    )
    assert any("min 5 is greater than max 1" in p for p in problems), problems
    problems = problems_of(
        write_runbook,
        TYPED.replace("i: {type: int, default: 0}", "i: {type: int, default: 0, min: 1}"),
    )
    assert any("default of parameter 'i' must be at least 1, got 0" in p for p in problems), (
        problems
    )
    problems = problems_of(
        write_runbook, TYPED.replace("l: {type: list, default: []}", "l: {type: list, max: 3}")
    )
    assert any("min/max apply to int and float" in p for p in problems), problems


def test_on_failure_cycle_refused(write_runbook) -> None:
    problems = problems_of(
        write_runbook,
        """
        name: cycle
        steps:
          - id: a
            notebook: notebooks/add.ipynb
            on_failure: b
          - id: b
            notebook: notebooks/add.ipynb
            on_failure: a
        """,
    )
    assert any("on_failure cycle a -> b -> a" in p for p in problems), problems


def test_rollback_step_on_the_normal_path_refused(write_runbook) -> None:
    problems = problems_of(
        write_runbook,
        """
        name: onlypath
        steps:
          - id: a
            notebook: notebooks/add.ipynb
            on_failure: b
          - id: b
            notebook: notebooks/add.ipynb
          - id: c
            notebook: notebooks/add.ipynb
            parameters: {x: "{{ steps.b.outputs.total }}"}
        """,
    )
    assert any("'b' runs only as the rollback of 'a'" in p for p in problems), problems


def test_rollback_to_a_gate_refused(write_runbook) -> None:
    problems = problems_of(
        write_runbook,
        """
        name: gaterollback
        steps:
          - id: a
            notebook: notebooks/add.ipynb
            on_failure: g
          - id: g
            gate: approval
        """,
    )
    assert any("on_failure names the approval gate 'g'" in p for p in problems), problems


def test_check_file_lists_schema_and_semantic_problems(write_runbook) -> None:
    text = (
        GOOD.replace("  - id: gate\n", "  - id: gate\n    colour: red\n")
        .replace("y: 4", "why: 4")
        .replace("{{ params.a }}", "{{ params.b }}")
    )
    problems = rb.check_file(write_runbook(text))
    assert any("unknown key 'colour'" in p for p in problems), problems
    assert any("parameter 'why' is not declared" in p for p in problems), problems
    assert any("declares no such parameter" in p for p in problems), problems


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ params.a.__class__ }}",
        "{{ params['__class__'] }}",
        "{{ run.id.__len__() }}",
    ],
)
def test_sandbox_refuses_python_internals(write_runbook, template: str) -> None:
    problems = problems_of(write_runbook, GOOD.replace("{{ params.mode }}", template))
    assert any("Python internals" in p for p in problems), problems
    with pytest.raises(RunbookError, match="unsafe|internals"):
        rb.render(template, {"params": {"a": 1}, "run": {"id": "x"}})


def test_loop_variables_are_not_unknown_names(write_runbook) -> None:
    text = GOOD.replace(
        'message: "total is {{ steps.first.outputs.total }}"',
        'message: "{% for n in params.mode %}{{ n }} {{ loop.index }}{% endfor %}'
        '{% set k = 2 %}{{ k }} {{ range(3) | list }}"',
    )
    assert problems_of(write_runbook, text) == []
