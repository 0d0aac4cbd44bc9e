"""Read a Chroma store (directory or server) without ever modifying it.

A directory source is copied first and the copy opened: ``PersistentClient`` applies
SQLite migrations on open, so opening the user's only copy could change it. Embeddings
are always read, never computed: nothing here calls an embedding function, so Chroma's
ONNX model is never downloaded.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from opsbook.errors import OpsbookError
from opsbook.migrate.errors import (
    SourceNotFound,
    SourceUnavailable,
    SourceUnreadable,
    UnknownCollection,
)

#: Chroma space → Qdrant distance name.
DISTANCES = {"cosine": "Cosine", "l2": "Euclid", "ip": "Dot"}
_INCLUDE = ["embeddings", "metadatas", "documents"]


@dataclass(frozen=True)
class CollectionInfo:
    """What the source says about one collection."""

    name: str
    count: int
    dim: int | None
    metric: str
    distance: str
    metric_from: str = "configuration"


@dataclass
class Batch:
    """Records read from one page of a collection (vectors as float32, one row each)."""

    offset: int
    ids: list[str]
    vectors: np.ndarray | None
    documents: list[str | None]
    metadatas: list[dict[str, Any] | None]
    dims: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def resolve_metric(configuration: Any, metadata: Any) -> tuple[str, str]:
    """Chroma space of a collection and where it came from.

    The 1.x ``configuration`` (``{"hnsw": {"space": ...}}`` or ``spann``) wins; older
    stores keep it in metadata ``hnsw:space``; Chroma's default is ``l2``.

    >>> resolve_metric({"hnsw": {"space": "cosine"}}, None)
    ('cosine', 'configuration')
    >>> resolve_metric({}, {"hnsw:space": "ip"})
    ('ip', 'metadata')
    """
    config = dict(configuration or {})
    for index in ("hnsw", "spann"):
        section = config.get(index) or {}
        space = section.get("space") if isinstance(section, dict) else None
        if space:
            return str(space), "configuration"
    legacy = (metadata or {}).get("hnsw:space")
    if legacy:
        return str(legacy), "metadata"
    return "l2", "default"


def _distance(space: str, name: str) -> str:
    if space not in DISTANCES:
        raise SourceNotFound(
            f"collection {name!r} uses space {space!r}, which has no Qdrant equivalent",
            hint=f"supported spaces: {sorted(DISTANCES)}",
        )
    return DISTANCES[space]


def _to_batch(offset: int, raw: dict) -> Batch:
    embeddings = raw.get("embeddings")
    ids = list(raw["ids"])
    if isinstance(embeddings, np.ndarray) and embeddings.ndim == 2 and len(embeddings):
        # Chroma 1.x returns one 2-D float64 array of float32 values: exact as float32
        vectors = embeddings.astype(np.float32)
        dims = [vectors.shape[1]] * len(vectors)
        rows = None
    else:
        rows = [] if embeddings is None else list(embeddings)
        dims = [len(r) for r in rows]
        vectors = None
    if rows and len(set(dims)) == 1:
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), dims[0])
    elif rows is not None and not rows:
        vectors = np.zeros((0, 0), dtype=np.float32)
    return Batch(
        offset=offset,
        ids=ids,
        vectors=vectors,
        documents=list(raw.get("documents") or [None] * len(ids)),
        metadatas=list(raw.get("metadatas") or [None] * len(ids)),
        dims=dims,
    )


class ChromaSource:
    """A read-only view of a Chroma store; use :func:`open_source` to create one."""

    def __init__(
        self, client: Any, identity: str, copy_dir: Path | None = None, origin: str = ""
    ) -> None:
        self.client = client
        self.identity = identity
        self.copy_dir = copy_dir
        self.origin = origin  # the user's chroma.sqlite3, named in errors
        self._collections: dict[str, Any] = {}

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Turn Chroma's errors while reading a directory store into one clear ConfigError.

        chromadb reports a damaged store as ``InternalError`` / ``InvalidArgumentError``
        tracebacks ("file is not a database", "Failed to apply logs to the hnsw segment
        writer"); the user needs to know which file and what to do. Server sources keep
        their errors (those are transport problems, not the store's).
        """
        if not self.origin:
            yield
            return
        try:
            yield
        except OpsbookError:
            raise
        except Exception as exc:  # chromadb's error classes vary by version
            raise SourceUnreadable(
                f"cannot read {what} from the Chroma store {self.origin}: "
                f"{type(exc).__name__}: {exc}",
                hint="the store is damaged or incomplete (corrupt SQLite file, or vectors "
                "missing); nothing was written to the target. Restore the folder from a "
                "backup (opsbook migrate restore), or open it with the Chroma version that "
                "wrote it and export it again",
            ) from exc

    def names(self) -> list[str]:
        """All collection names, sorted."""
        with self._reading("the collection list"):
            return sorted(c.name for c in self.client.list_collections())

    def check_names(self, wanted: list[str] | None) -> list[str]:
        """The requested collections (all when None); unknown names raise, never create."""
        available = self.names()
        if wanted is None:
            return available
        if isinstance(wanted, str):
            wanted = [wanted]
        missing = [n for n in wanted if n not in available]
        if missing:
            raise UnknownCollection(
                f"collection(s) {missing} not found in {self.identity}",
                hint=f"available: {available}; pass collections=None to migrate all",
            )
        return list(dict.fromkeys(wanted))

    def collection(self, name: str) -> Any:
        if name not in self._collections:
            with self._reading(f"collection {name!r}"):
                self._collections[name] = self.client.get_collection(name, embedding_function=None)
        return self._collections[name]

    def info(self, name: str) -> CollectionInfo:
        """Size, dimension and metric of a collection; a collection whose records have no
        vectors is refused here, before anything is written."""
        col = self.collection(name)
        space, origin = resolve_metric(col.configuration, col.metadata)
        with self._reading(f"the vectors of collection {name!r}"):
            count = col.count()
            first = col.get(limit=1, include=["embeddings"])
        emb = first.get("embeddings")
        dim = len(emb[0]) if emb is not None and len(emb) else getattr(col, "dimension", None)
        if count and (emb is None or not len(emb) or not len(emb[0])):
            raise SourceUnreadable(
                f"collection {name!r} in {self.origin or self.identity} has {count} records "
                "but no vectors",
                hint="its vector data is missing; restore the store from a backup, or "
                "re-embed the documents into Chroma before migrating",
            )
        return CollectionInfo(name, count, dim, space, _distance(space, name), origin)

    def read(self, name: str, offset: int, limit: int) -> Batch:
        """One page of records, in Chroma's stable internal order."""
        with self._reading(f"records of collection {name!r}"):
            raw = self.collection(name).get(limit=limit, offset=offset, include=_INCLUDE)
        return _to_batch(offset, raw)

    def batches(self, name: str, batch_size: int, start: int = 0) -> Iterator[Batch]:
        """Pages from ``start`` to the end of the collection."""
        offset = start
        while True:
            batch = self.read(name, offset, batch_size)
            if not batch.ids:
                return
            yield batch
            offset += len(batch)

    def all_ids(self, name: str) -> list[str]:
        """Every id of a collection (cheap: no vectors)."""
        with self._reading(f"the ids of collection {name!r}"):
            return list(self.collection(name).get(include=[])["ids"])

    def query(self, name: str, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Chroma's (approximate, HNSW) top-k (id, Chroma distance) per query vector.

        Embeddings are given, so no embedding model is needed.
        """
        col = self.collection(name)
        n = min(k, col.count())
        if n == 0 or len(vectors) == 0:
            return [[] for _ in vectors]
        out: list[list[tuple[str, float]]] = []
        for start in range(0, len(vectors), 256):
            res = col.query(
                query_embeddings=np.asarray(vectors[start : start + 256], dtype=np.float32),
                n_results=n,
                include=["distances"],
            )
            out.extend(
                list(zip(ids, map(float, dist), strict=True))
                for ids, dist in zip(res["ids"], res["distances"], strict=True)
            )
        return out

    def vectors_of(self, name: str, ids: list[str]) -> np.ndarray:
        """The stored vectors of ``ids``, in the order asked."""
        with self._reading(f"vectors of collection {name!r}"):
            raw = self.collection(name).get(ids=list(ids), include=["embeddings"])
        by_id = dict(zip(raw["ids"], raw["embeddings"], strict=True))
        return np.asarray([by_id[i] for i in ids], dtype=np.float32)

    def _close_client(self) -> None:
        """Release chromadb's System (its caches, the collections' loaded indexes)."""
        close = getattr(self.client, "close", None)  # chromadb >= 1.1
        if close is not None:
            with contextlib.suppress(Exception):
                close()

    def close(self) -> None:
        self._collections.clear()
        self._close_client()
        if self.copy_dir is not None:
            shutil.rmtree(self.copy_dir, ignore_errors=True)


_SQLITE_MAGIC = b"SQLite format 3\x00"
_CHROMA_TABLES = {"collections", "segments", "embeddings"}


def check_chroma_dir(path: str | Path) -> Path:
    """The resolved path of a Chroma directory, or a clear error naming the file.

    Refused before anything is opened or written: a missing folder, a folder without
    ``chroma.sqlite3`` (a Chroma < 0.4 DuckDB/Parquet store is named as such), a file that
    is not SQLite (corrupt), and an SQLite database without Chroma's tables (foreign:
    ``PersistentClient`` would silently initialise it as an empty store).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise SourceNotFound(
            f"Chroma directory {p} does not exist",
            hint="pass chroma_path= the folder holding chroma.sqlite3",
        )
    db = p / "chroma.sqlite3"
    if not db.is_file():
        if any(p.glob("chroma-*.parquet")):
            raise SourceUnreadable(
                f"{p} is a Chroma store from before 0.4 (DuckDB + Parquet), which this "
                "Chroma version cannot open",
                hint="convert it with Chroma's migration tool (pip install chroma-migrate; "
                "chroma-migrate), then pass the new folder",
            )
        raise SourceNotFound(
            f"{p} is not a Chroma store (no chroma.sqlite3 inside)",
            hint="pass the folder given to chromadb.PersistentClient(path=...)",
        )
    _check_sqlite(db)
    return p.resolve()


