"""Injected corruption in staging fails verification and leaves the alias alone; rollback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opsbook.migrate import cleanup, migrate, rollback
from opsbook.migrate.errors import TargetConflict
from opsbook.migrate.ids import point_id
from opsbook.migrate.target import open_target

COL = "product-docs"  # l2, holds the awkward ids ("0042", "42", unicode)


@pytest.fixture()
def two_runs(demo_store: Path, tmp_path: Path) -> tuple[str, str, Path]:
    """A first migration cut over (alias → A), then a second one staged but not cut over (B)."""
    first = migrate(
        chroma_path=str(demo_store),
        work_dir=str(tmp_path),
        dry_run=False,
        collections=[COL],
        backup=False,
    )
    second = migrate(
        chroma_path=str(demo_store),
        work_dir=str(tmp_path),
        dry_run=False,
        collections=[COL],
        backup=False,
        cutover=False,
    )
    assert first.cutover_done and not second.cutover_done and second.integrity_ok
    return first.collections[0].staging, second.collections[0].staging, tmp_path


def _reverify(store: Path, work: Path, **kw: object):
    """Verify the staged second run again (resume: the checkpoint is done, nothing written)."""
    again = migrate(
        chroma_path=str(store),
        work_dir=str(work),
        dry_run=False,
        collections=[COL],
        backup=False,
        resume=True,
        cutover=False,
        **kw,
    )
    assert again.records_written == 0
    return again.collections[0].report


def _corrupt(qdrant: Path, staging: str, kind: str, chroma_id: str) -> None:
    with open_target("local", qdrant) as target:
        pid = point_id(chroma_id)
        vec, payload = target.retrieve(staging, [pid])[pid]
        if kind == "missing":
            target.delete_points(staging, [pid])
            return
        if kind == "metadata":
            payload = payload | {"metadata": {**(payload["metadata"] or {}), "page": 1.0}}
        elif kind == "document":
            payload = payload | {"document": (payload["document"] or "") + " (edited)"}
        elif kind == "vector":
            vec = vec.copy()
            vec[3] += 1e-4
        target.upsert(staging, [pid], vec[None, :], [payload])


@pytest.mark.parametrize("kind", ["missing", "metadata", "document", "vector"])
def test_corruption_blocks_cutover(two_runs, demo_store: Path, kind: str) -> None:
    a, b, work = two_runs
    _corrupt(work / "qdrant", b, kind, "0042")
    again = migrate(
        chroma_path=str(demo_store),
        work_dir=str(work),
        dry_run=False,
        collections=[COL],
        backup=False,
        resume=True,
    )
    assert again.collections[0].staging == b
    report = again.collections[0].report
    assert not again.integrity_ok and not again.cutover_done
    assert report.mismatches[kind] == 1
    # a missing point also breaks the count, and may drop out of a sampled query's top-10
    allowed = {kind, "count", "search"} if kind == "missing" else {kind}
    assert set(report.mismatches) <= allowed
    assert any(e["id"] == "0042" and e["kind"] == kind for e in report.examples)
    with open_target("local", work / "qdrant") as target:
        assert target.aliases()[COL] == a


def test_extra_and_duplicate_points_are_found(two_runs, demo_store: Path) -> None:
    _, b, work = two_runs
    with open_target("local", work / "qdrant") as target:
        vec, payload = next(iter(target.retrieve(b, [point_id("42")]).values()))
        # same chroma id under a foreign point id (what a different id scheme leaves behind)
        target.upsert(b, ["00000000-0000-4000-8000-000000000001"], vec[None, :], [payload])
    report = _reverify(demo_store, work)
    assert report.staging == b
    assert report.mismatches["duplicate"] == 1 and report.mismatches["count"] == 1
    # the copy also shows up in the exact search results of queries near "42"
    assert set(report.mismatches) <= {"duplicate", "count", "search"}
    assert any(e["kind"] == "duplicate" and e["id"] == "42" for e in report.examples)


def test_scrambled_vectors_fail_exact_search(two_runs, demo_store: Path) -> None:
    _, b, work = two_runs
    with open_target("local", work / "qdrant") as target:  # scramble every vector
        ids = [p for page in target.scroll_ids(b) for p, _ in page]
        found = target.retrieve(b, ids)
        rng = np.random.default_rng(1)
        vecs = rng.standard_normal((len(ids), 384)).astype(np.float32)
        target.upsert(b, ids, vecs, [found[i][1] for i in ids])
    report = _reverify(demo_store, work, sample_queries=10)  # truth rebuilt for 10 queries
    assert report.staging == b and report.mismatches["vector"] == len(ids)
    assert report.search.queries == 10 and report.mismatches["search"] == 10
    assert report.search.failures == 10 and not report.ok


def test_rollback_switches_the_alias_back(two_runs, demo_store: Path) -> None:
    a, b, work = two_runs
    cut = migrate(
        chroma_path=str(demo_store),
        work_dir=str(work),
        dry_run=False,
        collections=[COL],
        backup=False,
        resume=True,
    )
    assert cut.cutover_done and cut.collections[0].staging == b
    assert cut.cutover_entry["switches"] == [{"alias": COL, "from": a, "to": b}]
    undone = rollback(work_dir=str(work))
    assert undone == [{"alias": COL, "from": b, "to": a}]
    with open_target("local", work / "qdrant") as target:
        assert target.aliases()[COL] == a
        assert {a, b} <= set(target.collections())  # nothing deleted by a rollback
    # the first cutover is next in line: rolling it back removes the alias entirely
    assert rollback(work_dir=str(work)) == [{"alias": COL, "from": a, "to": None}]
    assert rollback(work_dir=str(work)) == []
    with open_target("local", work / "qdrant") as target:
        assert COL not in target.aliases()


def test_repeated_cutover_is_a_noop_and_labels_scope_rollback(two_runs, demo_store: Path) -> None:
    a, b, work = two_runs
    kw = {
        "chroma_path": str(demo_store),
        "work_dir": str(work),
        "dry_run": False,
        "collections": [COL],
        "backup": False,
        "resume": True,
    }
    cut = migrate(run_label="run-2", **kw)
    again = migrate(run_label="run-3", **kw)  # alias already on b: nothing to switch
    assert cut.cutover_entry["switches"] and again.cutover_entry["switches"] == []
    assert rollback(work_dir=str(work), run_label="run-3") == []  # run-3 switched nothing
    assert rollback(work_dir=str(work), run_label="run-2") == [{"alias": COL, "from": b, "to": a}]
    with open_target("local", work / "qdrant") as target:
        assert target.aliases()[COL] == a


def test_cleanup_removes_only_what_no_alias_uses(two_runs, demo_store: Path) -> None:
    a, b, work = two_runs
    migrate(
        chroma_path=str(demo_store),
        work_dir=str(work),
        dry_run=False,
        collections=[COL],
        backup=False,
        resume=True,
    )  # alias: a -> b
    assert cleanup(work_dir=str(work)) == [a]  # a was replaced, b is live
    with pytest.raises(TargetConflict, match="no longer exist"):
        rollback(work_dir=str(work))  # b -> a is impossible now: refused, nothing moves
    with open_target("local", work / "qdrant") as target:
        assert target.aliases()[COL] == b and target.collections() == [b]


def test_cleanup_after_rollback_drops_the_abandoned_copy(two_runs, demo_store: Path) -> None:
    a, b, work = two_runs
    migrate(
        chroma_path=str(demo_store),
        work_dir=str(work),
        dry_run=False,
        collections=[COL],
        backup=False,
        resume=True,
    )
    rollback(work_dir=str(work))  # b -> a
    assert cleanup(work_dir=str(work)) == [b]
    with open_target("local", work / "qdrant") as target:
        assert target.aliases()[COL] == a and target.collections() == [a]
