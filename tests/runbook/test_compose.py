"""Composed runbooks (opsbook.runbook.compose): uses:, with:, qualified ids, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook import runbook as rb
from opsbook.errors import ConfigError, RunbookError
from runbookkit import problems_of

#: A used runbook: a notebook step, a gate and a step reading the first one's output.
INNER = """
name: inner
parameters:
  a: {type: int, default: 1, min: 0, max: 100}
  label: {type: str, default: "sum"}
  needed: {type: str, required: true}
defaults:
  notebook: notebooks/add.ipynb
  parameters: {y: 4, label: "{{ params.label }}"}
steps:
  - id: first
    parameters: {x: "{{ params.a }}"}
  - id: gate
    gate: approval
    message: "total {{ steps.first.outputs.total }}"
  - id: second
    parameters: {x: "{{ steps.first.outputs.total }}", y: 0}
"""

#: A runbook using INNER, then reading its results.
OUTER = """
name: outer
parameters:
  n: {type: int, default: 2}
  word: {type: str, default: "w"}
steps:
  - id: inner
    uses: runbooks/inner.yaml
    with: {a: "{{ params.n }}", needed: "{{ params.word }}"}
  - id: after
    notebook: notebooks/add.ipynb
    when: "{{ steps.inner.status == 'succeeded' }}"
    parameters: {x: "{{ steps.inner.second.outputs.total }}"}
summary:
  title: outer
  sections:
    - heading: inner
      step: inner.second
      items:
        - {label: total, value: "{{ steps.inner.first.outputs.total }}"}
