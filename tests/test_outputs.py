"""Declared notebook outputs (opsbook.outputs) and opsbook.record_all."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

import opsbook
from opsbook import outputs
from opsbook.errors import OutputError
from opsbook.outputs import OutputSpec
from opsbook.record import local_results

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("type_", "value", "accepted"),
    [
        ("int", 3, True),
        ("int", True, False),  # a bool is not a count
        ("int", 3.0, False),
        ("float", 3, True),  # an int fits a float
        ("float", 2.5, True),
        ("float", False, False),
        ("str", "x", True),
        ("str", None, False),
        ("str | null", None, True),
        ("bool", False, True),
        ("bool", 0, False),
        ("list", [], True),
        ("list", {}, False),
        ("dict", {}, True),
        ("dict | list | null", [1], True),
        ("any", object(), True),
    ],
)
def test_a_spec_accepts_exactly_its_types(type_: str, value: object, accepted: bool) -> None:
    assert OutputSpec(type_).accepts(value) is accepted


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({}, None),
        ({"opsbook": {}}, None),
        ({"opsbook": {"outputs": {}}}, {}),
        ({"opsbook": {"outputs": {"n": "int"}}}, {"n": OutputSpec("int")}),
        (
            {"opsbook": {"outputs": {"n": {"type": "int", "description": "how many"}}}},
            {"n": OutputSpec("int", "how many")},
        ),
    ],
)
def test_declared_reads_the_metadata(metadata: dict, expected: object) -> None:
    assert outputs.declared(metadata) == expected


@pytest.mark.parametrize(
    ("outputs_value", "message"),
    [
        (["n"], "must map each output name to a spec"),
        ({"not-an-id": "int"}, "'not-an-id' must be an identifier"),
        ({"n": {"type": "int", "unit": "s"}}, "a spec is {type, description}"),
        ({"n": 3}, "a spec is {type, description}"),
    ],
)
def test_a_malformed_declaration_is_refused(outputs_value: object, message: str) -> None:
    with pytest.raises(outputs.DeclarationError, match=message.replace("{", r"\{")):
        outputs.declared({"opsbook": {"outputs": outputs_value}})


def test_unknown_type_names_are_named() -> None:
    assert outputs.type_problems(OutputSpec("int | integer")) == [
        "type 'integer' is unknown (use str, int, float, bool, list, dict, null, any, "
        "joined with |)"
    ]
    assert outputs.type_problems(OutputSpec("str | null")) == []


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        ({"n": 1, "label": "x"}, []),
        ({"n": 1, "label": None}, []),
        ({"label": "x"}, ["output 'n' (int) was never recorded"]),
        ({"n": "1", "label": "x"}, ["output 'n' should be int but str was recorded (\"1\")"]),
        (
            {"n": 1, "label": "x", "extra": 2},
            [
                "output 'extra' was recorded but is not declared in the notebook's "
                "metadata.opsbook.outputs"
            ],
        ),
    ],
)
def test_mismatches_name_output_expected_and_actual(recorded: dict, expected: list) -> None:
    declaration = {"n": OutputSpec("int"), "label": OutputSpec("str | null")}
    assert outputs.mismatches(declaration, recorded) == expected


def test_record_all_records_only_what_the_run_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(outputs.ENV_VAR, json.dumps({"ra_total": "int", "ra_label": "str"}))
    got = opsbook.record_all({"ra_total": 3, "ra_unused": 1}, ra_label="sum")
    assert got == {"ra_total": 3, "ra_label": "sum"}
    assert "ra_unused" not in local_results()


def test_record_all_raises_after_recording_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(outputs.ENV_VAR, json.dumps({"rb_n": "int", "rb_ok": "bool"}))
    with pytest.raises(OutputError) as caught:
        opsbook.record_all(rb_n="three")
    assert "output 'rb_n' should be int but str was recorded" in caught.value.message
    assert "output 'rb_ok' (bool) was never recorded" in caught.value.message
    assert local_results()["rb_n"] == "three"


def test_record_all_outside_a_run_records_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(outputs.ENV_VAR, raising=False)
    assert opsbook.record_all({"rc_a": 1}, rc_b=[2]) == {"rc_a": 1, "rc_b": [2]}


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_every_notebook_declares_its_outputs_and_records_them_in_one_call(name: str) -> None:
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    declaration = outputs.declared(dict(nb.metadata))
    assert declaration, f"{name} declares no outputs"
    assert all(outputs.type_problems(spec) == [] for spec in declaration.values())
    assert all(spec.description for spec in declaration.values())
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert code.count("opsbook.record_all(") == 1
    assert "opsbook.record(" not in code
