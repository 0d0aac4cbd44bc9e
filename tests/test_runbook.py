"""Runbook schema, templating and static validation."""

from __future__ import annotations

import datetime as dt
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
    with pytest.raises(ConfigError, match="does not exist"):
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
    with pytest.raises(ConfigError, match="expects an int"):
        rb.resolve_parameters(runbook, {"a": "seven", "where": "x"})
    with pytest.raises(ConfigError, match="must be one of"):
        rb.resolve_parameters(runbook, {"mode": "medium", "where": "x"})
    with pytest.raises(ConfigError, match="expects an int"):
        rb.resolve_parameters(runbook, {"a": True, "where": "x"})


def test_template_references() -> None:
    refs = rb.template_references("{{ steps.a.outputs.b | length > params.n }}")
    assert ("steps", "a", "outputs", "b") in refs and ("params", "n") in refs
    assert rb.template_references("steps.x.status == 'ok'", bare=True) == [("steps", "x", "status")]
    assert rb.template_references("plain text?") == []


# ----------------------------------------------------------------- issue 13: bad input

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

REFUSED = object()


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("s", "123", "123"),
        ("s", "[1, 2]", "[1, 2]"),
        ("s", "None", "None"),
        ("s", "1e999", "1e999"),
        ("s", "True", "True"),
        ("s", "{'a': 1}", "{'a': 1}"),
        ("i", "123", 123),
        ("i", "[1, 2]", REFUSED),
        ("i", "None", REFUSED),
        ("i", "1e999", REFUSED),
        ("i", "True", REFUSED),
        ("f", "123", 123.0),
        ("f", "1.5", 1.5),
        ("f", "[1, 2]", REFUSED),
        ("f", "None", REFUSED),
        ("f", "1e999", REFUSED),
        ("f", "nan", REFUSED),
        ("f", "True", REFUSED),
        ("b", "True", True),
        ("b", "false", False),
        ("b", "123", REFUSED),
        ("b", "None", REFUSED),
        ("b", "[1, 2]", REFUSED),
        ("l", "[1, 2]", [1, 2]),
        ("l", "123", REFUSED),
        ("l", "None", REFUSED),
        ("l", "True", REFUSED),
    ],
)
def test_declared_type_reaches_the_step(write_runbook, name: str, raw: str, expected) -> None:
    """A ``-p`` string becomes the declared type and a template passes it on unchanged."""
    runbook = rb.load(write_runbook(TYPED)).runbook
    if expected is REFUSED:
        with pytest.raises(ConfigError, match=f"parameter '{name}'"):
            rb.resolve_parameters(runbook, {name: raw})
        return
    resolved = rb.resolve_parameters(runbook, {name: raw})
    rendered = rb.render({"v": f"{{{{ params.{name} }}}}"}, {"params": resolved})["v"]
    assert rendered == expected and type(rendered) is type(expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-28", "2026-11-28"),
        ("2026-11-28T10:00:00+00:00", "2026-11-28T10:00:00+00:00"),
        (dt.date(2026, 11, 28), "2026-11-28"),  # what -f params.yaml gives for 2026-11-28
        ("", ""),
        ("2026-02-30", REFUSED),
        ("123", REFUSED),
        ("None", REFUSED),
        (20261128, REFUSED),
    ],
)
def test_date_parameters(write_runbook, raw, expected) -> None:
    runbook = rb.load(
        write_runbook(TYPED.replace("l: {type: list", "d: {type: date}\n  l: {type: list"))
    ).runbook
    if expected is REFUSED:
        with pytest.raises(ConfigError, match="parameter 'd'"):
            rb.resolve_parameters(runbook, {"d": raw})
        return
    assert rb.resolve_parameters(runbook, {"d": raw})["d"] == expected


def test_mixed_templates_are_strings() -> None:
    ctx = {"params": {"a": "1", "b": "2", "n": [1]}}
    assert rb.render("{{ params.a }}{{ params.b }}", ctx) == "12"
    assert rb.render("[{{ params.a }}]", ctx) == "[1]"
    assert rb.render("{{ params.n }}", ctx) == [1]


@pytest.mark.parametrize(
    ("spec", "raw", "message"),
    [
        ("{type: int, min: 1, max: 10000}", "0", "at least 1"),
        ("{type: int, min: 1, max: 10000}", "10001", "at most 10000"),
        ("{type: int, min: 0, max: 36500}", "99999999999999", "at most 36500"),
        ("{type: float, min: 0, max: 1}", "1.5", "at most 1"),
        ("{type: date}", "2026-02-30", "not a valid date"),
    ],
)
def test_parameter_bounds_refused_before_running(
    write_runbook, spec: str, raw: str, message: str
) -> None:
    runbook = rb.load(
        write_runbook(TYPED.replace('s: {type: str, default: ""}', f"s: {spec}"))
    ).runbook
    with pytest.raises(ConfigError, match=message) as info:
        rb.resolve_parameters(runbook, {"s": raw})
    assert info.value.exit_code == 2


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


def test_oversized_parameter_refused(write_runbook) -> None:
    runbook = rb.load(write_runbook(TYPED)).runbook
    with pytest.raises(ConfigError, match="limit is 64 KiB"):
        rb.resolve_parameters(runbook, {"s": "x" * 5_000_000})
    with pytest.raises(ConfigError, match="limit is 64 KiB"):
        rb.resolve_parameters(runbook, {"l": ["y" * 100] * 1000})
    assert rb.resolve_parameters(runbook, {"s": "x" * 60_000})["s"] == "x" * 60_000


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


def test_missing_runbook_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        rb.load(tmp_path / "nope.yaml")
    assert info.value.exit_code == 2


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


def test_sandbox_still_reads_underscore_keys_of_recorded_outputs() -> None:
    assert rb.unsafe_attributes("{{ steps.s.outputs._x }}") == []
    assert rb.render("{{ steps.s.outputs._x }}", {"steps": {"s": {"outputs": {"_x": 1}}}}) == 1


def test_loop_variables_are_not_unknown_names(write_runbook) -> None:
    text = GOOD.replace(
        'message: "total is {{ steps.first.outputs.total }}"',
        'message: "{% for n in params.mode %}{{ n }} {{ loop.index }}{% endfor %}'
        '{% set k = 2 %}{{ k }} {{ range(3) | list }}"',
    )
    assert problems_of(write_runbook, text) == []


def test_messages_use_the_right_article(write_runbook) -> None:
    runbook = rb.load(write_runbook(TYPED)).runbook
    with pytest.raises(ConfigError, match="expects an int"):
        rb.resolve_parameters(runbook, {"i": "seven"})
    with pytest.raises(ConfigError, match="expects a str") as info:  # -f with s: 123
        rb.resolve_parameters(runbook, {"s": 123})
    assert info.value.hint == 'quote it in YAML: s: "123"'
    problems = problems_of(
        write_runbook, TYPED.replace("i: {type: int, default: 0}", "i: {type: int, default: x}")
    )
    assert any("is not an int" in p for p in problems), problems
