"""migrate.verify and searchcheck on a crafted target: counts, missing points, search checks
and recall, each with its exact outcome.

A real target never loses one point while gaining another, nor answers a search wrongly,
so the target here is a small in-memory stand-in (fault injection); the digests are the
real SQLite :class:`HashStore` and the truth the real :class:`TopK`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opsbook.migrate import searchcheck, verify
from opsbook.migrate.exact import RTOL, TopK, recall, same_top_k, unit_rows
from opsbook.migrate.hashes import HashStore, record_row
from opsbook.migrate.ids import point_id
from opsbook.migrate.payload import DOCUMENT_KEY, ID_KEY, METADATA_KEY
from opsbook.migrate.source import CollectionInfo

IDS = ["a", "b", "c", "d", "e"]
VECS = unit_rows(
    np.array(
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]],
        dtype=np.float32,
    ),
    "Cosine",
)


def _payload(cid: str) -> dict:
    return {ID_KEY: cid, DOCUMENT_KEY: f"doc {cid}", METADATA_KEY: {"n": IDS.index(cid)}}


class CraftedTarget:
    """Just what verification reads: count, two scrolls, search (exact or not)."""

    def __init__(self, points: dict[str, tuple[np.ndarray, dict]], index: str | None = None):
        self.points = points
        self.index = index
        self.budget: int | None = None
        self.calls: list[tuple[str, Any]] = []

    def count(self, name: str) -> int:
        return len(self.points)

    def scroll_records(self, name: str, page: int = 2000) -> Iterator[list]:
        self.calls.append(("scroll_records", page))
        items = [(pid, v, p) for pid, (v, p) in self.points.items()]
        for s in range(0, len(items), page):
            yield items[s : s + page]

    def scroll_ids(self, name: str, page: int = 2000) -> Iterator[list]:
        self.calls.append(("scroll_ids", page))
        items = [(pid, p.get(ID_KEY)) for pid, (_, p) in self.points.items()]
        for s in range(0, len(items), page):
            yield items[s : s + page]

    def search(
        self, name: str, queries: np.ndarray, k: int, exact: bool = True
    ) -> list[list[tuple[str, float]]]:
        self.calls.append(("search", (len(queries), exact)))
        pids = list(self.points)
        vecs = np.array([self.points[p][0] for p in pids], dtype=np.float32)
        out = []
        for q in unit_rows(queries, "Cosine"):
            scores = vecs @ q
            order = np.argsort(-scores, kind="stable")[:k]
            answer = [(pids[i], float(scores[i])) for i in order]
            if not exact:  # the "approximate index" drops its best hit
                answer = answer[1:] + [("00000000-0000-0000-0000-00000000beef", -1.0)]
            out.append(answer)
        return out

    def ann_index(self, name: str) -> str | None:
        return self.index

    def search_budget(self) -> int | None:
        return self.budget


def _points(ids: list[str] = IDS) -> dict[str, tuple[np.ndarray, dict]]:
    return {point_id(c): (VECS[IDS.index(c)], _payload(c)) for c in ids}


@pytest.fixture
def hashes(tmp_path: Path) -> Iterator[HashStore]:
    store = HashStore(tmp_path / "hashes.sqlite")
    store.put(record_row(point_id(c), _payload(c), VECS[i]) for i, c in enumerate(IDS))
    yield store
    store.close()


def _info(count: int = len(IDS)) -> CollectionInfo:
    return CollectionInfo(name="docs", count=count, dim=3, metric="cosine", distance="Cosine")


def _truth(queries: int = 0, k: int = 2) -> TopK:
    truth = TopK(VECS[:queries] + 0.01, "Cosine", k=k)
    truth.add(IDS, VECS)
    return truth


def _verify(target: CraftedTarget, hashes: HashStore, **kw: Any) -> verify.VerifyReport:
    truth = kw.pop("truth", _truth())
    info = kw.pop("info", _info())
    return verify.verify_collection(target, info, "docs_staging", hashes, truth, **kw)


def test_an_identical_target_verifies(hashes: HashStore) -> None:
    target = CraftedTarget(_points())
    report = _verify(target, hashes, page=2)
    assert report.ok and report.mismatches == Counter()
    assert (report.source_count, report.target_count, report.records_checked) == (5, 5, 5)
    assert report.identical == 5 and report.collection == "docs"
    assert report.staging == "docs_staging"
    assert 0 < report.duration_s < time.perf_counter()  # a duration, not a clock reading
    assert target.calls == [("scroll_records", 2)]  # all found: no second scroll for ids
    assert report.search.measured is False and report.search.recall_threshold == 0.99


def test_one_missing_point_with_equal_counts_elsewhere(hashes: HashStore) -> None:
    points = _points(["a", "b", "c", "d"])
    points[point_id("zz")] = (VECS[0], {ID_KEY: "zz"})  # not from the source
    target = CraftedTarget(points)
    report = _verify(target, hashes, page=3)
    assert report.mismatches == Counter({"missing": 1, "extra": 1})
    assert report.records_checked == 4 and report.target_count == 5
    missing = [e for e in report.examples if e["kind"] == "missing"]
    assert missing == [{"collection": "docs", "kind": "missing", "id": "e", "detail": ""}]
    assert [c[0] for c in target.calls] == ["scroll_records", "scroll_ids"]
    assert report.ok is False and report.identical == 4


@pytest.mark.parametrize(
    ("ids", "source_count", "kinds", "detail"),
    [
        (IDS[:4], 5, {"count": 1, "missing": 1}, "source 5, target 4"),  # fewer
        (IDS, 4, {"count": 2}, "source 4, target 5"),  # more than the source says
    ],
)
def test_count_mismatch_either_way(
    hashes: HashStore, ids: list[str], source_count: int, kinds: dict, detail: str
) -> None:
    report = _verify(CraftedTarget(_points(ids)), hashes, source_count=source_count)
    assert report.mismatches == Counter(kinds)
    assert report.examples[0] == {
        "collection": "docs",
        "kind": "count",
        "id": None,
        "detail": detail,
    }
    assert report.source_count == source_count


def test_digests_kept_for_fewer_records_than_the_source(hashes: HashStore) -> None:
    report = _verify(CraftedTarget(_points()), hashes, info=_info(6), source_count=None)
    assert report.mismatches == Counter({"count": 2})
    assert [e["detail"] for e in report.examples] == [
        "source 6, target 5",
        "digests of 5 records kept, source has 6",
    ]


def test_exact_search_checks_and_recall_of_each_index(hashes: HashStore) -> None:
    truth = _truth(queries=4)
    chroma = [
        [(cid, float(d)) for cid, d in zip(r, dr, strict=True)]
        for r, dr in zip(truth.ids.tolist(), truth.dist.tolist(), strict=True)
    ]
    target = CraftedTarget(_points(), index="HNSW (m=16)")
    target.budget = 3
    report = _verify(target, hashes, truth=truth, chroma=chroma, recall_threshold=0.7)
    s = report.search
    assert (s.queries, s.exact_queries, s.failures) == (4, 3, 0)
    assert ("search", (3, True)) in target.calls and ("search", (4, False)) in target.calls
    assert s.chroma_recalls == [1.0, 1.0, 1.0, 1.0]
    assert s.target_recalls == [0.5, 0.5, 0.5, 0.5]  # the index dropped one of two
    assert s.target_index == "HNSW (m=16)" and s.recall_threshold == 0.7
    assert s.warnings == ["target ANN recall@2 0.500 < 0.7"]
    assert report.ok  # index quality warns, never fails the verification


def test_a_target_without_an_index_is_searched_once_and_says_why(hashes: HashStore) -> None:
    target = CraftedTarget(_points())
    report = _verify(target, hashes, truth=_truth(queries=2))
    assert [c for c in target.calls if c[0] == "search"] == [("search", (2, True))]
    assert report.search.target_index == "none: the target's search is always exact"
    assert report.search.target_recalls == [] and report.search.target_recall is None
    assert report.search.chroma_recall is None and report.search.warnings == []


def test_a_perturbed_vector_fails_exact_search_with_one_mismatch_per_query(
    hashes: HashStore,
) -> None:
    points = _points()
    pid = point_id("a")
    points[pid] = (
        unit_rows(np.array([[1, 0.2, 0]], dtype=np.float32), "Cosine")[0],
        points[pid][1],
    )
    report = _verify(CraftedTarget(points), hashes, truth=_truth(queries=1), max_listed=1)
    assert report.mismatches == Counter({"vector": 1, "search": 1})
    assert report.search.failures == 1 and report.search.examples[0].startswith("query 0: rank 1")
    assert len(report.examples) == 1  # max_listed reaches the search report too


@pytest.mark.parametrize("parallel", [False, True])
def test_records_and_search_give_one_report_serial_or_parallel(
    hashes: HashStore, parallel: bool
) -> None:
    """A target that reads in parallel (qdrant edge, a server) is searched in a thread
    while its records are compared: the report is the same as the serial one."""
    points = _points(["a", "b", "c", "d"])
    pid = point_id("a")
    points[pid] = (VECS[1], points[pid][1])  # a's vector replaced by b's
    target = CraftedTarget(points)
    target.reads_in_parallel = parallel  # type: ignore[attr-defined]
    truth = _truth(queries=1)
    report = _verify(target, hashes, truth=truth, page=3, max_listed=5)
    assert report.mismatches == Counter({"vector": 1, "missing": 1, "count": 1, "search": 1})
    assert report.records_checked == 4 and report.identical == 3
    assert [(e["kind"], e["id"]) for e in report.examples] == [
        ("count", None),
        ("vector", "a"),
        ("missing", "e"),
        ("search", None),
    ]
    assert report.search.queries == 1 and report.search.failures == 1
    assert sorted(c for c in target.calls if c[0] != "search") == [
        ("scroll_ids", 2000),
        ("scroll_records", 3),
    ]
    assert [c for c in target.calls if c[0] == "search"] == [("search", (1, True))]


def test_recall_just_under_the_threshold_with_a_perfect_max() -> None:
    """Mean, not max: one query at 1.0 and one at 0.9 is 0.95 < 0.96."""
    report = searchcheck.SearchReport(
        queries=2,
        k=10,
        target_recalls=[1.0, 0.9],
        chroma_recalls=[0.96, 0.96],
        recall_threshold=0.96,
    )
    assert report.target_recall == pytest.approx(0.95)
    assert report.chroma_recall == pytest.approx(0.96)
    assert report.warnings == ["target ANN recall@10 0.950 < 0.96"]
    summary = report.summary()
    assert summary == {
        "measured": True,
        "queries": 2,
        "exact_search_queries": 0,
        "exact_search_failures": 0,
        "chroma_recall": 0.96,
        "target_recall": 0.95,
        "target_index": "not measured",
        "warnings": ["target ANN recall@10 0.950 < 0.96"],
    }
    assert searchcheck.SearchReport().summary() == {"measured": False, "status": "not measured"}
    below = searchcheck.SearchReport(queries=1, chroma_recalls=[0.5], recall_threshold=0.99)
    assert below.measured is True and searchcheck.SearchReport(queries=0).measured is False
    assert below.warnings == ["Chroma HNSW recall@10 0.500 < 0.99"]


def test_check_counts_failures_caps_examples_and_maps_chroma_ids() -> None:
    truth = _truth(queries=3)
    want = [
        [(point_id(c), float(d)) for c, d in zip(r, dr, strict=True)]
        for r, dr in zip(truth.ids.tolist(), truth.dist.tolist(), strict=True)
    ]
    wrong = [list(reversed(a)) for a in want]
    chroma = [
        [(c, float(d)) for c, d in zip(r, dr, strict=True)]
        for r, dr in zip(truth.ids.tolist(), truth.dist.tolist(), strict=True)
    ]
    report = searchcheck.check(truth, wrong, chroma, want, "HNSW", 0.99, max_listed=2)
    assert report.failures == 3 and len(report.examples) == 2
    assert report.examples[0].startswith("query 0: rank 1: distance")
    assert report.chroma_recalls == [1.0, 1.0, 1.0] and report.target_recalls == [1.0] * 3
    assert (report.queries, report.exact_queries, report.k) == (3, 3, 2)
    fewer = searchcheck.check(truth, want[:1], None, None, "none", 0.99)
    assert (fewer.exact_queries, fewer.failures, fewer.chroma_recalls) == (1, 0, [])


# ------------------------------------------------------------------ exact.py: the comparisons

T_IDS = ["a", "b", "c"]
T_D = np.array([1.0, 2.0, 3.0], dtype=np.float32)


@pytest.mark.parametrize(
    ("ids", "dists", "why"),
    [
        (["a", "b", "c"], [1.5, 2.0, 2.5], None),  # exactly at the tolerance: equal
        (["a", "b", "x"], [1.0, 2.0, 3.5], None),  # a tie at the k-th, within the tolerance
        (["a", "b"], [1.0, 2.0], "2 results, expected 3"),
        (["a", "b", "c", "d"], [1.0, 2.0, 3.0, 3.0], "4 results, expected 3"),
        (["a", "b", "c"], [1.0, 2.0, 3.51], "rank 3: distance 3.51, exact 3"),
        (["a", "b", "c"], [0.49, 2.0, 3.0], "rank 1: distance 0.49, exact 1"),
        (["x", "b", "c"], [1.0, 2.0, 3.0], "'x' returned at distance 1, not a tie at the k-th (3)"),
        (["b", "a", "c"], [1.0, 2.0, 3.0], "'b' at distance 1, exact 2"),
    ],
)
def test_same_top_k_exact_reasons(ids: list[str], dists: list[float], why: str | None) -> None:
    assert same_top_k(T_IDS, T_D, ids, dists, tol=0.5) == why


def test_same_top_k_of_an_empty_truth() -> None:
    assert same_top_k([], np.array([], dtype=np.float32), [], [], 0.0) is None


@pytest.mark.parametrize(
    ("ids", "dists", "expected"),
    [
        (["a", "b", "c", "d"], [1.0, 2.0, 3.0, 3.0], 1.0),  # never above 1
        (["x", "y", "z"], [3.5, 3.6, 9.0], 1 / 3),  # 3.5 is a tie within 0.5, 3.6 is not
        (["a"], [1.0], 1 / 3),
        ([], [], 0.0),
    ],
)
def test_recall_exact_values(ids: list[str], dists: list[float], expected: float) -> None:
    assert recall(T_IDS, T_D, ids, dists, 0.5) == pytest.approx(expected)


def test_recall_of_an_empty_truth_is_one() -> None:
    assert recall([], np.array([], dtype=np.float32), ["a"], [1.0], 0.0) == 1.0


@pytest.mark.parametrize(
    ("distance", "scale"),
    [("Cosine", 1.0), ("Dot", 5.0 * 5**0.5), ("Euclid", 25.0 + 5.0)],
)
def test_tolerance_scales_with_the_magnitudes(distance: str, scale: float) -> None:
    truth = TopK(np.array([[3.0, 4.0, 0.0]], dtype=np.float32), distance, k=1)
    truth.add(["a", "b"], np.array([[0, 1.0, 2.0], [0, 1.0, 0]], dtype=np.float32))
    assert truth.max_norm == pytest.approx(5**0.5 if distance != "Cosine" else 1.0)
    assert truth.tolerance(0) == pytest.approx(RTOL * scale)
    small = TopK(np.array([[0.1, 0.0, 0.0]], dtype=np.float32), distance, k=1)
    small.add(["a"], np.array([[0.5, 0, 0]], dtype=np.float32))
    assert small.tolerance(0) == pytest.approx(RTOL)  # never below RTOL x 1


def test_an_empty_block_changes_nothing() -> None:
    truth = TopK(np.array([[1.0, 0.0]], dtype=np.float32), "Dot", k=2)
    truth.add([], np.zeros((0, 2), dtype=np.float32))
    assert (truth.seen, truth.max_norm, truth.ids.shape) == (0, 0.0, (1, 0))
    truth.add(["a"], np.array([[2.0, 0.0]], dtype=np.float32))
    truth.add([], np.zeros((0, 2), dtype=np.float32))
    assert (truth.seen, truth.ids.tolist(), truth.dist.tolist()) == (1, [["a"]], [[-2.0]])
