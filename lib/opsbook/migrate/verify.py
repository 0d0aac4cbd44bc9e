"""Prove a staging collection holds exactly the source: every check, every record.

* counts: exact count equals the source count;
* id sets: every source id is present exactly once under its deterministic point id,
  and the target holds nothing else;
* vectors: equal within ``tolerance`` after float32 (source normalised for Cosine,
  since Qdrant normalises on write);
* payloads: chroma_id, document and metadata equal with exact types;
* search equivalence: for sampled queries, Chroma's top-10 vs Qdrant's exact top-10,
  recall@10 averaged per collection against a threshold.

Every mismatch is counted by kind; the first ``max_listed`` are kept as examples.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from opsbook.migrate.ids import point_id, point_ids
from opsbook.migrate.payload import build_payload, payload_diff
from opsbook.migrate.pipeline import unit_rows
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
    "recall",
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
    recalls: list[float] = field(default_factory=list)
    recall_threshold: float = 0.99
    duration_s: float = 0.0
    max_listed: int = 20

    def add(self, kind: str, chroma_id: str | None, detail: str = "") -> None:
        self.mismatches[kind] += 1
        if len(self.examples) < self.max_listed:
            self.examples.append(
                {"collection": self.collection, "kind": kind, "id": chroma_id, "detail": detail}
            )

    @property
    def recall_at_10(self) -> float:
        return float(np.mean(self.recalls)) if self.recalls else 1.0

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


def _check_search(
    report: VerifyReport,
    source: ChromaSource,
    target: Target,
    info: CollectionInfo,
    sample: np.ndarray,
    k: int = 10,
) -> None:
    if len(sample) == 0:
        return
    chroma_top = source.query(info.name, sample, k)
    qdrant_top = target.search(report.staging, sample, k)
    for want, got in zip(chroma_top, qdrant_top, strict=True):
        want_pids = set(point_ids(want))
        recall = len(want_pids & set(got)) / len(want_pids) if want_pids else 1.0
        report.recalls.append(recall)
    if report.recall_at_10 < report.recall_threshold:
        report.add(
            "recall", None, f"recall@10 {report.recall_at_10:.3f} < {report.recall_threshold}"
        )


def sample_queries(batch_vectors: list[np.ndarray], n: int, seed: int = 0) -> np.ndarray:
    """``n`` query vectors: stored vectors picked at random with a little noise added."""
    if n <= 0 or not batch_vectors:
        return np.zeros((0, 0), dtype=np.float32)
    pool = np.concatenate(batch_vectors)
    rng = np.random.default_rng(seed)
    picks = pool[rng.choice(len(pool), size=min(n, len(pool)), replace=False)]
    scale = np.linalg.norm(picks, axis=1, keepdims=True) * 0.01
    noise = rng.standard_normal(picks.shape).astype(np.float32) / np.sqrt(picks.shape[1])
    return (picks + scale * noise).astype(np.float32)


def verify_collection(
    source: ChromaSource,
    target: Target,
    info: CollectionInfo,
    staging: str,
    *,
    n_queries: int = 20,
    recall_threshold: float = 0.99,
    tolerance: float = 1e-6,
    page: int = 1000,
    seed: int = 0,
    max_listed: int = 20,
) -> VerifyReport:
    """Compare the source collection with ``staging`` record by record (see module doc)."""
    t0 = time.perf_counter()
    report = VerifyReport(
        info.name, staging, info.count, recall_threshold=recall_threshold, max_listed=max_listed
    )
    report.target_count = target.count(staging)
    source_ids = source.all_ids(info.name)
    report.source_count = len(source_ids)
    if report.target_count != report.source_count:
        report.add("count", None, f"source {report.source_count}, target {report.target_count}")
    diffs, pool = [], []
    rng = np.random.default_rng(seed)
    for batch in source.batches(info.name, page):
        diffs.append(_check_page(report, batch, target, info, tolerance))
        if batch.vectors is not None and len(batch):
            keep = rng.random(len(batch)) < min(1.0, 4 * n_queries / max(1, info.count))
            pool.append(batch.vectors[keep])
    report.vector_diffs = np.concatenate(diffs) if diffs else np.zeros(0)
    _check_id_set(report, target, source_ids)
    _check_search(report, source, target, info, sample_queries(pool, n_queries, seed))
    report.duration_s = time.perf_counter() - t0
    return report
