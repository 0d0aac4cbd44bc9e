"""Per-record content hashes kept beside the checkpoint, so verification reads only the target.

While a batch is written, each record's digests are stored under its point id: the
float32 vector bytes as written (unit length for Cosine; Qdrant stores a vector whose
squared length is within 1e-6 of 1 unchanged, so the bytes read back are the bytes
written), and the canonical JSON of its document and metadata (``1``, ``1.0`` and
``true`` differ, as they do in the payload). Verification scrolls the target, hashes what
it finds and compares: a difference names its kind (vector, document, metadata, payload),
a point without a stored hash is extra (or a duplicate of a source id), a stored hash
without a point is missing.

The store is SQLite in WAL mode, one transaction per batch, written after the upsert and
before the checkpoint advances: a process killed in between replays the batch, and
``INSERT OR REPLACE`` makes the replay harmless. A resumed run therefore holds the hashes of
every record written before the kill.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from opsbook.migrate.payload import DOCUMENT_KEY, ID_KEY, METADATA_KEY

DIGEST = 8  # bytes per digest: a collision chance of ~2**-64 per record

Row = tuple[str, str, bytes, bytes, bytes]  # point id, chroma id, vector, document, metadata


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST).digest()


#: The encoder ``json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":"))``
#: builds on every call, built once (same bytes, without the per-call set-up).
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical(value: Any) -> bytes:
    """JSON with sorted keys and no spaces: equal values with equal types, equal bytes.

    >>> canonical({"b": 1, "a": [1.0, True]})
    b'{"a":[1.0,true],"b":1}'
    """
    return _CANONICAL.encode(value).encode()


def vector_digest(vector: np.ndarray) -> bytes:
    return digest(np.ascontiguousarray(vector, dtype=np.float32).tobytes())


def document_digest(document: Any) -> bytes:
    """A document is a string or None (anything else goes through canonical JSON)."""
    if document is None:
        return digest(b"n")
    if isinstance(document, str):
        return digest(b"s" + document.encode())
    return digest(b"j" + canonical(document))


def metadata_digest(metadata: Any) -> bytes:
    return digest(canonical(metadata))


def batch_rows(point_ids: list[str], payloads: list[dict], vectors: np.ndarray) -> list[Row]:
    """:func:`record_row` of every record of a batch, the vector bytes taken in one piece.

    Same digests as :func:`record_row` (the tests compare them), about twice as fast.
    """
    raw = np.ascontiguousarray(vectors, dtype=np.float32)
    width = raw.shape[1] * 4 if raw.ndim == 2 else 0
    data = raw.tobytes()
    blake = hashlib.blake2b
    rows: list[Row] = []
    for i, (pid, payload) in enumerate(zip(point_ids, payloads, strict=True)):
        doc = payload.get(DOCUMENT_KEY)
        rows.append(
            (
                pid,
                payload[ID_KEY],
                blake(data[i * width : (i + 1) * width], digest_size=DIGEST).digest(),
                document_digest(doc),
                blake(
                    _CANONICAL.encode(payload.get(METADATA_KEY)).encode(), digest_size=DIGEST
                ).digest(),
            )
        )
    return rows


def record_row(point_id: str, payload: dict, vector: np.ndarray) -> Row:
    """The stored digests of one record (``payload`` as built for the target)."""
    return (
        point_id,
        payload[ID_KEY],
        vector_digest(vector),
        document_digest(payload.get(DOCUMENT_KEY)),
        digest(canonical(payload.get(METADATA_KEY))),
    )


class HashStore:
    """Digests of every record written into one staging collection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS records (pid TEXT PRIMARY KEY, chroma_id TEXT NOT NULL,"
            " vector BLOB NOT NULL, document BLOB NOT NULL, metadata BLOB NOT NULL)"
            " WITHOUT ROWID"
        )
        self.db.commit()

    def put(self, rows: Iterable[Row]) -> None:
        """Store a batch's digests in one transaction (a replayed batch overwrites)."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)", rows)

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM records").fetchone()[0])

    def lookup(self, pids: list[str]) -> dict[str, Row]:
        """Stored rows of the given point ids (absent ids are left out)."""
        out: dict[str, Row] = {}
        for s in range(0, len(pids), 900):
            chunk = pids[s : s + 900]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT * FROM records WHERE pid IN ({marks})", chunk):
                out[row[0]] = row
        return out

    def missing(self, present: Iterable[str]) -> Iterator[tuple[str, str]]:
        """(point id, chroma id) of stored records whose point id is not in ``present``."""
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (pid TEXT PRIMARY KEY)")
        self.db.execute("DELETE FROM seen")
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((p,) for p in present))
        query = "SELECT pid, chroma_id FROM records WHERE pid NOT IN (SELECT pid FROM seen)"
        yield from self.db.execute(query)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()


def store_path(checkpoint_path: Path, staging: str) -> Path:
    """Where the hashes of a staging collection live (beside its checkpoint)."""
    return checkpoint_path.with_name(f"{checkpoint_path.stem}.{staging}.hashes.sqlite")
