"""End to end on real engines: Chroma PersistentClient → Qdrant local mode / qdrant_edge."""

from __future__ import annotations

import shutil
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings

from opsbook.migrate import cleanup, migrate, plan
from opsbook.migrate.errors import ValidationFailed
from opsbook.migrate.ids import point_id
from opsbook.migrate.payload import DOCUMENT_KEY, METADATA_KEY, same_value
from opsbook.migrate.run import MigrationResult
from opsbook.migrate.source import ChromaSource
from opsbook.migrate.target import open_target

from .conftest import SMALL_DOCS, tree_digest


def _source_records(store: Path, scratch: Path) -> dict[str, dict]:
    """Every record of a store, read from a copy (opening a store may migrate its files)."""
    copy = scratch / "read-copy"
    shutil.copytree(store, copy)
    client = chromadb.PersistentClient(
        path=str(copy), settings=Settings(anonymized_telemetry=False)
    )
    out = {}
    for col in client.list_collections():
        got = client.get_collection(col.name, embedding_function=None).get(
            include=["embeddings", "metadatas", "documents"]
        )
        out[col.name] = {
            i: (e, d, m)
            for i, e, d, m in zip(
                got["ids"], got["embeddings"], got["documents"], got["metadatas"], strict=True
            )
        }
    return out


