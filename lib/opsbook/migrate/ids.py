"""Chroma string ids → deterministic Qdrant point ids.

Qdrant accepts only unsigned integers and UUIDs as point ids, Chroma any string. Each
Chroma id maps to ``uuid5(NAMESPACE, id)``: deterministic (a re-run upserts the same
points, so it is idempotent) and injective in practice ("0042" and "42" are different
strings, hence different UUIDs). The original id is kept in the payload under
:data:`opsbook.migrate.payload.ID_KEY`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

#: Namespace of every point id opsbook derives; changing it would orphan migrated points.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://opsbook/migrate/chroma-id")


def point_id(chroma_id: str) -> str:
    """Qdrant point id (UUID string) for a Chroma id.

    >>> point_id("42") != point_id("0042")
    True
    """
    if not isinstance(chroma_id, str):
        raise TypeError(f"Chroma ids are strings, got {type(chroma_id).__name__}")
    return str(uuid.uuid5(NAMESPACE, chroma_id))


def point_ids(chroma_ids: Iterable[str]) -> list[str]:
    """:func:`point_id` over many ids."""
    return [point_id(i) for i in chroma_ids]
