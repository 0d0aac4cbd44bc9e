"""Checklist: what a gate needs, as a Markdown task list and rows."""

from __future__ import annotations

import pytest

from opsbook.checklist import Check, Checklist


def _list(*oks: bool | None) -> Checklist:
    return Checklist("ship it", [Check(f"c{i}", ok, f"d{i}") for i, ok in enumerate(oks)])


@pytest.mark.parametrize(
    ("oks", "ok", "failing", "look"),
    [
        ((True, True), True, [], []),
        ((True, None), True, [], ["c1"]),
        ((False, True, None), False, ["c0"], ["c2"]),
        ((), True, [], []),
    ],
)
def test_ok_failing_and_to_look_at(oks, ok, failing, look):
    checklist = _list(*oks)
    assert checklist.ok is ok
    assert [c.what for c in checklist.failing] == failing
    assert [c.what for c in checklist.to_look_at] == look


def test_markdown_marks_each_check_and_warns_on_failures():
    assert _list(True, False, None).markdown() == (
        "**Before approving: ship it**\n\n"
        "- [x] c0: d0\n- [ ] c1: d1\n- [?] c2: d2\n\n"
        "**1 check(s) fail: do not approve as is.**"
    )
    assert _list(True)._repr_markdown_() == "**Before approving: ship it**\n\n- [x] c0: d0"
    assert Check("bare", True).line() == "- [x] bare"


def test_rows_are_json_ready():
    assert _list(True, None).rows() == [
        {"check": "c0", "ok": True, "detail": "d0"},
        {"check": "c1", "ok": None, "detail": "d1"},
    ]
