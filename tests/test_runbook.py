"""Runbook schema, templating and static validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook import runbook as rb
from opsbook.errors import ConfigError, RunbookError

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


def problems_of(write_runbook, text: str) -> list[str]:
    return rb.validate(rb.load(write_runbook(text)))


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
    with pytest.raises(RunbookError, match="does not exist"):
        rb.load(tmp_path / "nope.yaml")
    with pytest.raises(RunbookError, match="not valid YAML"):
        rb.load(write_runbook("name: [unclosed"))


def test_render_keeps_types() -> None:
    ctx = {
        "params": {"n": 2, "names": ["a", "b"]},
        "steps": {"s": {"outputs": {"ok": False, "count": 3}, "status": "succeeded"}},
    }
    assert rb.render("{{ params.n + 1 }}", ctx) == 3
    assert rb.render("{{ params.names }}", ctx) == ["a", "b"]
    assert rb.render("{{ steps.s.outputs.ok }}", ctx) is False
    assert rb.render({"x": ["{{ steps.s.outputs.count }}", "plain"]}, ctx) == {"x": [3, "plain"]}
    assert rb.render("n={{ params.n }}", ctx) == "n=2"
    with pytest.raises(RunbookError, match="does not exist"):
        rb.render("{{ steps.s.outputs.missing }}", ctx)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("{{ steps.s.outputs.ok }}", False),
        ("steps.s.outputs.count > 2", True),
        ("{{ steps.s.outputs.count > 5 }}", False),
        ("not steps.s.outputs.ok", True),
        ("{{ 'false' }}", False),
        ("{{ steps.s.status == 'succeeded' }}", True),
    ],
)
def test_conditions(expr: str, expected: bool) -> None:
    ctx = {"steps": {"s": {"outputs": {"ok": False, "count": 3}, "status": "succeeded"}}}
    assert rb.evaluate_condition(expr, ctx) is expected


def test_resolve_parameters(write_runbook, tmp_path: Path) -> None:
    runbook = rb.load(write_runbook(GOOD)).runbook
    resolved = rb.resolve_parameters(runbook, {"a": "7", "where": "x"}, base=tmp_path)
    assert resolved == {"a": 7, "mode": "fast", "where": str(tmp_path / "x")}
    with pytest.raises(ConfigError, match="has no parameter 'b'"):
        rb.resolve_parameters(runbook, {"b": 1, "where": "x"})
    with pytest.raises(ConfigError, match="needs parameter 'where'"):
        rb.resolve_parameters(runbook, {})
    with pytest.raises(ConfigError, match="expects a int"):
        rb.resolve_parameters(runbook, {"a": "seven", "where": "x"})
    with pytest.raises(ConfigError, match="must be one of"):
        rb.resolve_parameters(runbook, {"mode": "medium", "where": "x"})
    with pytest.raises(ConfigError, match="expects a int"):
        rb.resolve_parameters(runbook, {"a": True, "where": "x"})


def test_template_references() -> None:
    refs = rb.template_references("{{ steps.a.outputs.b | length > params.n }}")
    assert ("steps", "a", "outputs", "b") in refs and ("params", "n") in refs
    assert rb.template_references("steps.x.status == 'ok'", bare=True) == [("steps", "x", "status")]
    assert rb.template_references("plain text?") == []
