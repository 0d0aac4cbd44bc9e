"""One case per validation rule, each with the complete list of problems it yields.

Every case edits the good runbook of ``runbookkit`` in one place; the expected list is the
whole answer (nothing more is reported), so a rule that stops firing, fires twice or
fires on a neighbour fails here.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from opsbook import runbook as rb
from opsbook.errors import ConfigError
from opsbook.runbook import validation
from runbookkit import GOOD, TYPED

NAME = "rules.yaml"
P = f"{NAME}: "

SECOND_N = 'parameters: {n: "{{ steps.first.outputs.total }}"}'
WHEN = 'when: "{{ steps.first.outputs.total > 5 }}"'
GATE = "    gate: approval\n"
UNDO = "  - id: undo\n    notebook: notebooks/add.ipynb\n"
A_SPEC = "a: {type: int, default: 3, help: first number}"


def _problems(write_runbook, text: str) -> list[str]:
    return rb.validate(rb.load(write_runbook(text, name=NAME)))


def _edit(*pairs: tuple[str, str]) -> str:
    text = GOOD
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


RULES = [
    # step ids and on_failure
    (
        [(UNDO, UNDO + "  - id: first\n    notebook: notebooks/add.ipynb\n")],
        ["step 'first': duplicate step id (ids must be unique)"],
    ),
    (
        [("on_failure: undo", "on_failure: nowhere")],
        [
            "step 'second': on_failure 'nowhere' is neither abort, continue nor a step id "
            "(known: first, gate, second, undo)"
        ],
    ),
    (
        [("on_failure: undo", "on_failure: second")],
        ["step 'second': on_failure cannot name the step itself"],
    ),
    (
        [("on_failure: undo", "on_failure: gate")],
        [
            "step 'second': on_failure names the approval gate 'gate'; a rollback step runs "
            "a notebook"
        ],
    ),
    ([("on_failure: undo", "on_failure: continue")], []),
    ([("on_failure: undo", "on_failure: abort")], []),
    # approval gates
    (
        [(GATE, GATE + "    notebook: notebooks/add.ipynb\n")],
        ["step 'gate': an approval gate takes a message, not a notebook"],
    ),
    (
        [(GATE, GATE + "    parameters: {x: 1}\n")],
        ["step 'gate': an approval gate takes a message, not a notebook"],
    ),
    (
        [(GATE, GATE + "    min_approvals: 3\n    approvers: [ann, bob, ann]\n")],
        ["step 'gate': min_approvals=3 but only 2 distinct approvers are allowed"],
    ),
    ([(GATE, GATE + "    min_approvals: 2\n    approvers: [ann, bob]\n")], []),
    ([(GATE, GATE + "    min_approvals: 2\n")], []),  # anyone may approve
    (
        [(UNDO, UNDO + "    approvers: [ann]\n")],
        ["step 'undo': min_approvals and approvers belong to approval gates"],
    ),
    (
        [(UNDO, UNDO + "    min_approvals: 2\n    parameters: {nope: 1}\n")],
        [
            "step 'undo': min_approvals and approvers belong to approval gates",
            "step 'undo': parameter 'nope' is not declared in notebooks/add.ipynb's parameters "
            "cell (declared: items, label, x, y); fix the name or add it there",
        ],
    ),
    (
        [(UNDO, "  - id: undo\n")],
        ["step 'undo': needs `notebook:` (or `gate: approval`)"],
    ),
    # templates: steps, run, step, params
    (
        [(WHEN, "when: \"{{ steps.nope.status == 'ok' }}\"")],
        [
            "step 'second' when: template refers to step 'nope', which is not an earlier step "
            "(earlier steps: first, gate)"
        ],
    ),
    (  # a bare when: (no braces) is an expression too; a bare message is plain text
        [
            (WHEN, "when: \"steps.nope.status == 'ok'\""),
            ("total is {{", "see steps.nope, total is {{"),
        ],
        [
            "step 'second' when: template refers to step 'nope', which is not an earlier step "
            "(earlier steps: first, gate)"
        ],
    ),
    (
        [(WHEN, "when: \"{{ steps.second.status == 'ok' }}\"")],
        [
            "step 'second' when: template refers to step 'second', which is this step itself "
            "(earlier steps: first, gate)"
        ],
    ),
    (
        [(SECOND_N, 'parameters: {n: "{{ steps.second.outputs.points }}"}')],
        [
            "step 'second' parameter 'n': template refers to step 'second', which is this step "
            "itself (earlier steps: first, gate)"
        ],
    ),
    (
        [(SECOND_N, 'parameters: {n: "{{ steps.first }}"}')],
        [
            "step 'second' parameter 'n': 'steps.first' should be steps.<id>.outputs.<name> or "
            "steps.<id>.status"
        ],
    ),
    (  # a rollback step named without .outputs: both problems
        [(SECOND_N, 'parameters: {n: "{{ steps.undo }}"}')],
        [
            "step 'second' parameter 'n': 'steps.undo' should be steps.<id>.outputs.<name> or "
            "steps.<id>.status",
            "step 'second' parameter 'n': uses 'steps.undo' but 'undo' runs only as the "
            "rollback of 'second' (on_failure), never on the normal path",
        ],
    ),
    (  # the whole steps dict: no step named, nothing to look up
        [(SECOND_N, 'parameters: {n: "{{ steps }}"}')],
        [
            "step 'second' parameter 'n': 'steps' should be steps.<id>.outputs.<name> or "
            "steps.<id>.status"
        ],
    ),
    (
        [(SECOND_N, 'parameters: {n: "{{ steps.first.result }}"}')],
        ["step 'second' parameter 'n': 'steps.first.result': a step has `outputs` and `status`"],
    ),
    (
        [(SECOND_N, 'parameters: {n: "{{ steps.first.outputs.totl }}"}')],
        [
            "step 'second' parameter 'n': step 'first' never records 'totl' (its notebook "
            "declares: label, n_items, total)"
        ],
    ),
    ([(SECOND_N, 'parameters: {n: "{{ steps.first.status }}"}')], []),
    ([(SECOND_N, 'parameters: {n: "{{ steps.first.outputs }}"}')], []),  # the whole dict
    (
        [("y: 4", 'why: "{{ params.nope }}"')],  # undeclared: its value is not looked into
        [
            "step 'first': parameter 'why' is not declared in notebooks/add.ipynb's parameters "
            "cell (declared: items, label, x, y); fix the name or add it there"
        ],
    ),
    (
        [(SECOND_N, 'parameters: {n: "{{ run.nope }}"}')],
        [
            "step 'second' parameter 'n': 'run.nope' is unknown; run.* has dir, id, runbook, work_dir"
        ],
    ),
    (
        [(SECOND_N, 'parameters: {n: "{{ step }}"}')],
        ["step 'second' parameter 'n': 'step' is unknown; step.* has dir, id"],
    ),
    (
        [(SECOND_N, 'parameters: {n: "{{ run.id }}{{ run.work_dir }}{{ step.dir }}{{ true }}"}')],
        [],
    ),
    (
        [(SECOND_N, 'parameters: {n: "{{ params }}"}')],
        [
            "step 'second' parameter 'n': template uses 'params' but the runbook declares no "
            "such parameter (declared: a, mode, where)"
        ],
    ),
    (
        [("items: [1, 2]", 'items: ["{{ params.nope }}"]')],
        [
            "step 'first' parameter 'items': template uses 'params.nope' but the runbook "
            "declares no such parameter (declared: a, mode, where)"
        ],
    ),
    (
        [("{{ params.a }}", "{{ secrets.token }}")],
        [
            "step 'first' parameter 'x': template names 'secrets.token'; use params.*, "
            "steps.<id>.outputs.*, run.* or step.*"
        ],
    ),
    # literal values against the notebook's declared types
    (
        [("items: [1, 2]", "items: {a: 1}")],
        ["step 'first': parameter 'items' gets dict but the notebook declares list"],
    ),
    (
        [('label: "{{ params.mode }}"', "label: [1]")],
        ["step 'first': parameter 'label' gets list but the notebook declares str"],
    ),
    (
        [("y: 4", "y: true")],
        ["step 'first': parameter 'y' gets True (bool) but the notebook declares int"],
    ),
    (
        [("y: 4", "y: 4.5")],
        ["step 'first': parameter 'y' gets 4.5 (float) but the notebook declares int"],
    ),
    # runbook parameters passed to notebook parameters
    (
        [('label: "{{ params.mode }}"', 'label: "{{ params.where }}", y: "{{ params.where }}"')],
        [
            "step 'first': parameter 'y' takes runbook parameter 'where' (path) but the "
            "notebook declares int"
        ],
    ),
    (
        [(A_SPEC, A_SPEC + "\n  f: {type: float, default: 1.0}"), ("y: 4", 'y: "{{ params.f }}"')],
        [
            "step 'first': parameter 'y' takes runbook parameter 'f' (float) but the notebook "
            "declares int"
        ],
    ),
    # parameter specs
    (
        [("default: fast}", "default: medium}")],
        [
            "default of parameter 'mode' must be one of ['fast', 'slow'], got 'medium'",
            "parameter 'mode' default 'medium' is not one of ['fast', 'slow']",
        ],
    ),
    (
        [("mode: {type: enum, allowed: [fast, slow], default: fast}", "mode: {type: enum}")],
        ["parameter 'mode' is an enum: list its `allowed` values"],
    ),
    (
        [(A_SPEC, A_SPEC + "\n  2b: {type: int}")],
        ["parameter '2b' must be an identifier"],
    ),
    (
        [("a: {type: int, default: 3,", "a: {type: int, default: true,")],
        ["parameter 'a' default True is not an int"],
    ),
    (
        [("a: {type: int, default: 3,", "a: {type: int, default: 3.5,")],
        ["parameter 'a' default 3.5 is not an int"],
    ),
    (
        [("a: {type: int, default: 3,", "a: {type: int, min: 5, max: 1,")],
        ["parameter 'a' min 5 is greater than max 1"],
    ),
    ([("a: {type: int, default: 3,", "a: {type: int, default: 3, min: 3, max: 3,")], []),
    ([("a: {type: int, default: 3,", "a: {type: int, min: 3,")], []),
    (
        [("a: {type: int, default: 3,", "a: {type: int, default: 3, max: 2,")],
        ["default of parameter 'a' must be at most 2, got 3"],
    ),
    (
        [("a: {type: int, default: 3,", "a: {type: int, default: 1, min: 2,")],
        ["default of parameter 'a' must be at least 2, got 1"],
    ),
    (
        [("where: {type: path, required: true}", "where: {type: path, required: true, min: 1}")],
        ["parameter 'where' is a path: min/max apply to int and float parameters"],
    ),
    (
        [("where: {type: path, required: true}", "where: {type: str, max: 1}")],
        ["parameter 'where' is a str: min/max apply to int and float parameters"],
    ),
]


@pytest.mark.parametrize(("edits", "expected"), RULES)
def test_each_rule(write_runbook, edits: list[tuple[str, str]], expected: list[str]) -> None:
    assert _problems(write_runbook, _edit(*edits)) == [P + p for p in expected]


def test_true_or_a_string_is_not_a_float(write_runbook) -> None:
    text = """
    name: floats
    parameters:
      i: {type: int, default: 2}
    steps:
      - id: s
        notebook: notebooks/slow.ipynb
        parameters: {seconds: VALUE}
    """
    for value, expected in [
        (
            "true",
            ["step 's': parameter 'seconds' gets True (bool) but the notebook declares float"],
        ),
        ('"x"', ["step 's': parameter 'seconds' gets 'x' (str) but the notebook declares float"]),
        ("3", []),  # an int is a fine float
        ("2.5", []),
        ('"{{ params.i }}"', []),
    ]:
        problems = _problems(write_runbook, text.replace("VALUE", value))
        assert problems == [P + p for p in expected], value


def test_a_notebook_without_a_parameters_cell(write_runbook, project: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1\nimport opsbook\nopsbook.record('x', x)")]
    nbformat.write(nb, project / "notebooks" / "untagged.ipynb")
    text = """
    name: untagged
    steps:
      - id: s
        notebook: notebooks/untagged.ipynb
        parameters: {x: 2}
      - id: t
        notebook: notebooks/untagged.ipynb
        when: "{{ steps.s.outputs.x }}"
    """
    assert _problems(write_runbook, text) == [
        P + "step 's': notebook notebooks/untagged.ipynb has no cell tagged `parameters`",
        P + "step 't' when: step 's' never records 'x': its notebook untagged.ipynb declares no "
        "outputs (list them in its metadata.opsbook.outputs)",
    ]


def test_a_notebook_that_cannot_be_inspected(write_runbook, project: Path) -> None:
    (project / "notebooks" / "broken.ipynb").write_text("{not json", encoding="utf-8")
    text = "name: broken\nsteps:\n  - id: s\n    notebook: notebooks/broken.ipynb\n"
    problems = _problems(write_runbook, text)
    assert len(problems) == 1
    assert problems[0].startswith(P + "step 's': cannot inspect notebook notebooks/broken.ipynb: ")


def test_summary_sections(write_runbook) -> None:
    text = GOOD + (
        "summary:\n"
        "  title: t\n"
        "  sections:\n"
        "    - {heading: H, step: nowhere, text: '{{ steps.first.outputs.totl }}'}\n"
        "    - {heading: K, step: undo, items: [{label: l, value: '{{ run.x }}'}]}\n"
        "    - {heading: L, step: first, ok: '{{ steps.undo.status }}'}\n"
    )
    assert _problems(write_runbook, text) == [
        P + "summary section 'H': step 'nowhere' does not exist",
        P + "summary section 'H': step 'first' never records 'totl' (its notebook declares: "
        "label, n_items, total)",
        P + "summary section 'K': 'run.x' is unknown; run.* has dir, id, runbook, work_dir",
    ]


def test_on_failure_cycles_reported_once_each(write_runbook) -> None:
    text = """
    name: cycles
    steps:
      - {id: a, notebook: notebooks/add.ipynb, on_failure: b}
      - {id: b, notebook: notebooks/add.ipynb, on_failure: c}
      - {id: c, notebook: notebooks/add.ipynb, on_failure: a}
      - {id: d, notebook: notebooks/add.ipynb, on_failure: e}
      - {id: e, notebook: notebooks/add.ipynb, on_failure: d}
      - {id: f, notebook: notebooks/add.ipynb, on_failure: a}
    """
    tail = ": each of these steps is another's rollback, so none would run; make one of them "
    assert _problems(write_runbook, text) == [
        P + "on_failure cycle a -> b -> c -> a" + tail + "abort or continue",
        P + "on_failure cycle d -> e -> d" + tail + "abort or continue",
    ]


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"inferred_type_name": "int", "default": "1"}, "int"),
        ({"inferred_type_name": " List[int] ", "default": "[]"}, "list"),
        ({"inferred_type_name": "typing.Dict[str, int]", "default": "{}"}, "dict"),
        ({"inferred_type_name": "Path", "default": "'x'"}, None),  # unknown annotation
        ({"inferred_type_name": "None", "default": "1.5"}, "float"),
        ({"inferred_type_name": "NoneType", "default": "True"}, "bool"),
        ({"inferred_type_name": None, "default": "(1, 2)"}, "list"),
        ({"default": "'s'"}, "str"),
        ({"default": "None"}, None),
        ({"default": "os.getcwd()"}, None),
        ({"default": "1 +"}, None),
        ({}, None),
    ],
)
def test_notebook_type(info: dict, expected: str | None) -> None:
    assert validation._notebook_type(info) == expected


@pytest.mark.parametrize(
    ("runbook_type", "notebook_type", "ok"),
    [
        ("int", None, True),
        ("path", "str", True),
        ("path", "int", False),
        ("date", "str", True),
        ("date", "list", False),
        ("enum", "str", True),
        ("enum", "int", True),
        ("enum", "float", True),
        ("enum", "list", False),
        ("int", "float", True),
        ("float", "int", False),
        ("str", "str", True),
        ("bool", "int", False),
        ("list", "list", True),
    ],
)
def test_types_compatible(runbook_type: str, notebook_type: str | None, ok: bool) -> None:
    assert validation._types_compatible(runbook_type, notebook_type) is ok


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, "text", 3, "{{ params.p }}"])
def test_a_notebook_parameter_of_unknown_type_takes_any_value(value: object) -> None:
    """``x = None`` in a parameters cell declares no type: nothing to compare against."""
    from opsbook.runbook.schema import ParamSpec, Runbook

    outer = Runbook(name="o", parameters={"p": ParamSpec(type="list")}, steps=[{"id": "s"}])
    assert validation._check_value_type(value, None, "x", "step 's'", outer) == []
    # the same value against a declared type is compared
    assert validation._check_value_type([1], "bool", "x", "step 's'", outer) == [
        "step 's': parameter 'x' gets list but the notebook declares bool"
    ]


_TYPES = ["str", "path", "date", "int", "float", "bool", "enum", "list", "dict"]
#: Which runbook parameter types may feed which parameter of a used runbook.
_FEEDS = {
    *((t, t) for t in _TYPES),
    ("int", "float"),
    *((a, b) for a in ("str", "path", "date") for b in ("str", "path", "date")),
    ("enum", "str"),
}


@pytest.mark.parametrize("given", _TYPES)
def test_mapped_type_every_pair(given: str) -> None:
    """``with: {x: "{{ params.p }}"}``: the whole matrix, so each clause of the rule counts."""
    from opsbook.runbook.schema import ParamSpec, Runbook

    outer = Runbook(name="o", parameters={"p": ParamSpec(type=given)}, steps=[{"id": "s"}])
    refused = [
        wanted
        for wanted in _TYPES
        if validation._check_mapped_type("{{ params.p }}", ParamSpec(type=wanted), "w", outer)
    ]
    assert refused == [t for t in _TYPES if (given, t) not in _FEEDS]
    assert validation._check_mapped_type("{{ params.p }}", ParamSpec(type="bool"), "w", outer) == (
        []
        if given == "bool"
        else [f"w: takes runbook parameter 'p' ({given}) but the used runbook declares bool"]
    )
    # not a bare reference to a declared parameter: nothing to compare
    for value in ("{{ params.q }}", "x {{ params.p }}", 5):
        assert validation._check_mapped_type(value, ParamSpec(type="bool"), "w", outer) == []


# ------------------------------------------------------------------ run parameters (params.py)


@pytest.mark.parametrize("raw", ["null", "~", ""])
def test_a_list_parameter_given_as_yaml_null_is_refused(write_runbook, raw: str) -> None:
    runbook = rb.load(write_runbook(TYPED, name=NAME)).runbook
    with pytest.raises(ConfigError) as info:
        rb.resolve_parameters(runbook, {"l": raw})
    assert info.value.message == f"parameter 'l' expects a list, got {raw!r}"


def test_an_enum_of_numbers_takes_the_number_from_the_command_line(write_runbook) -> None:
    text = TYPED.replace('s: {type: str, default: ""}', "s: {type: enum, allowed: [1, 2.5]}")
    runbook = rb.load(write_runbook(text, name=NAME)).runbook
    assert rb.resolve_parameters(runbook, {"s": "2.5"})["s"] == 2.5
    assert rb.resolve_parameters(runbook, {"s": "1"})["s"] == 1
    with pytest.raises(ConfigError) as info:
        rb.resolve_parameters(runbook, {"s": "3"})
    assert info.value.message == "parameter 's' must be one of [1, 2.5], got '3'"


def test_an_int_from_a_params_file_becomes_a_float(write_runbook) -> None:
    runbook = rb.load(write_runbook(TYPED, name=NAME)).runbook
    got = rb.resolve_parameters(runbook, {"f": 3, "b": True})
    assert got["f"] == 3.0 and type(got["f"]) is float and got["b"] is True


def test_approve_names_an_unknown_gate(write_runbook) -> None:
    runbook = rb.load(write_runbook(GOOD, name=NAME)).runbook
    rb.check_approvals(runbook, {"gate"})
    with pytest.raises(ConfigError) as info:
        rb.check_approvals(runbook, {"first", "nope"})
    assert info.value.message == "--approve: runbook 'good' has no gate 'first', 'nope'"
    assert info.value.hint == "its gates: gate"
    with pytest.raises(ConfigError) as info:
        rb.check_approvals(rb.load(write_runbook(TYPED, name=NAME)).runbook, {"x"})
    assert info.value.hint == "its gates: none (nothing to approve)"
