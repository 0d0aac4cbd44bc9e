"""Resume state of one collection's migration, written atomically after every batch.

The key is (source, collection, target, target collection): a rehearsal into another
target, or into another alias, never reads or overwrites the real run's checkpoint.
Writes are idempotent (deterministic point ids), so replaying the batch that was in
flight when a process died produces no duplicates.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from opsbook.migrate.errors import CheckpointMismatch


def checkpoint_key(source: str, collection: str, target: str, target_collection: str) -> str:
    """Stable hex key of a migration's identity."""
    raw = json.dumps([source, collection, target, target_collection])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def ids_digest(ids: list[str]) -> str:
    """Fingerprint of a collection's id set (order-independent)."""
    h = hashlib.sha256()
    for i in sorted(ids):
        h.update(i.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class Checkpoint:
    """Progress of one collection: the next source offset to write, and the staging name."""

    path: Path
    source: str
    collection: str
    target: str
    target_collection: str
    staging: str
    total: int
    digest: str
    next_offset: int = 0
    done: bool = False
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    def save(self) -> None:
        """Write atomically: a reader sees the old or the new state, never half of one."""
        data = asdict(self)
        data["path"] = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)

    def advance(self, next_offset: int) -> None:
        self.next_offset = next_offset
        self.updated_at = time.time()
        self.save()

    def finish(self) -> None:
        self.done = True
        self.advance(self.total)

    def check_source(self, total: int, digest: str) -> None:
        """Refuse to resume onto a source that changed since the checkpoint."""
        if (total, digest) != (self.total, self.digest):
            raise CheckpointMismatch(
                f"collection {self.collection!r} changed since the checkpoint "
                f"({self.total} records then, {total} now)",
                hint="run again with resume=False to start a fresh staging collection",
            )


def checkpoint_path(
    work_dir: Path, source: str, collection: str, target: str, target_collection: str
) -> Path:
    key = checkpoint_key(source, collection, target, target_collection)
    return Path(work_dir) / "checkpoints" / f"{collection}-{key}.json"


def load(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, or None when there is none."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    data["path"] = Path(data["path"])
    return Checkpoint(**data)
