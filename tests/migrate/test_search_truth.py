"""Search verification against exact ground truth (numpy over the source vectors).

Integrity gates on the target's exact search; Chroma's HNSW recall is only reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opsbook.migrate import migrate
from opsbook.migrate.exact import TopK
from opsbook.migrate.ids import point_id
from opsbook.migrate.source import open_source
from opsbook.migrate.target import LOCAL_SEARCH_QUERIES, open_target
from opsbook.migrate.verify import sample_ids, search_sample


def random_store(
    path: Path, vectors: np.ndarray, space: str = "cosine", name: str = "docs"
) -> Path:
    """A one-collection Chroma store holding ``vectors`` under ids r000000, r000001, ..."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(path), settings=Settings(anonymized_telemetry=False)
    )
    col = client.create_collection(
        name, embedding_function=None, configuration={"hnsw": {"space": space}}
    )
    ids = [f"r{i:06d}" for i in range(len(vectors))]
    for s in range(0, len(vectors), 5000):
        col.add(
            ids=ids[s : s + 5000],
            embeddings=vectors[s : s + 5000],
            metadatas=[{"i": i} for i in range(s, min(s + 5000, len(vectors)))],
        )
    return path


@pytest.mark.slow
def test_large_random_store_cuts_over_although_chroma_recall_is_below_one(tmp_path: Path) -> None:
    vectors = np.random.default_rng(7).standard_normal((20_000, 384)).astype(np.float32)
    store = random_store(tmp_path / "chroma", vectors)
    result = migrate(
        chroma_path=str(store),
        work_dir=str(tmp_path / "work"),
        target="edge",
        dry_run=False,
        backup=False,
        batch_size=1000,
        sample_queries=200,
    )
    search = result.collections[0].report.search
    assert result.integrity_ok and result.search_verified and result.cutover_done
    assert search.queries == search.exact_queries == 200 and search.failures == 0
    assert search.chroma_recall is not None and search.chroma_recall < 0.99
    assert result.recall_at_10()["docs"]["chroma"] < 0.99
    assert search.warnings and "Chroma HNSW" in search.warnings[0]


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A 3,000-record l2 store migrated into a local target, not cut over."""
    root = tmp_path_factory.mktemp("staged")
    vectors = np.random.default_rng(3).standard_normal((3000, 32)).astype(np.float32)
    store = random_store(root / "chroma", vectors, space="l2")
    result = migrate(
        chroma_path=str(store),
        work_dir=str(root),
        dry_run=False,
        backup=False,
        cutover=False,
        sample_queries=50,
    )
    assert result.integrity_ok and result.collections[0].report.search.failures == 0
    return store, root, result.collections[0].staging


def _verify(store: Path, root: Path, staging: str, corrupt: str) -> object:
    source = open_source(str(store), work_dir=str(root))
    try:
        which = ["missing", "vector"].index(corrupt)  # a different victim per test
        victim = point_id(sample_ids(source.all_ids("docs"), 50)[which])  # its query's nearest
        with open_target("local", root / "qdrant") as target:
            if corrupt == "missing":
                target.delete_points(staging, [victim])
            else:
                vec, payload = target.retrieve(staging, [victim])[victim]
                target.upsert(staging, [victim], -vec[None, :], [payload])
    finally:
        source.close()
    again = migrate(
        chroma_path=str(store),
        work_dir=str(root),
        dry_run=False,
        backup=False,
        cutover=False,
        resume=True,
        sample_queries=50,
    )
    return again.collections[0].report


@pytest.mark.parametrize("corrupt", ["missing", "vector"])
def test_one_missing_or_perturbed_point_fails_exact_search(staged, corrupt: str) -> None:
    store, root, staging = staged
    report = _verify(store, root, staging, corrupt)
    assert report.search.failures >= 1 and report.mismatches["search"] == report.search.failures
    assert report.mismatches[corrupt] == 1 and not report.ok
    # an ANN-style recall would hide it: 49 of 50 queries still find all 10 neighbours
    assert report.search.chroma_recall is not None and report.search.chroma_recall > 0.9


def test_ties_at_the_kth_distance_pass(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((400, 16)).astype(np.float32)
    vectors[:40] = vectors[0]  # 40 identical records: every top-10 near them is all ties
    store = random_store(tmp_path / "chroma", vectors, space="l2")
    result = migrate(
        chroma_path=str(store),
        work_dir=str(tmp_path),
        dry_run=False,
        backup=False,
        sample_queries=400,
    )
    assert result.integrity_ok and result.cutover_done
    search = result.collections[0].report.search
    assert search.failures == 0 and search.queries == 400
    assert search.exact_queries == LOCAL_SEARCH_QUERIES  # local mode's slow search: a budget
    # the engines really did pick different records among the ties
    source = open_source(str(store), work_dir=str(tmp_path))
    try:
        info = source.info("docs")
        queries = search_sample(source, info, source.all_ids("docs"), 40)
        truth = TopK(queries, info.distance)
        truth.add(source.all_ids("docs"), source.vectors_of("docs", source.all_ids("docs")))
        with open_target("local", tmp_path / "qdrant") as target:
            got = target.search("docs", truth.queries, 10)
        differ = [
            q for q in range(40) if {p for p, _ in got[q]} != {point_id(c) for c in truth.ids[q]}
        ]
    finally:
        source.close()
    assert differ


def test_no_sampled_queries_refuses_cutover_without_the_flag(tmp_path: Path) -> None:
    vectors = np.random.default_rng(2).standard_normal((300, 8)).astype(np.float32)
    store = random_store(tmp_path / "chroma", vectors)
    kw = {"chroma_path": str(store), "dry_run": False, "backup": False, "sample_queries": 0}
    refused = migrate(work_dir=str(tmp_path / "a"), **kw)
    assert refused.integrity_ok and not refused.search_verified and not refused.cutover_done
    assert refused.recall_at_10() == {"docs": {"chroma": "not measured", "target": "not measured"}}
    assert refused.search() == {"docs": {"measured": False, "status": "not measured"}}
    allowed = migrate(work_dir=str(tmp_path / "b"), allow_unverified_search=True, **kw)
    assert allowed.cutover_done and not allowed.search_verified