"""


@pytest.fixture
def inner(project: Path) -> Path:
    path = project / "runbooks" / "inner.yaml"
    path.write_text(INNER.lstrip(), encoding="utf-8")
    return path


def test_outer_and_inner_validate(write_runbook, inner: Path) -> None:
    loaded = rb.load(write_runbook(OUTER))
    assert rb.validate(loaded) == []
    composition = rb.compose(loaded)
    assert composition.gate_ids() == ["inner.gate"]
    assert [qid for qid, _, _ in composition.walk()] == [
        "inner",
        "inner.first",
        "inner.gate",
        "inner.second",
        "after",
    ]


def test_defaults_are_merged_under_each_notebook_step(inner: Path) -> None:
    steps = rb.load(inner).runbook.steps
    assert steps[0].notebook == "notebooks/add.ipynb"
    assert steps[0].parameters == {"y": 4, "label": "{{ params.label }}", "x": "{{ params.a }}"}
    assert steps[1].notebook is None and steps[1].parameters == {}  # a gate takes none
    assert steps[2].parameters["y"] == 0  # the step's own value wins


@pytest.mark.parametrize(
    ("uses", "expected"),
    [
        ("../../etc/x.yaml", "leaves the project ('..' is not allowed)"),
        ("runbooks/../../x.yaml", "leaves the project ('..' is not allowed)"),
        ("/etc/passwd.yaml", "is an absolute path"),
        ("C:\\\\runbooks\\\\x.yaml", "is an absolute path"),
        ("runbooks/nope.yaml", "does not exist"),
        ("notebooks/add.ipynb", "is not a runbook file (.yaml or .yml)"),
        ("runbooks/linked.yaml", "goes through the symbolic link"),
        ("linkdir/inner.yaml", "goes through the symbolic link"),
        ("", "uses: is empty"),
    ],
)
def test_hostile_uses_paths_are_refused(
    write_runbook, inner: Path, project: Path, uses: str, expected: str
) -> None:
    (project / "runbooks" / "linked.yaml").unlink(missing_ok=True)
    (project / "runbooks" / "linked.yaml").symlink_to(inner)
    if not (project / "linkdir").is_symlink():
        (project / "linkdir").symlink_to(project / "runbooks")
    problems = problems_of(write_runbook, OUTER.replace("runbooks/inner.yaml", f'"{uses}"'))
    assert any(expected in p and "step 'inner'" in p for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'a: "{{ params.n }}"',
            "b: 1",
            "runbooks/inner.yaml declares no parameter 'b' "
            "(declared: a (int), label (str), needed (str))",
        ),
        (', needed: "{{ params.word }}"', "", "needs parameter 'needed' (str)"),
        ('a: "{{ params.n }}"', "a: 200", "parameter 'a' must be at most 100, got 200"),
        ('a: "{{ params.n }}"', "a: many", "with 'a': 'many' is not an int"),
        (
            'a: "{{ params.n }}"',
            'a: "{{ params.word }}"',
            "takes runbook parameter 'word' (str) but the used runbook declares int",
        ),
        ('a: "{{ params.n }}"', 'a: "{{ params.m }}"', "declares no such parameter"),
        (
            "{{ steps.inner.second.outputs.total }}",
            "{{ steps.inner.second.outputs.totl }}",
            "step inner.second never records 'totl'",
        ),
        (
            "{{ steps.inner.second.outputs.total }}",
            "{{ steps.inner.third.outputs.total }}",
            "runs inner.yaml, which has no step 'third'",
        ),
        (
            "{{ steps.inner.second.outputs.total }}",
            "{{ steps.inner.outputs.total }}",
            "runs inner.yaml and has no outputs of its own",
        ),
        ("step: inner.second", "step: inner.third", "step 'inner.third' does not exist"),
        ("    with:", "    timeout_s: 5\n    with:", "timeout_s belong to notebook steps"),
        ("    with:", "    on_failure: after\n    with:", "on_failure of a uses: step is abort"),
    ],
)
def test_uses_rules(write_runbook, inner: Path, old: str, new: str, expected: str) -> None:
    assert old in OUTER
    problems = problems_of(write_runbook, OUTER.replace(old, new, 1))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("steps.inner.second.outputs.total", []),
        ("steps.inner.second.outputs", []),  # the whole dict of its outputs
        ("steps.inner.second.status", []),
        ("steps.inner.status", []),
        (
            "steps.inner.second",
            ["'steps.inner.second' should continue with .outputs.<name> or .status"],
        ),
        (
            "steps.inner.second.outputs.totl",
            [
                "step inner.second never records 'totl' "
                "(its notebook declares: label, n_items, total)"
            ],
        ),
        (  # the reference is quoted whole, with the used step's id
            "steps.inner.second.result",
            ["'steps.inner.second.result': a step has `outputs` and `status`"],
        ),
    ],
)
def test_references_into_a_used_runbook_exactly(
    write_runbook, inner: Path, ref: str, expected: list[str]
) -> None:
    text = OUTER.replace("steps.inner.second.outputs.total", ref, 1)
    problems = problems_of(write_runbook, text)
    assert [p.split(": step 'after' parameter 'x': ", 1)[1] for p in problems] == expected


def test_problems_of_the_used_runbook_name_both_files(write_runbook, inner: Path) -> None:
    inner.write_text(INNER.replace('outputs.total }}"', 'outputs.nope }}"', 1))
    problems = problems_of(write_runbook, OUTER)
    assert any(
        p.startswith("rb")
        and "step 'inner': uses runbooks/inner.yaml: inner.yaml: step 'gate' message" in p
        and "never records 'nope'" in p
        for p in problems
    ), problems


def test_a_reserved_step_id_in_a_used_runbook_is_refused(write_runbook, inner: Path) -> None:
    inner.write_text(INNER.replace("- id: second", "- id: status"))
    problems = problems_of(write_runbook, OUTER.replace(".second.", ".status."))
    assert any("its step id 'status' is reserved" in p for p in problems), problems


@pytest.mark.parametrize("cycle", ["self", "pair"])
def test_uses_cycles_are_refused(write_runbook, project: Path, cycle: str) -> None:
    runbooks = project / "runbooks"
    target = "cyc_a.yaml" if cycle == "self" else "cyc_b.yaml"
    (runbooks / "cyc_a.yaml").write_text(
        f"name: a\nsteps:\n  - id: x\n    uses: runbooks/{target}\n", encoding="utf-8"
    )
    (runbooks / "cyc_b.yaml").write_text(
        "name: b\nsteps:\n  - id: y\n    uses: runbooks/cyc_a.yaml\n", encoding="utf-8"
    )
    problems = rb.validate(rb.load(runbooks / "cyc_a.yaml"))
    expected = (
        "uses cycle cyc_a.yaml -> cyc_a.yaml"
        if cycle == "self"
        else "uses cycle cyc_a.yaml -> cyc_b.yaml -> cyc_a.yaml"
    )
    assert any(expected in p for p in problems), problems
    with pytest.raises(RunbookError, match="uses cycle"):
        rb.compose(rb.load(runbooks / "cyc_a.yaml"))


def test_approve_takes_the_qualified_gate_id(write_runbook, inner: Path) -> None:
    loaded = rb.load(write_runbook(OUTER))
    gates = rb.compose(loaded).gate_ids()
    rb.check_approvals(loaded.runbook, {"inner.gate"}, gates)
    with pytest.raises(ConfigError, match="no gate 'gate'") as caught:
        rb.check_approvals(loaded.runbook, {"gate"}, gates)
    assert caught.value.hint == "its gates: inner.gate"


def test_nest_steps_reads_qualified_ids_as_templates_do() -> None:
    flat = {
        "inner": {"outputs": {}, "status": "succeeded"},
        "inner.first": {"outputs": {"total": 3}, "status": "succeeded"},
        "after": {"outputs": {}, "status": "skipped"},
    }
    steps = rb.nest_steps(flat)
    assert rb.render("{{ steps.inner.first.outputs.total }}", {"steps": steps}) == 3
    assert rb.render("{{ steps.inner.status }}", {"steps": steps}) == "succeeded"
    assert steps["after"] == {"outputs": {}, "status": "skipped"}


def test_uses_nesting_deeper_than_the_limit_is_refused(project: Path) -> None:
    from opsbook.runbook.compose import MAX_DEPTH

    runbooks = project / "runbooks"
    for level in range(MAX_DEPTH + 1):
        step = (
            f"    uses: runbooks/deep{level + 1}.yaml"
            if level < MAX_DEPTH
            else "    gate: approval"
        )
        (runbooks / f"deep{level}.yaml").write_text(
            f"name: d{level}\nsteps:\n  - id: s\n{step}\n", encoding="utf-8"
        )
    problems = rb.validate(rb.load(runbooks / "deep0.yaml"))
    assert len(problems) == 1 and problems[0].endswith(
        f"uses nests deeper than {MAX_DEPTH} runbooks"
    ), problems
    (runbooks / f"deep{MAX_DEPTH - 1}.yaml").write_text(
        "name: d\nsteps:\n  - id: s\n    gate: approval\n", encoding="utf-8"
    )
    assert rb.validate(rb.load(runbooks / "deep0.yaml")) == []  # at the limit: fine
    assert rb.compose(rb.load(runbooks / "deep0.yaml")).gate_ids() == [".".join(["s"] * MAX_DEPTH)]