@pytest.fixture(scope="module")
def migrated(
    demo_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[MigrationResult, Path, dict]:
    work = tmp_path_factory.mktemp("work")
    before = tree_digest(demo_store)
    result = migrate(chroma_path=str(demo_store), work_dir=str(work), dry_run=False)
    assert tree_digest(demo_store) == before, "the source directory changed"
    return result, work, before


def test_default_target_migrates_and_cuts_over(migrated) -> None:
    result, work, _ = migrated
    assert result.integrity_ok and result.cutover_done
    assert result.total_records == SMALL_DOCS
    assert result.config.target == "local"
    with open_target("local", work / "qdrant") as target:
        aliases = target.aliases()
        for c in result.collections:
            assert aliases[c.alias] == c.staging
            assert target.count(c.alias) == c.info.count
            assert (
                target.params(c.alias)[1]
                == {"support-articles": "Cosine", "product-docs": "Euclid", "release-notes": "Dot"}[
                    c.info.name
                ]
            )


def test_source_files_unchanged(migrated, demo_store: Path) -> None:
    _, _, before = migrated
    assert before and tree_digest(demo_store) == before


def test_payload_types_and_awkward_ids_survive_reopen(
    migrated, demo_store: Path, tmp_path: Path
) -> None:
    result, work, _ = migrated
    source = _source_records(demo_store, tmp_path)["support-articles"]
    assert {"0042", "42", "café-ß-日本-001"} <= set(source)
    with open_target("local", work / "qdrant") as target:  # reopened from disk
        ids = list(source)
        found = target.retrieve("support-articles", [point_id(i) for i in ids])
        assert len(found) == len(ids)
        for cid in ids:
            emb, doc, meta = source[cid]
            vec, payload = found[point_id(cid)]
            assert payload["chroma_id"] == cid
            assert same_value(payload[DOCUMENT_KEY], doc)
            assert same_value(payload[METADATA_KEY], meta)
            unit = np.asarray(emb, np.float32) / np.linalg.norm(emb)
            assert np.max(np.abs(vec - unit)) <= 1e-6
    kinds = {type(v) for m in (s[2] for s in source.values()) if m for v in m.values()}
    assert {int, float, bool, str, list} <= kinds
    assert any(s[2] is None for s in source.values()) and any(s[1] == "" for s in source.values())


def test_rerun_is_idempotent_and_keeps_previous_target(migrated, demo_store: Path) -> None:
    result, work, _ = migrated
    again = migrate(
        chroma_path=str(demo_store), work_dir=str(work), dry_run=False, resume=True, backup=False
    )
    assert again.integrity_ok
    assert [c.staging for c in again.collections] == [c.staging for c in result.collections]
    assert all(c.resumed_from == c.info.count and not c.batches for c in again.collections)
    assert again.records_written == 0 and again.records_per_s == 0.0
    assert result.records_written == result.total_records and result.records_per_s > 0
    fresh = migrate(chroma_path=str(demo_store), work_dir=str(work), dry_run=False, backup=False)
    assert fresh.cutover_done
    with open_target("local", work / "qdrant") as target:
        names = target.collections()
        for old, new in zip(result.collections, fresh.collections, strict=True):
            assert old.staging in names and new.staging in names  # previous target stays
            assert target.aliases()[new.alias] == new.staging
    deleted = cleanup(chroma_path=str(demo_store), work_dir=str(work))
    assert sorted(deleted) == sorted(c.staging for c in result.collections)


def test_edge_target(demo_store: Path, tmp_path: Path) -> None:
    result = migrate(
        chroma_path=str(demo_store),
        work_dir=str(tmp_path),
        target="edge",
        dry_run=False,
        collections=["product-docs"],
    )
    assert result.integrity_ok and result.cutover_done
    with open_target("edge", tmp_path / "qdrant") as target:
        assert target.aliases() == {"product-docs": result.collections[0].staging}
        assert target.count("product-docs") == result.collections[0].info.count


def test_dry_run_reports_and_writes_nothing(demo_store: Path, tmp_path: Path) -> None:
    p = plan(chroma_path=str(demo_store), work_dir=str(tmp_path))
    assert p.ok and p.total_records == SMALL_DOCS and p.estimated_s > 0
    table = p.table().set_index("collection")
    assert table.loc["product-docs", "qdrant_distance"] == "Euclid"
    assert table.loc["support-articles", "qdrant_distance"] == "Cosine"
    assert table.loc["release-notes", "qdrant_distance"] == "Dot"
    assert table["notes"].sum() > 0  # None metadata, empty and None documents are reported
    assert not (tmp_path / "qdrant").exists() and not (tmp_path / "backup").exists()
    assert migrate(chroma_path=str(demo_store), work_dir=str(tmp_path)).__class__.__name__ == "Plan"


@pytest.fixture()
def nan_in_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: one record of release-notes reads back with a NaN vector.

    Chroma 1.5 refuses to store NaN vectors or non-finite metadata, so an older or
    damaged store is simulated at the read boundary.
    """
    real_read = ChromaSource.read

    def read(self: ChromaSource, name: str, offset: int, limit: int):
        batch = real_read(self, name, offset, limit)
        if name == "release-notes" and offset == 0 and len(batch):
            batch.vectors = batch.vectors.copy()
            batch.vectors[0, 0] = np.nan
        return batch

    monkeypatch.setattr(ChromaSource, "read", read)


def test_validation_failure_blocks_live_run(
    demo_store: Path, tmp_path: Path, nan_in_source
) -> None:
    p = plan(chroma_path=str(demo_store), work_dir=str(tmp_path))
    assert not p.ok
    row = p.table().set_index("collection").loc["release-notes"]
    assert row["findings"].get("non_finite_vector") == 1 and row["errors"] == 1
    with pytest.raises(ValidationFailed):
        migrate(
            chroma_path=str(demo_store),
            work_dir=str(tmp_path),
            dry_run=False,
            collections=["release-notes"],
        )
    with open_target("local", tmp_path / "qdrant") as target:
        assert target.collections() == [] and target.aliases() == {}
    assert not list((tmp_path / "checkpoints").glob("*.json"))


def test_empty_collection_is_reported_not_created(store: Path, tmp_path: Path) -> None:
    client = chromadb.PersistentClient(
        path=str(store), settings=Settings(anonymized_telemetry=False)
    )
    client.create_collection("empty-one", embedding_function=None)
    p = plan(chroma_path=str(store), work_dir=str(tmp_path))
    assert p.table().set_index("collection").loc["empty-one", "records"] == 0
    result = migrate(
        chroma_path=str(store),
        work_dir=str(tmp_path),
        dry_run=False,
        collections=["empty-one", "release-notes"],
        backup=False,
    )
    assert result.skipped == ["empty-one"] and result.integrity_ok and result.cutover_done
    with open_target("local", tmp_path / "qdrant") as target:
        assert list(target.aliases()) == ["release-notes"]


def test_the_download_guard_is_armed() -> None:
    """Every test here runs under the guard; prove it would catch an embedding call."""
    from chromadb.utils.embedding_functions import DefaultEmbeddingFunction

    with pytest.raises(AssertionError, match="ONNX"):
        DefaultEmbeddingFunction()(["hello"])


def test_local_writes_use_wal_then_restore_the_default_journal(tmp_path: Path) -> None:
    import sqlite3

    target = open_target("local", tmp_path / "q")
    target.create_collection("c1", 4, "Dot")
    target.upsert("c1", [point_id("a")], np.ones((1, 4), np.float32), [{"chroma_id": "a"}])
    conn = target._wal["c1"]
    assert conn is not None and conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    target.close()
    files = list((tmp_path / "q").rglob("storage.sqlite"))
    assert len(files) == 1
    with sqlite3.connect(files[0]) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    with open_target("local", tmp_path / "q") as again:
        assert again.count("c1") == 1


def test_dry_run_leaves_an_existing_target_byte_identical(migrated, demo_store: Path) -> None:
    _, work, _ = migrated
    before = tree_digest(work / "qdrant")
    p = plan(chroma_path=str(demo_store), work_dir=str(work))
    assert p.ok and all(c.current for c in p.collections)  # it saw the live aliases
    assert tree_digest(work / "qdrant") == before
