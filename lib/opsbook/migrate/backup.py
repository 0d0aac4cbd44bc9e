"""Restorable backups of the source, taken before anything is written.

* Directory source: a byte copy of the store plus ``manifest.json`` with a sha256 per
  file; :func:`restore` checks every hash before copying it back.
* Server source: a portable export, one Parquet file per collection (id, embedding as
  float32 list, document, metadata as JSON text so int/float/bool survive exactly) plus
  a manifest with each collection's metric and each file's sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opsbook.migrate.errors import BackupError
from opsbook.migrate.source import ChromaSource, copy_store

MANIFEST = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_tree(root: Path) -> dict[str, dict[str, Any]]:
    """relative path → {sha256, size} for every file under ``root``."""
    return {
        str(p.relative_to(root)): {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _new_dir(root: Path, prefix: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    dest = Path(root) / f"{prefix}-{stamp}"
    n = 1
    while dest.exists():
        n += 1
        dest = Path(root) / f"{prefix}-{stamp}-{n}"
    return dest


@contextlib.contextmanager
def _all_or_nothing(dest: Path) -> Iterator[Path]:
    """Remove a half-written backup folder if anything fails; the manifest is written last."""
    try:
        yield dest
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def backup_directory(src: Path, backup_root: Path) -> Path:
    """Copy a Chroma directory with a sha256 manifest; the copy is checked against the source."""
    with _all_or_nothing(_new_dir(backup_root, "chroma-dir")) as dest:
        return _backup_directory(src, dest)


def _backup_directory(src: Path, dest: Path) -> Path:
    before = hash_tree(src)
    copy_store(src, dest / "store")
    copied = hash_tree(dest / "store")
    if copied != before:
        raise BackupError(
            f"the copy of {src} differs from the source (was it being written?)",
            hint="stop the service writing to Chroma, then run again",
        )
    manifest = {"kind": "directory", "source": str(src), "created_at": time.time(), "files": copied}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return dest


def export_collections(
    source: ChromaSource, names: list[str], backup_root: Path, page: int = 1000
) -> Path:
    """Portable Parquet export of a (server) source's collections."""
    with _all_or_nothing(_new_dir(backup_root, "chroma-export")) as dest:
        dest.mkdir(parents=True)
        return _export(source, names, dest, page)


def _export(source: ChromaSource, names: list[str], dest: Path, page: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    collections = {}
    for name in names:
        info = source.info(name)
        col = source.collection(name)
        rows: dict[str, list] = {"id": [], "embedding": [], "document": [], "metadata": []}
        for batch in source.batches(name, page):
            rows["id"] += batch.ids
            rows["embedding"] += (
                [list(v) for v in batch.vectors]
                if batch.vectors is not None
                else [[] for _ in batch.ids]
            )
            rows["document"] += batch.documents
            rows["metadata"] += [None if m is None else json.dumps(m) for m in batch.metadatas]
        table = pa.table(
            {
                "id": pa.array(rows["id"], pa.string()),
                "embedding": pa.array(rows["embedding"], pa.list_(pa.float32())),
                "document": pa.array(rows["document"], pa.string()),
                "metadata": pa.array(rows["metadata"], pa.string()),
            }
        )
        path = dest / f"{name}.parquet"
        pq.write_table(table, path)
        collections[name] = {
            "file": path.name,
            "sha256": sha256_file(path),
            "count": info.count,
            "metric": info.metric,
            "dim": info.dim,
            "metadata": dict(col.metadata or {}),
        }
    manifest = {
        "kind": "export",
        "source": source.identity,
        "created_at": time.time(),
        "collections": collections,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return dest


def read_manifest(backup: Path) -> dict:
    path = Path(backup) / MANIFEST
    if not path.exists():
        raise BackupError(
            f"{backup} has no {MANIFEST}", hint="pass a folder made by the backup step"
        )
    return json.loads(path.read_text())


def verify_backup(backup: Path) -> dict:
    """Check every file against the manifest; return the manifest."""
    backup = Path(backup)
    manifest = read_manifest(backup)
    if manifest["kind"] == "directory":
        actual = hash_tree(backup / "store")
        if actual != manifest["files"]:
            want = manifest["files"]
            bad = sorted(k for k in set(actual) | set(want) if actual.get(k) != want.get(k))
            raise BackupError(
                f"backup {backup} does not match its manifest: {bad[:5]}",
                hint="the backup is damaged; take a new one from the source",
            )
    else:
        for name, entry in manifest["collections"].items():
            if sha256_file(backup / entry["file"]) != entry["sha256"]:
                raise BackupError(
                    f"export of {name!r} in {backup} does not match its manifest",
                    hint="the backup is damaged; take a new one",
                )
    return manifest


def restore(backup: str | Path, dest: str | Path, batch: int = 1000) -> Path:
    """Restore a backup into a new Chroma directory ``dest`` (which must not exist yet)."""
    backup, dest = Path(backup), Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(
            f"restore destination {dest} is not empty",
            hint="restore into a new folder, then swap it in",
        )
    manifest = verify_backup(backup)
    if manifest["kind"] == "directory":
        if dest.exists():
            dest.rmdir()
        return copy_store(backup / "store", dest)
    _restore_export(backup, manifest, dest, batch)
    return dest


def _restore_export(backup: Path, manifest: dict, dest: Path, batch: int) -> None:
    import chromadb
    import numpy as np
    import pyarrow.parquet as pq
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(dest), settings=Settings(anonymized_telemetry=False)
    )
    for name, entry in manifest["collections"].items():
        meta = {k: v for k, v in (entry.get("metadata") or {}).items() if not k.startswith("hnsw:")}
        col = client.create_collection(
            name,
            embedding_function=None,
            metadata=meta or None,
            configuration={"hnsw": {"space": entry["metric"]}},
        )
        table = pq.read_table(backup / entry["file"]).to_pydict()
        for start in range(0, len(table["id"]), batch):
            end = start + batch
            col.add(
                ids=table["id"][start:end],
                embeddings=np.asarray(table["embedding"][start:end], dtype=np.float32),
                documents=table["document"][start:end],
                metadatas=[
                    None if m is None else json.loads(m) for m in table["metadata"][start:end]
                ],
            )
