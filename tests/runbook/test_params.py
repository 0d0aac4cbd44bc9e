"""Run parameters: declared types, allowed values, bounds, dates, size (opsbook.runbook.params)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from opsbook import runbook as rb
from opsbook.errors import ConfigError
from runbookkit import GOOD, TYPED, problems_of

REFUSED = object()


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


def test_oversized_parameter_refused(write_runbook) -> None:
    runbook = rb.load(write_runbook(TYPED)).runbook
    with pytest.raises(ConfigError, match="limit is 64 KiB"):
        rb.resolve_parameters(runbook, {"s": "x" * 5_000_000})
    with pytest.raises(ConfigError, match="limit is 64 KiB"):
        rb.resolve_parameters(runbook, {"l": ["y" * 100] * 1000})
    assert rb.resolve_parameters(runbook, {"s": "x" * 60_000})["s"] == "x" * 60_000


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


@pytest.mark.parametrize(
    ("value", "type_name", "fits"),
    [
        (True, "int", False),  # a bool is not an int here
        (False, "float", False),
        (True, "bool", True),
        (3, "float", True),
        (3.5, "int", False),
        (None, "int", True),  # not given
        ("x", "enum", True),
        ([1], "dict", False),
        ({"a": 1}, "no-such-type", True),
    ],
)
def test_value_fits_answers_a_bool(value: object, type_name: str, fits: bool) -> None:
    from opsbook.runbook.params import value_fits

    assert value_fits(value, type_name) is fits


def test_coerce_cli_value_refuses_or_keeps_text_exactly() -> None:
    from opsbook.runbook.params import coerce_cli_value
    from opsbook.runbook.schema import ParamSpec

    for type_name, raw in (("bool", "maybe"), ("int", "x"), ("float", "1,5")):
        with pytest.raises(ConfigError) as info:
            coerce_cli_value(raw, ParamSpec(type=type_name), "p")
        article = "an" if type_name == "int" else "a"
        assert info.value.message == f"parameter 'p' expects {article} {type_name}, got {raw!r}"
    for type_name in ("str", "path", "date"):  # text stays text
        assert coerce_cli_value("2026-11-28", ParamSpec(type=type_name), "p") == "2026-11-28"


def test_check_value_edges() -> None:
    from opsbook.runbook.params import MAX_PARAM_BYTES, check_value
    from opsbook.runbook.schema import ParamSpec

    # an optional parameter left unset passes whatever its allowed values and bounds
    check_value("p", ParamSpec(type="enum", allowed=["a"]), None)
    check_value("p", ParamSpec(type="int", min=1, max=5), None)
    # "quote it" is the hint for a number given to a text parameter only
    with pytest.raises(ConfigError) as info:
        check_value("p", ParamSpec(type="float"), True)
    assert (info.value.message, info.value.hint) == (
        "parameter 'p' expects a float, got True",
        None,
    )
    with pytest.raises(ConfigError) as info:
        check_value("p", ParamSpec(type="str"), 5)
    assert info.value.hint == 'quote it in YAML: p: "5"'
    # the size limit: exactly MAX_PARAM_BYTES of JSON passes, one byte more does not
    check_value("p", ParamSpec(type="str"), "x" * (MAX_PARAM_BYTES - 2))  # plus 2 quotes
    with pytest.raises(ConfigError) as info:
        check_value("p", ParamSpec(type="str"), "x" * (MAX_PARAM_BYTES - 1))
    assert info.value.message == "parameter 'p' is 65,537 bytes; the limit is 64 KiB per parameter"


def test_unknown_parameter_of_a_runbook_without_parameters(write_runbook) -> None:
    runbook = rb.load(write_runbook("name: bare\nsteps:\n  - id: s\n    gate: approval\n")).runbook
    with pytest.raises(ConfigError) as info:
        rb.resolve_parameters(runbook, {"x": 1})
    assert info.value.message == "runbook 'bare' has no parameter 'x'"
    assert info.value.hint == "declared parameters: none"
