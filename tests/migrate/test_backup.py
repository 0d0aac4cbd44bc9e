"""Backups are restorable and checked against their manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings

from opsbook.migrate import migrate, restore
from opsbook.migrate.backup import backup_directory, export_collections, verify_backup
from opsbook.migrate.errors import BackupError
from opsbook.migrate.payload import same_value
from opsbook.migrate.source import open_source

from .conftest import tree_digest


def _records(path: Path, scratch: Path) -> dict[str, dict]:
    copy = scratch / f"read-{len(list(scratch.glob('read-*')))}"
    shutil.copytree(path, copy)
    client = chromadb.PersistentClient(
        path=str(copy), settings=Settings(anonymized_telemetry=False)
    )
    out = {}
    for c in client.list_collections():
        col = client.get_collection(c.name, embedding_function=None)
        got = col.get(include=["embeddings", "metadatas", "documents"])
        out[c.name] = {
            "space": col.configuration["hnsw"]["space"],
            "rows": {
                i: (list(map(float, e)), d, m)
                for i, e, d, m in zip(
                    got["ids"], got["embeddings"], got["documents"], got["metadatas"], strict=True
                )
            },
        }
    return out


def test_directory_backup_restores_byte_identical(demo_store: Path, tmp_path: Path) -> None:
    backup = backup_directory(demo_store, tmp_path / "backups")
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["kind"] == "directory" and "chroma.sqlite3" in manifest["files"]
    restored = restore(backup, tmp_path / "restored")
    assert tree_digest(restored) == tree_digest(demo_store)


def test_damaged_backup_is_refused(demo_store: Path, tmp_path: Path) -> None:
    backup = backup_directory(demo_store, tmp_path / "backups")
    with open(backup / "store" / "chroma.sqlite3", "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00garbage\x00")
    with pytest.raises(BackupError, match="does not match"):
        verify_backup(backup)
    with pytest.raises(BackupError):
        restore(backup, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_restore_refuses_a_non_empty_destination(demo_store: Path, tmp_path: Path) -> None:
    backup = backup_directory(demo_store, tmp_path / "backups")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        restore(backup, tmp_path / "busy")


def test_export_restores_every_record_with_types(demo_store: Path, tmp_path: Path) -> None:
    source = open_source(str(demo_store), work_dir=str(tmp_path))
    try:
        export = export_collections(source, source.names(), tmp_path / "backups")
    finally:
        source.close()
    assert sorted(p.name for p in export.glob("*.parquet")) == [
        "product-docs.parquet",
        "release-notes.parquet",
        "support-articles.parquet",
    ]
    restored = restore(export, tmp_path / "restored")
    want, got = _records(demo_store, tmp_path), _records(restored, tmp_path)
    assert want.keys() == got.keys()
    for name in want:
        assert got[name]["space"] == want[name]["space"]
        assert got[name]["rows"].keys() == want[name]["rows"].keys()
        for cid, (emb, doc, meta) in want[name]["rows"].items():
            g_emb, g_doc, g_meta = got[name]["rows"][cid]
            assert same_value(g_doc, doc) and same_value(g_meta, meta)
            if want[name]["space"] == "cosine":  # Chroma itself rounds cosine vectors on add
                assert np.allclose(g_emb, emb, rtol=2e-6, atol=1e-7)
            else:
                assert g_emb == emb


def test_live_migration_takes_a_backup_first(demo_store: Path, tmp_path: Path) -> None:
    result = migrate(
        chroma_path=str(demo_store),
        work_dir=str(tmp_path),
        dry_run=False,
        collections=["release-notes"],
        backup_dir=str(tmp_path / "bk"),
    )
    assert result.backup_path and Path(result.backup_path).parent == tmp_path / "bk"
    verify_backup(Path(result.backup_path))


def test_failed_backup_leaves_nothing(
    demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the copy fails half-way; no partial backup folder remains."""
    import opsbook.migrate.backup as backup_mod

    def broken_copy(src: Path, dest: Path) -> Path:
        dest.mkdir(parents=True)
        (dest / "chroma.sqlite3").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(backup_mod, "copy_store", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        backup_directory(demo_store, tmp_path / "backups")
    assert not any((tmp_path / "backups").iterdir())
