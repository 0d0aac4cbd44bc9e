"""Workspace parsing and the byte-preserving JSON / YAML edits."""

from __future__ import annotations

import json

import pytest

from opsbook.archive import jsonedit
from opsbook.archive import workspaces as ws
from opsbook.errors import ConfigError

from .helpers import MakeRepo


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("apps/*", "apps/web", True),
        ("apps/*", "apps/web/sub", False),
        ("./apps/*/", "apps/web", True),
        ("apps/**", "apps/web/sub", True),
        ("packages/**/ui", "packages/ui", True),
        ("packages/**/ui", "packages/a/b/ui", True),
        ("apps/web", "apps/web", True),
        ("apps/web", "apps/web-admin", False),
        ("apps/?eb", "apps/web", True),
    ],
)
def test_glob_matching(pattern: str, path: str, hit: bool) -> None:
    assert ws.matches(pattern, path) is hit


ARRAY_CASES = [
    # (text, index removed, expected)
    (
        '{\n  "w": [\n    "a",\n    "b",\n    "c"\n  ]\n}\n',
        0,
        '{\n  "w": [\n    "b",\n    "c"\n  ]\n}\n',
    ),
    (
        '{\n  "w": [\n    "a",\n    "b",\n    "c"\n  ]\n}\n',
        1,
        '{\n  "w": [\n    "a",\n    "c"\n  ]\n}\n',
    ),
    (
        '{\n  "w": [\n    "a",\n    "b",\n    "c"\n  ]\n}\n',
        2,
        '{\n  "w": [\n    "a",\n    "b"\n  ]\n}\n',
    ),
    ('{"w": ["a", "b"]}', 1, '{"w": ["a"]}'),
    ('{"w": ["a"]}', 0, '{"w": []}'),
    (
        '{\n\t"w": [ "a" , "b" ], // keep me\n\t"x": 1\n}',
        0,
        '{\n\t"w": [ "b" ], // keep me\n\t"x": 1\n}',
    ),
]


@pytest.mark.parametrize(("text", "index", "expected"), ARRAY_CASES)
def test_remove_array_item_keeps_everything_else(text: str, index: int, expected: str) -> None:
    node = jsonedit.parse(text).find(["w"])
    assert node is not None
    assert jsonedit.remove_item(text, node, index) == expected


@pytest.mark.parametrize(("text", "index", "expected"), ARRAY_CASES[:4])
def test_insert_is_the_inverse_of_remove(text: str, index: int, expected: str) -> None:
    before = jsonedit.parse(text).find(["w"])
    assert before is not None
    raw = text[before.items[index].start : before.items[index].end]
    node = jsonedit.parse(expected).find(["w"])
    assert node is not None
    assert jsonedit.insert_item(expected, node, index, raw) == text


def test_remove_object_member_with_nested_value() -> None:
    text = '{\n  "tasks": {\n    "build": {"a": [1, 2]},\n    "x#deploy": {\n      "cache": false\n    }\n  }\n}\n'
    node = jsonedit.parse(text).find(["tasks"])
    assert node is not None and node.keys == ["build", "x#deploy"]
    out = jsonedit.remove_item(text, node, 1)
    assert out == '{\n  "tasks": {\n    "build": {"a": [1, 2]}\n  }\n}\n'
    assert json.loads(out) == {"tasks": {"build": {"a": [1, 2]}}}


@pytest.mark.parametrize("bad", ['{"a": [1, 2}', '{"a" 1}', '{"a": tru}', '{"a": 1} x', '"open'])
def test_invalid_json_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid JSON"):
        jsonedit.parse(bad, "package.json")


def test_position_for_keeps_original_order() -> None:
    original = ["p/*", "a", "b", "c", "d"]
    assert jsonedit.position_for(original, ["p/*", "a", "d"], "c") == 2
    assert jsonedit.position_for(original, ["p/*", "d"], "a") == 1
    assert jsonedit.position_for(original, [], "b") == 0


def test_object_form_workspaces_and_pnpm_and_lerna(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "package.json": '{"workspaces": {"packages": ["apps/*"], "nohoist": ["**/x"]}}\n',
            "pnpm-workspace.yaml": "packages:\n  - 'apps/one'\n  - \"libs/*\"  # shared\n",
            "lerna.json": '{"packages": ["libs/*"]}\n',
            "apps/one/package.json": '{"name": "one"}\n',
            "apps/two/package.json": '{"name": "two"}\n',
            "libs/l/package.json": '{"name": "l"}\n',
        }
    )
    found = {s.kind: s.patterns for s in ws.sources(repo)}
    assert found == {"npm": ["apps/*"], "pnpm": ["apps/one", "libs/*"], "lerna": ["libs/*"]}
    assert ws.expand(repo, found["npm"]) == ["apps/one", "apps/two"]
    assert ws.expand(repo, ["apps/*", "!apps/two"]) == ["apps/one"]


def test_pnpm_edit_and_revert_round_trip(make_repo: MakeRepo) -> None:
    text = "# workspace\npackages:\n  - 'apps/one'\n  - apps/two # old\n  - \"libs/*\"\n\ncatalog:\n  react: ^18\n"
    repo = make_repo({"pnpm-workspace.yaml": text, "apps/two/package.json": "{}"})
    edits = ws.plan_edits(repo, {"apps/two": None})
    assert [(e.file, e.value) for e in edits] == [("pnpm-workspace.yaml", "apps/two")]
    ws.apply_edit(repo, edits[0])
    assert (repo / "pnpm-workspace.yaml").read_text() == text.replace("  - apps/two # old\n", "")
    assert ws.revert_edit(repo, edits[0]) is True
    assert (repo / "pnpm-workspace.yaml").read_text() == text
    assert ws.revert_edit(repo, edits[0]) is False


def test_unresolved_entries_lists_entries_selecting_nothing(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "package.json": '{"workspaces": ["apps/gone", "apps/*", "libs/*"]}',
            "apps/a/package.json": "{}",
        }
    )
    assert ws.unresolved_entries(repo) == (["package.json: apps/gone"], ["package.json: libs/*"])