def _check_sqlite(db: Path) -> None:
    with open(db, "rb") as fh:
        magic = fh.read(len(_SQLITE_MAGIC))
    if magic != _SQLITE_MAGIC:
        raise SourceUnreadable(
            f"{db} is not an SQLite database (corrupt or not written by Chroma)",
            hint="restore the folder from a backup (opsbook migrate restore); nothing was "
            "written to the target",
        )
    try:  # immutable: read without creating journals or touching the file
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)) as c:
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise SourceUnreadable(
            f"{db} is a damaged SQLite database: {exc}",
            hint="restore the folder from a backup (opsbook migrate restore); nothing was "
            "written to the target",
        ) from exc
    missing = _CHROMA_TABLES - tables
    if missing:
        raise SourceUnreadable(
            f"{db} is an SQLite database but not a Chroma store (no {sorted(missing)} tables)",
            hint="pass the folder given to chromadb.PersistentClient(path=...)",
        )


def copy_store(src: Path, dest: Path) -> Path:
    """Copy a Chroma directory (the copy is what gets opened)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dest)
    return dest


def _persistent(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


def _http(url: str) -> Any:
    import chromadb
    from chromadb.config import Settings

    parsed = urlparse(url if "://" in url else f"http://{url}")
    if not parsed.hostname:
        raise SourceNotFound(
            f"cannot read a host from chroma_url {url!r}",
            hint="use http://host:port, e.g. http://127.0.0.1:8000",
        )
    port = parsed.port or (443 if parsed.scheme == "https" else 8000)
    try:
        client = chromadb.HttpClient(
            host=parsed.hostname,
            port=port,
            ssl=parsed.scheme == "https",
            settings=Settings(anonymized_telemetry=False),
        )
        client.heartbeat()
    except Exception as exc:  # chromadb raises assorted httpx/ValueError types
        raise SourceUnavailable(
            f"Chroma server at {url} is unreachable: {exc}",
            hint="start it (chroma run --path DIR --port N) or fix chroma_url",
        ) from exc
    return client


def open_source(
    chroma_path: str | Path | None = None,
    chroma_url: str | None = None,
    work_dir: str | Path | None = None,
) -> ChromaSource:
    """Open a Chroma directory (through a fresh copy in ``work_dir``) or a Chroma server."""
    if bool(chroma_path) == bool(chroma_url):
        raise SourceNotFound(
            "give exactly one of chroma_path or chroma_url",
            hint="chroma_path for a directory, chroma_url for a server",
        )
    if chroma_url:
        return ChromaSource(_http(chroma_url), f"url:{chroma_url.rstrip('/')}")
    src = check_chroma_dir(chroma_path)  # type: ignore[arg-type]
    if work_dir is None:
        raise SourceNotFound("a directory source needs a work_dir to hold its copy")
    copy = copy_store(src, Path(work_dir) / "source-copies" / uuid.uuid4().hex[:12])
    origin = str(src / "chroma.sqlite3")
    try:
        client = _persistent(copy)
    except Exception as exc:  # chromadb: InternalError, a newer store's migrations, ...
        shutil.rmtree(copy, ignore_errors=True)
        raise SourceUnreadable(
            f"Chroma cannot open {origin}: {type(exc).__name__}: {exc}",
            hint="a store written by another Chroma version may need that version to export "
            "it; a damaged one needs its backup. Nothing was written to the target",
        ) from exc
    return ChromaSource(client, f"dir:{src}", copy_dir=copy, origin=origin)
