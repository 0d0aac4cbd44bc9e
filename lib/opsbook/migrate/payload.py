"""Chroma record → Qdrant payload, and a type-exact comparison to verify it.

Payload layout (documented contract for the RAG service reading the target)::

    {"chroma_id": "<original id>", "document": "<text or None>", "metadata": {...} or None}

Metadata is nested under its own key so a metadata field can never clash with the id or
the document. Types are kept exactly: an int stays an int (never 3.0), a bool stays a
bool, lists stay lists, a whole-metadata ``None`` stays ``None``.
"""

from __future__ import annotations

import math
from typing import Any

ID_KEY = "chroma_id"
DOCUMENT_KEY = "document"
METADATA_KEY = "metadata"


def build_payload(chroma_id: str, document: str | None, metadata: dict[str, Any] | None) -> dict:
    """Payload for one record (see the module docstring for the layout)."""
    return {
        ID_KEY: chroma_id,
        DOCUMENT_KEY: document,
        METADATA_KEY: None if metadata is None else dict(metadata),
    }


def metadata_problems(metadata: Any) -> list[str]:
    """Reasons a record's metadata cannot map to a JSON payload exactly (empty = fine)."""
    if metadata is None:
        return []
    if type(metadata) is dict and all(map(_plain, metadata.items())):
        return []  # the common case, decided without building the list of problems
    if not isinstance(metadata, dict):
        return [f"metadata is a {type(metadata).__name__}, not a mapping"]
    problems: list[str] = []
    for key, value in metadata.items():
        if not isinstance(key, str):
            problems.append(f"key {key!r} is not a string")
        problems.extend(f"{key}: {p}" for p in _value_problems(value))
    return problems


def _plain(item: tuple[Any, Any]) -> bool:
    """A string key with a str, int, bool or finite float value, or a list of one such
    type: no problem possible."""
    key, value = item
    if type(key) is not str:
        return False
    kind = type(value)
    if kind is list:  # a non-empty list of one plain scalar type
        return bool(value) and len({type(v) for v in value}) == 1 and all(map(_scalar, value))
    return _scalar(value)


def _scalar(value: Any) -> bool:
    kind = type(value)
    return kind is str or kind is int or kind is bool or (kind is float and math.isfinite(value))


def _value_problems(value: Any) -> list[str]:
    if value is None or isinstance(value, str | bool | int):
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"float {value!r} has no JSON form"]
    if isinstance(value, list):
        if any(isinstance(v, list | dict) for v in value):
            return ["nested list/dict inside a list"]
        kinds = {type(v) for v in value}
        problems = [p for v in value for p in _value_problems(v)]
        if len(kinds) > 1:
            problems.append(f"mixed list of {sorted(k.__name__ for k in kinds)}")
        return problems
    return [f"value of type {type(value).__name__} cannot be stored as JSON"]


def same_value(a: Any, b: Any) -> bool:
    """Equality that also requires equal types: ``1 != 1.0 != True`` here.

    >>> same_value({"n": 1}, {"n": 1.0})
    False
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def payload_diff(expected: dict, actual: dict | None) -> str | None:
    """Which part of a payload differs ("document", "metadata", "chroma_id"), or None."""
    if actual is None:
        return "payload missing"
    for key in (ID_KEY, DOCUMENT_KEY, METADATA_KEY):
        if key not in actual or not same_value(expected.get(key), actual.get(key)):
            return key
    extra = set(actual) - {ID_KEY, DOCUMENT_KEY, METADATA_KEY}
    return f"unexpected keys {sorted(extra)}" if extra else None
