"""Prove a staging collection holds exactly the source: every check, every record.

* counts: exact count equals the source count;
* id sets: every source id is present exactly once under its deterministic point id,
  and the target holds nothing else;
* vectors: equal within ``tolerance`` after float32 (source normalised for Cosine,
  since Qdrant normalises on write);
* payloads: chroma_id, document and metadata equal with exact types;
* search: for sampled queries, the target's exact top-10 equals the exact top-10 computed
  with numpy over the source vectors (ties at the 10th distance allowed); Chroma's and the
  target's ANN recall@10 against the same truth are reported, never gated on
  (:mod:`opsbook.migrate.searchcheck`).

Every mismatch is counted by kind; the first ``max_listed`` are kept as examples.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from opsbook.migrate import searchcheck
from opsbook.migrate.exact import TopK, unit_rows
from opsbook.migrate.ids import point_id, point_ids
from opsbook.migrate.payload import build_payload, payload_diff
from opsbook.migrate.searchcheck import SearchReport
from opsbook.migrate.source import Batch, ChromaSource, CollectionInfo
from opsbook.migrate.target import Target

MISMATCH_KINDS = (
    "count",
    "missing",
    "extra",
    "duplicate",
    "vector",
    "payload",
    "document",
    "metadata",
    "search",
)


@dataclass
class VerifyReport:
    """Outcome of verifying one collection."""

    collection: str
    staging: str
    source_count: int
    target_count: int = 0
    mismatches: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)
    vector_diffs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    search: SearchReport = field(default_factory=SearchReport)
    duration_s: float = 0.0
    max_listed: int = 20

    def add(self, kind: str, chroma_id: str | None, detail: str = "") -> None:
        self.mismatches[kind] += 1
        if len(self.examples) < self.max_listed:
            self.examples.append(
                {"collection": self.collection, "kind": kind, "id": chroma_id, "detail": detail}
            )

    @property
    def ok(self) -> bool:
        return sum(self.mismatches.values()) == 0


def expected_vectors(batch: Batch, distance: str) -> np.ndarray:
    """What the target should hold for a batch: float32, unit length for Cosine."""
    return unit_rows(batch.vectors, distance)


def _check_page(
    report: VerifyReport, batch: Batch, target: Target, info: CollectionInfo, tolerance: float
) -> np.ndarray:
    pids = point_ids(batch.ids)
    found = target.retrieve(report.staging, pids)
    expected = expected_vectors(batch, info.distance)
    diffs = np.full(len(pids), np.nan)
    for i, (cid, pid) in enumerate(zip(batch.ids, pids, strict=True)):
        if pid not in found:
            report.add("missing", cid)
            continue
        vector, payload = found[pid]
        if vector.shape != expected[i].shape:
            report.add("vector", cid, f"shape {vector.shape} vs {expected[i].shape}")
            continue
        diffs[i] = float(np.max(np.abs(vector - expected[i]))) if vector.size else 0.0
        if diffs[i] > tolerance:
            report.add("vector", cid, f"max abs difference {diffs[i]:.3g}")
        wrong = payload_diff(build_payload(cid, batch.documents[i], batch.metadatas[i]), payload)
        if wrong is not None:
            kind = wrong if wrong in ("document", "metadata") else "payload"
            report.add(kind, cid, f"{wrong} differs")
    return diffs[~np.isnan(diffs)]


def _check_id_set(report: VerifyReport, target: Target, source_ids: list[str]) -> None:
    expected = {point_id(i): i for i in source_ids}
    seen_chroma: set = set()
    for page in target.scroll_ids(report.staging):
        for pid, cid in page:
            if pid not in expected:
                report.add("extra", cid, f"point {pid} is not from the source")
            elif cid in seen_chroma:
                report.add("duplicate", cid)
            seen_chroma.add(cid)


def sample_ids(source_ids: list[str], n: int, seed: int = 0) -> list[str]:
    """The ids whose vectors seed the ``n`` sampled queries (deterministic for a seed)."""
    if n <= 0 or not source_ids:
        return []
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(source_ids), size=min(n, len(source_ids)), replace=False)
    return [source_ids[i] for i in sorted(picks)]


def search_sample(
    source: ChromaSource, info: CollectionInfo, source_ids: list[str], n: int, seed: int = 0
) -> np.ndarray:
    """``n`` query vectors: stored vectors picked at random (by id) with 1% noise."""
    ids = sample_ids(source_ids, n, seed)
    if not ids:
        return np.zeros((0, info.dim or 0), dtype=np.float32)
    return searchcheck.pick_queries(source.vectors_of(info.name, ids), n, seed)


def check_search(
    truth: TopK,
    source: ChromaSource,
    target: Target,
    info: CollectionInfo,
    staging: str,
    recall_threshold: float,
    max_listed: int,
) -> SearchReport:
    """Exact search on the target vs the truth; Chroma's and the target's ANN recall."""
    if len(truth.queries) == 0:
        return SearchReport(recall_threshold=recall_threshold)
    d = info.distance
    exact = searchcheck.from_qdrant(target.search(staging, truth.queries, truth.k), d)
    chroma = searchcheck.from_chroma(source.query(info.name, truth.queries, truth.k), d)
    index = target.ann_index(staging)
    ann = None
    if index is not None:
        ann = searchcheck.from_qdrant(target.search(staging, truth.queries, truth.k, False), d)
    label = index or "none: the target's search is always exact"
    return searchcheck.check(truth, exact, chroma, ann, label, recall_threshold, max_listed)


def add_search(report: VerifyReport, search: SearchReport) -> None:
    """Attach the search checks; each failing query is one ``search`` mismatch."""
    report.search = search
    for i in range(search.failures):
        detail = search.examples[i] if i < len(search.examples) else ""
        report.add("search", None, detail)


def verify_collection(
    source: ChromaSource,
    target: Target,
    info: CollectionInfo,
    staging: str,
    *,
    n_queries: int = 1000,
    recall_threshold: float = 0.99,
    tolerance: float = 1e-6,
    page: int = 2000,
    seed: int = 0,
    max_listed: int = 20,
    k: int = 10,
) -> VerifyReport:
    """Compare the source collection with ``staging`` record by record (see module doc)."""
    t0 = time.perf_counter()
    report = VerifyReport(info.name, staging, info.count, max_listed=max_listed)
    report.target_count = target.count(staging)
    source_ids = source.all_ids(info.name)
    report.source_count = len(source_ids)
    if report.target_count != report.source_count:
        report.add("count", None, f"source {report.source_count}, target {report.target_count}")
    truth = TopK(search_sample(source, info, source_ids, n_queries, seed), info.distance, k)
    diffs = []
    for batch in source.batches(info.name, page):
        diffs.append(_check_page(report, batch, target, info, tolerance))
        if batch.vectors is not None and len(batch):
            truth.add(batch.ids, batch.vectors)
    report.vector_diffs = np.concatenate(diffs) if diffs else np.zeros(0)
    _check_id_set(report, target, source_ids)
    add_search(
        report, check_search(truth, source, target, info, staging, recall_threshold, max_listed)
    )
    report.duration_s = time.perf_counter() - t0
    return report
