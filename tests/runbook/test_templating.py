"""Sandboxed, type-keeping templates and conditions (opsbook.runbook.templating)."""

from __future__ import annotations

import pytest

from opsbook import runbook as rb
from opsbook.errors import RunbookError


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


def test_template_references() -> None:
    refs = rb.template_references("{{ steps.a.outputs.b | length > params.n }}")
    assert ("steps", "a", "outputs", "b") in refs and ("params", "n") in refs
    assert rb.template_references("steps.x.status == 'ok'", bare=True) == [("steps", "x", "status")]
    assert rb.template_references("plain text?") == []


def test_mixed_templates_are_strings() -> None:
    ctx = {"params": {"a": "1", "b": "2", "n": [1]}}
    assert rb.render("{{ params.a }}{{ params.b }}", ctx) == "12"
    assert rb.render("[{{ params.a }}]", ctx) == "[1]"
    assert rb.render("{{ params.n }}", ctx) == [1]


def test_sandbox_still_reads_underscore_keys_of_recorded_outputs() -> None:
    assert rb.unsafe_attributes("{{ steps.s.outputs._x }}") == []
    assert rb.render("{{ steps.s.outputs._x }}", {"steps": {"s": {"outputs": {"_x": 1}}}}) == 1
