"""Bad input → a clear error, and nothing written (no target collection, no backup)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from opsbook.errors import ConfigError, ServiceUnavailable
from opsbook.migrate import migrate, plan
from opsbook.migrate.errors import (
    SourceNotFound,
    SourceUnavailable,
    SourceUnreadable,
    TargetConflict,
    TargetUnavailable,
    UnknownCollection,
)
from opsbook.migrate.target import open_target

from .conftest import tree_digest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nothing_written(work: Path) -> None:
    assert not (work / "backup").exists()
    assert not list(work.glob("checkpoints/*.json"))
    qdrant = work / "qdrant"
    if qdrant.exists():
        with open_target("local", qdrant) as target:
            assert [c for c in target.collections() if "__" in c] == []


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFound, match="does not exist") as err:
        migrate(chroma_path=str(tmp_path / "nope"), work_dir=str(tmp_path), dry_run=False)
    assert err.value.hint and isinstance(err.value, ConfigError)
    _nothing_written(tmp_path)


def test_not_a_chroma_store(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceNotFound, match="not a Chroma store"):
        plan(chroma_path=str(tmp_path / "empty"), work_dir=str(tmp_path))


def test_unknown_collection_is_never_created(demo_store: Path, tmp_path: Path) -> None:
    before = tree_digest(demo_store)
    with pytest.raises(UnknownCollection, match="nope") as err:
        migrate(
            chroma_path=str(demo_store),
            work_dir=str(tmp_path),
            dry_run=False,
            collections=["product-docs", "nope"],
        )
    assert "product-docs" in err.value.hint
    assert tree_digest(demo_store) == before
    _nothing_written(tmp_path)


@pytest.mark.parametrize(("size", "distance"), [(8, "Euclid"), (384, "Dot")])
def test_target_with_other_size_or_distance(
    demo_store: Path, tmp_path: Path, size: int, distance: str
) -> None:
    with open_target("local", tmp_path / "qdrant") as target:
        target.create_collection("old", size, distance)
        target.switch_aliases([("product-docs", "old")])
    with pytest.raises(TargetConflict, match="product-docs"):
        migrate(chroma_path=str(demo_store), work_dir=str(tmp_path), dry_run=False)
    with pytest.raises(TargetConflict):
        plan(chroma_path=str(demo_store), work_dir=str(tmp_path))
    with open_target("local", tmp_path / "qdrant") as target:
        assert target.collections() == ["old"]
        assert target.aliases() == {"product-docs": "old"}
    _nothing_written(tmp_path)


def test_plain_collection_holding_the_alias_name(demo_store: Path, tmp_path: Path) -> None:
    with open_target("local", tmp_path / "qdrant") as target:
        target.create_collection("release-notes", 384, "Dot")
    with pytest.raises(TargetConflict, match="cannot become an alias"):
        migrate(chroma_path=str(demo_store), work_dir=str(tmp_path), dry_run=False)
    _nothing_written(tmp_path)


def test_unreachable_qdrant_server(demo_store: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(TargetUnavailable, match="unreachable") as err:
        migrate(chroma_path=str(demo_store), work_dir=str(tmp_path), dry_run=False, qdrant_url=url)
    assert isinstance(err.value, ServiceUnavailable)
    _nothing_written(tmp_path)


def test_unreachable_chroma_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(SourceUnavailable, match="unreachable"):
        migrate(chroma_url=url, work_dir=str(tmp_path), dry_run=False)
    _nothing_written(tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 0},
        {"batch_size": "100"},
        {"recall_threshold": 1.5},
        {"chroma_url": "http://x:1"},  # both a path and a url
        {"target": "cloud"},
        {"colections": ["typo"]},
    ],
)
def test_bad_options(demo_store: Path, tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        migrate(chroma_path=str(demo_store), work_dir=str(tmp_path), dry_run=False, **kwargs)
    _nothing_written(tmp_path)


def _break_store(store: Path, how: str) -> None:
    import sqlite3

    db = store / "chroma.sqlite3"
    if how == "garbage":
        db.write_bytes(b"\x00garbage" * 5000)
    elif how == "truncated":
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    elif how == "foreign":
        db.unlink()
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE orders (id INTEGER)")
    elif how == "pre-0.4":
        db.unlink()
        (store / "chroma-collections.parquet").write_bytes(b"PAR1")
    elif how == "vectors-missing":  # vector segments gone and the log's vectors erased
        for d in store.iterdir():
            if d.is_dir():
                shutil.rmtree(d)
        with sqlite3.connect(db) as con:
            con.execute("UPDATE embeddings_queue SET vector = NULL")


@pytest.mark.parametrize(
    ("how", "match"),
    [
        ("garbage", "not an SQLite database"),
        ("truncated", "damaged SQLite|cannot open|cannot read"),
        ("foreign", "not a Chroma store"),
        ("pre-0.4", "before 0.4"),
        ("vectors-missing", "cannot read the vectors of collection"),
    ],
)
def test_unreadable_store_is_a_clear_error(
    store: Path, tmp_path: Path, how: str, match: str
) -> None:
    _break_store(store, how)
    work = tmp_path / "work"
    with pytest.raises(SourceUnreadable, match=match) as err:
        migrate(chroma_path=str(store), work_dir=str(work), dry_run=False)
    assert isinstance(err.value, ConfigError) and err.value.hint
    if how != "pre-0.4":
        assert str(store / "chroma.sqlite3") in str(err.value)
    _nothing_written(work)
    assert not any((work / "source-copies").glob("*"))  # the copy is removed too
