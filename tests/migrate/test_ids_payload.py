"""Ids map deterministically and injectively; payloads keep exact types."""

from __future__ import annotations

import uuid

import pytest

from opsbook.migrate.ids import point_id, point_ids
from opsbook.migrate.payload import build_payload, metadata_problems, payload_diff, same_value


def test_numeric_looking_ids_do_not_collide() -> None:
    ids = ["0042", "42", "042", "42.0", "4.2e1", " 42", "42 "]
    assert len(set(point_ids(ids))) == len(ids)


def test_point_id_is_deterministic_uuid() -> None:
    assert point_id("café-ß-日本") == point_id("café-ß-日本")
    assert uuid.UUID(point_id("x")).version == 5


def test_many_ids_never_collide() -> None:
    ids = [str(i) for i in range(20000)] + [f"{i:05d}" for i in range(20000)]
    assert len(set(point_ids(ids))) == len(set(ids))


def test_point_id_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        point_id(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1, True),
        (1, 1.0, False),
        (1, True, False),
        (2.0, 2.0, True),
        (None, None, True),
        ([1, 2], [1, 2], True),
        ([1, 2], [1.0, 2.0], False),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": [True]}, {"a": [1]}, False),
        (2**53 + 1, 2**53 + 1, True),
        (2**53 + 1, float(2**53 + 1), False),
        ("", None, False),
    ],
)
def test_same_value_requires_equal_types(a: object, b: object, equal: bool) -> None:
    assert same_value(a, b) is equal


@pytest.mark.parametrize(
    ("meta", "n_problems"),
    [
        (None, 0),
        ({"a": 1, "b": 2.5, "c": True, "d": "x", "e": [1, 2], "f": None}, 0),
        ({"a": float("nan")}, 1),
        ({"a": float("inf")}, 1),
        ({"a": [1, "x"]}, 1),
        ({"a": {"nested": 1}}, 1),
        ({"a": [[1]]}, 1),
        ({"a": []}, 0),
        ({"a": [True, 1]}, 1),
        ({"a": [1.0, float("nan")]}, 1),
        ({"a": ["x", "y"], "b": [2.5], "c": 1}, 0),
        ({"a": b"bytes"}, 1),
        ({1: "x"}, 1),
        ("not a dict", 1),
    ],
)
def test_metadata_problems(meta: object, n_problems: int) -> None:
    assert len(metadata_problems(meta)) == n_problems


def test_payload_layout_and_diff() -> None:
    p = build_payload("42", "", {"n": 1})
    assert p == {"chroma_id": "42", "document": "", "metadata": {"n": 1}}
    assert payload_diff(p, dict(p)) is None
    assert payload_diff(p, p | {"document": None}) == "document"
    assert payload_diff(p, p | {"metadata": {"n": 1.0}}) == "metadata"
    assert payload_diff(p, p | {"chroma_id": "0042"}) == "chroma_id"
    assert payload_diff(p, None) == "payload missing"
    assert "unexpected" in payload_diff(p, p | {"x": 1})


@pytest.mark.parametrize("chroma_id", ["", "42", "0042", "café-ß-日本-001", "x" * 300, "a/b c?d"])
def test_point_id_is_rfc4122_uuid5(chroma_id: str) -> None:
    from opsbook.migrate.ids import NAMESPACE

    assert point_id(chroma_id) == str(uuid.uuid5(NAMESPACE, chroma_id))
