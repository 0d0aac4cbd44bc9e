"""Qdrant targets behind one small interface, chosen by name.

* ``local``  — ``QdrantClient(path=...)``: qdrant-client's embedded local mode. The
  default: same client API as a server, real aliases with an atomic switch, and the
  resulting folder opens with ``QdrantClient(path=...)``. Local mode commits each point
  to SQLite; writing in WAL mode lifts it from ~600-900 to ~2,500-4,500 points/s here.
* ``memory`` — ``QdrantClient(":memory:")``: local mode without a disk (tests, benchmarks).
* ``edge``   — ``qdrant_edge``: the real Qdrant engine in-process (~20k points/s). A
  shard has no collections or aliases, so each collection is a shard directory and the
  aliases live in ``aliases.json``, switched atomically with one ``os.replace``.
* ``server`` — a Qdrant server by URL, API key from an environment variable.

Clients are created when a target is opened, never at import.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import shutil
import struct
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from opsbook.migrate.errors import TargetUnavailable
from opsbook.migrate.payload import ID_KEY

KINDS = ("local", "memory", "edge", "server")
#: Sampled queries the integrity check sends to qdrant-client's local mode (slow search).
LOCAL_SEARCH_QUERIES = 200
Record = tuple[np.ndarray, dict]


def _page(points: list[Any]) -> list[tuple[str, np.ndarray, dict]]:
    """(point id, float32 vector, payload) of scrolled points.

    Each vector list is packed straight into float32 bytes (``struct``, ~3x faster than
    ``np.asarray`` on a list of Python floats) and viewed as an array without a copy.
    A missing vector (a foreign point) comes out as ``np.asarray(None)``, as before.
    """
    out = []
    for p in points:
        v = p.vector
        try:
            row = np.frombuffer(_packer(len(v)).pack(*v), dtype=np.float32)
        except (TypeError, struct.error, OverflowError):  # None, nested, out of range
            with np.errstate(over="ignore", invalid="ignore"):
                row = np.asarray(v, dtype=np.float32)
        out.append((str(p.id), row, p.payload or {}))
    return out


@functools.lru_cache(maxsize=8)
def _packer(size: int) -> struct.Struct:
    return struct.Struct(f"={size}f")


class Target(ABC):
    """What the migration needs from Qdrant: collections, points, search, aliases."""

    kind: str
    identity: str
    #: searches may run while records are scrolled (False: a search changes what a scroll
    #: reads; qdrant-client local mode re-normalises stored Cosine vectors in place)
    reads_in_parallel: bool = False

    @abstractmethod
    def collections(self) -> list[str]: ...

    @abstractmethod
    def aliases(self) -> dict[str, str]:
        """alias → collection."""

    @abstractmethod
    def params(self, name: str) -> tuple[int, str] | None:
        """(vector size, distance name) of a collection or alias; None when absent."""

    @abstractmethod
    def create_collection(self, name: str, size: int, distance: str) -> None: ...

    @abstractmethod
    def delete_collection(self, name: str) -> None: ...

    @abstractmethod
    def upsert(
        self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None: ...

    @abstractmethod
    def count(self, name: str) -> int: ...

    @abstractmethod
    def retrieve(self, name: str, ids: list[str]) -> dict[str, Record]:
        """point id → (float32 vector, payload) for the ids that exist."""

    @abstractmethod
    def scroll_ids(self, name: str, page: int = 2000) -> Iterator[list[tuple[str, Any]]]:
        """Pages of (point id, payload chroma_id) over the whole collection."""

    @abstractmethod
    def scroll_records(
        self, name: str, page: int = 2000
    ) -> Iterator[list[tuple[str, np.ndarray, dict]]]:
        """Pages of (point id, float32 vector, payload) over the whole collection."""

    @abstractmethod
    def search(
        self, name: str, queries: np.ndarray, k: int, exact: bool = True
    ) -> list[list[tuple[str, float]]]:
        """Top-k (point id, Qdrant score) per query; exact search unless ``exact=False``."""

    @abstractmethod
    def ann_index(self, name: str) -> str | None:
        """What an ``exact=False`` search uses when it is approximate; None = it is exact."""

    @abstractmethod
    def switch_aliases(self, changes: list[tuple[str, str | None]]) -> None:
        """Point each alias at a collection (None deletes it), all in one atomic step."""

    def delete_points(self, name: str, ids: list[str]) -> None:
        raise NotImplementedError

    def search_budget(self) -> int | None:
        """How many sampled queries the integrity check sends to this target (None = all)."""
        return None

    def exists(self, name: str) -> bool:
        return name in self.collections()

    def reopen(self) -> None:
        """Close and open again, so what follows reads what was persisted (no-op for servers)."""
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QdrantClientTarget(Target):
    """A target reached through qdrant-client: local path, in-memory, or server."""

    def __init__(self, client: Any, kind: str, identity: str) -> None:
        from qdrant_client import models

        self.client = client
        self.kind = kind
        self.identity = identity
        self.reads_in_parallel = kind == "server"  # a separate process answers both
        self.m = models
        self._wal: dict[str, Any] = {}  # local collection -> its SQLite connection in WAL mode

    def collections(self) -> list[str]:
        return sorted(c.name for c in self.client.get_collections().collections)

    def aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def params(self, name: str) -> tuple[int, str] | None:
        real = self.aliases().get(name, name)
        if real not in self.collections():
            return None
        vectors = self.client.get_collection(real).config.params.vectors
        return int(vectors.size), str(vectors.distance.value)

    def create_collection(self, name: str, size: int, distance: str) -> None:
        self.client.create_collection(
            name, vectors_config=self.m.VectorParams(size=size, distance=self.m.Distance(distance))
        )

    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:
        if self.kind == "local" and name not in self._wal:
            self._fast_writes(name)
        batch = self.m.Batch(ids=ids, vectors=vectors.tolist(), payloads=payloads)
        self.client.upsert(name, points=batch, wait=True)

    def _fast_writes(self, name: str) -> None:
        """Put a local collection's SQLite file in WAL mode while we write (~8x faster).

        Local mode commits every point on its own; in the default rollback-journal mode
        each commit waits for the disk. WAL with synchronous=NORMAL still survives a killed
        process (the SIGKILL test covers it); only a power cut could drop the last commits,
        which verification would then report as missing. The file is switched back to
        its default journal on close. This reaches into qdrant-client's local storage; if
        its layout changes, writes simply stay at the default speed.
        """
        conn = None
        try:
            conn = self.client._client.collections[name].storage.storage
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except Exception:  # any layout change: keep the defaults
            conn = None
        self._wal[name] = conn

    def delete_points(self, name: str, ids: list[str]) -> None:
        self.client.delete(name, points_selector=self.m.PointIdsList(points=ids), wait=True)

    def count(self, name: str) -> int:
        return int(self.client.count(name, exact=True).count)

    def retrieve(self, name: str, ids: list[str]) -> dict[str, Record]:
        found = self.client.retrieve(name, ids=ids, with_vectors=True, with_payload=True)
        return {str(p.id): (np.asarray(p.vector, dtype=np.float32), p.payload or {}) for p in found}

    def scroll_ids(self, name: str, page: int = 2000) -> Iterator[list[tuple[str, Any]]]:
        offset = None
        while True:
            points, offset = self.client.scroll(
                name, limit=page, offset=offset, with_payload=[ID_KEY], with_vectors=False
            )
            if points:
                yield [(str(p.id), (p.payload or {}).get(ID_KEY)) for p in points]
            if offset is None:
                return

    def scroll_records(
        self, name: str, page: int = 2000
    ) -> Iterator[list[tuple[str, np.ndarray, dict]]]:
        offset = None
        while True:
            points, offset = self.client.scroll(
                name, limit=page, offset=offset, with_payload=True, with_vectors=True
            )
            if points:
                yield _page(points)
            if offset is None:
                return

    def search(
        self, name: str, queries: np.ndarray, k: int, exact: bool = True
    ) -> list[list[tuple[str, float]]]:
        # A server searches its HNSW index unless told exact=True; local mode always scans.
        params = self.m.SearchParams(exact=exact)
        out: list[list[tuple[str, float]]] = []
        for start in range(0, len(queries), 256):  # bounded request size
            requests = [
                self.m.QueryRequest(query=q.tolist(), limit=k, params=params)
                for q in queries[start : start + 256]
            ]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                responses = self.client.query_batch_points(name, requests=requests)
            out.extend([(str(p.id), float(p.score)) for p in r.points] for r in responses)
        return out

    def search_budget(self) -> int | None:
        # local mode re-normalises every stored cosine vector and deep-copies the request
        # for each query (~60 ms/query for 2,750 x 384 here): it checks LOCAL_SEARCH_QUERIES
        return LOCAL_SEARCH_QUERIES if self.kind in ("local", "memory") else None

    def ann_index(self, name: str) -> str | None:
        if self.kind in ("local", "memory"):
            return None  # qdrant-client local mode has no index: every search is a scan
        hnsw = self.client.get_collection(self.aliases().get(name, name)).config.hnsw_config
        return f"HNSW (m={hnsw.m}, ef_construct={hnsw.ef_construct})"

    def switch_aliases(self, changes: list[tuple[str, str | None]]) -> None:
        current = self.aliases()
        ops: list[Any] = []
        for alias, collection in changes:
            if alias in current:
                ops.append(
                    self.m.DeleteAliasOperation(delete_alias=self.m.DeleteAlias(alias_name=alias))
                )
            if collection is not None:
                ops.append(
                    self.m.CreateAliasOperation(
                        create_alias=self.m.CreateAlias(
                            collection_name=collection, alias_name=alias
                        )
                    )
                )
        if ops:
            self.client.update_collection_aliases(change_aliases_operations=ops)

    def reopen(self) -> None:
        if self.kind == "local":
            from qdrant_client import QdrantClient

            path = self.identity.split(":", 1)[1]
            self.close()
            # local mode holds every point as Python objects: drop the old client's before
            # the new one loads them again (else both sets make the peak: 2.6 GB for 100k)
            self.client = None
            gc.collect()
            self.client = QdrantClient(path=path)

    def _restore_journals(self) -> None:
        for conn in self._wal.values():
            if conn is not None:
                with contextlib.suppress(Exception):  # a deleted collection's closed file
                    conn.execute("PRAGMA journal_mode=DELETE")
        self._wal.clear()

    def delete_collection(self, name: str) -> None:
        self._wal.pop(name, None)
        self.client.delete_collection(name)

    def close(self) -> None:
        self._restore_journals()
        self.client.close()


class EdgeTarget(Target):
    """Collections as ``qdrant_edge`` shards under one folder, aliases in a JSON file."""

    kind = "edge"
    reads_in_parallel = True

    def __init__(self, root: Path) -> None:
        import qdrant_edge

        self.qe = qdrant_edge
        self.root = root
        self.identity = f"edge:{root}"
        (root / "collections").mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, Any] = {}

    def _dir(self, name: str) -> Path:
        return self.root / "collections" / name

    def _shard(self, name: str) -> Any:
        name = self.aliases().get(name, name)
        if name not in self._shards:
            if not self._dir(name).exists():
                raise KeyError(f"no collection {name!r} in {self.root}")
            self._shards[name] = self.qe.EdgeShard.load(str(self._dir(name)))
        return self._shards[name]

    def collections(self) -> list[str]:
        return sorted(p.name for p in (self.root / "collections").iterdir() if p.is_dir())

    def aliases(self) -> dict[str, str]:
        path = self.root / "aliases.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def params(self, name: str) -> tuple[int, str] | None:
        real = self.aliases().get(name, name)
        meta = self._dir(real) / "opsbook.json"
        if not meta.exists():
            return None
        data = json.loads(meta.read_text())
        return int(data["size"]), str(data["distance"])

    def create_collection(self, name: str, size: int, distance: str) -> None:
        qe = self.qe
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=size, distance=getattr(qe.Distance, distance))
        )
        self._shards[name] = qe.EdgeShard.create(str(self._dir(name)), config)
        (self._dir(name) / "opsbook.json").write_text(
            json.dumps({"size": size, "distance": distance})
        )

    def delete_collection(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:
        qe = self.qe
        points = [
            qe.Point(i, v, p) for i, v, p in zip(ids, vectors.tolist(), payloads, strict=True)
        ]
        self._shard(name).update(qe.UpdateOperation.upsert_points(points))

    def delete_points(self, name: str, ids: list[str]) -> None:
        self._shard(name).update(self.qe.UpdateOperation.delete_points(ids))

    def count(self, name: str) -> int:
        return int(self._shard(name).count(self.qe.CountRequest(exact=True)))

    def retrieve(self, name: str, ids: list[str]) -> dict[str, Record]:
        found = self._shard(name).retrieve(ids, with_payload=True, with_vector=True)
        return {str(p.id): (np.asarray(p.vector, dtype=np.float32), p.payload or {}) for p in found}

    def scroll_ids(self, name: str, page: int = 2000) -> Iterator[list[tuple[str, Any]]]:
        shard, offset = self._shard(name), None
        while True:
            req = self.qe.ScrollRequest(
                offset=offset, limit=page, with_payload=True, with_vector=False
            )
            points, offset = shard.scroll(req)
            if points:
                yield [(str(p.id), (p.payload or {}).get(ID_KEY)) for p in points]
            if offset is None:
                return

    def scroll_records(
        self, name: str, page: int = 2000
    ) -> Iterator[list[tuple[str, np.ndarray, dict]]]:
        shard, offset = self._shard(name), None
        while True:
            req = self.qe.ScrollRequest(
                offset=offset, limit=page, with_payload=True, with_vector=True
            )
            points, offset = shard.scroll(req)
            if points:
                yield _page(points)
            if offset is None:
                return

    def search(
        self, name: str, queries: np.ndarray, k: int, exact: bool = True
    ) -> list[list[tuple[str, float]]]:
        qe, shard = self.qe, self._shard(name)
        out: list[list[tuple[str, float]]] = []
        for start in range(0, len(queries), 256):  # one pass over the segments per batch
            requests = [
                qe.QueryRequest(
                    query=qe.Query.Nearest(q.tolist()),
                    limit=k,
                    params=qe.SearchParams(exact=exact),
                    with_payload=False,
                )
                for q in queries[start : start + 256]
            ]
            answers = shard.query_batch(qe.QueryBatchRequest(requests))
            out.extend([(str(p.id), float(p.score)) for p in a] for a in answers)
        return out

    def ann_index(self, name: str) -> str | None:
        indexed = int(self._shard(name).info().indexed_vectors_count)
        # below the optimizer's indexing threshold a shard has no HNSW graph: it scans
        return f"HNSW ({indexed} vectors indexed)" if indexed else None

    def switch_aliases(self, changes: list[tuple[str, str | None]]) -> None:
        aliases = self.aliases()
        for alias, collection in changes:
            if collection is None:
                aliases.pop(alias, None)
            else:
                aliases[alias] = collection
        tmp = self.root / "aliases.json.tmp"
        with open(tmp, "w") as fh:
            json.dump(aliases, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / "aliases.json")

    def reopen(self) -> None:
        self.close()

    def close(self) -> None:
        for shard in self._shards.values():
            shard.flush()
            shard.close()
        self._shards.clear()


def open_target(
    kind: str = "local",
    path: str | Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
) -> Target:
    """Open a target by kind; a server is checked for reachability before anything is written."""
    from opsbook.errors import ConfigError

    if kind not in KINDS:
        raise ConfigError(f"unknown target {kind!r}", hint=f"choose one of {list(KINDS)}")
    if kind == "server":
        return _server(url, api_key)
    if kind == "memory":
        from qdrant_client import QdrantClient

        return QdrantClientTarget(
            QdrantClient(location=":memory:"), "memory", f"memory:{id(object())}"
        )
    if not path:
        raise ConfigError(f"target {kind!r} needs a path", hint="pass qdrant_path=...")
    root = Path(path).expanduser().resolve()
    if kind == "edge":
        return EdgeTarget(root)
    from qdrant_client import QdrantClient

    root.mkdir(parents=True, exist_ok=True)
    try:
        client = QdrantClient(path=str(root))
    except RuntimeError as exc:  # "already accessed by another instance"
        raise TargetUnavailable(
            f"Qdrant local store {root} is in use: {exc}",
            hint="close the other client or process using this path",
        ) from exc
    return QdrantClientTarget(client, "local", f"local:{root}")


def _server(url: str | None, api_key: str | None) -> Target:
    from qdrant_client import QdrantClient

    from opsbook.errors import ConfigError

    if not url:
        raise ConfigError("target 'server' needs qdrant_url", hint="e.g. http://127.0.0.1:6333")
    client = QdrantClient(url=url, api_key=api_key, timeout=10, check_compatibility=False)
    try:
        client.get_collections()
    except Exception as exc:  # httpx / grpc / ResponseHandlingException
        raise TargetUnavailable(
            f"Qdrant server at {url} is unreachable: {exc}",
            hint="check qdrant_url, the network, and the API key variable",
        ) from exc
    return QdrantClientTarget(client, "server", f"server:{url.rstrip('/')}")
