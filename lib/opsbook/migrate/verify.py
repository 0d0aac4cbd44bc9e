"""Prove a staging collection holds exactly the source, reading only the target.

The write pass stored every record's content digests (:mod:`opsbook.migrate.hashes`) and
computed the exact top-10 of the sampled queries over the source vectors
(:class:`opsbook.migrate.exact.TopK`). Verification scrolls the target once and checks:

* counts: the exact count equals the source count;
* id sets: every source record is present under its deterministic point id (``missing``),
  nothing else is (``extra``; a foreign point carrying a source id is a ``duplicate``);
* vectors: the float32 bytes equal those written (unit length for Cosine: Qdrant keeps a
  vector of unit length unchanged, so a server holds these exact bytes too);
* payloads: chroma_id (``payload``), document and metadata with exact types;
* search: for the sampled queries the target's exact search returns the exact top-10
  (ties at the 10th distance allowed); Chroma's and the target's ANN recall@10 against
  the same truth are reported, never gated on (:mod:`opsbook.migrate.searchcheck`).

Every mismatch is counted by kind; the first ``max_listed`` are kept as examples.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from opsbook.migrate import searchcheck
from opsbook.migrate.exact import TopK
from opsbook.migrate.hashes import (
    HashStore,
    canonical,
    digest,
    document_digest,
    vector_digest,
)
from opsbook.migrate.ids import point_id
from opsbook.migrate.payload import DOCUMENT_KEY, ID_KEY, METADATA_KEY
from opsbook.migrate.searchcheck import SearchReport
from opsbook.migrate.source import ChromaSource, CollectionInfo
from opsbook.migrate.target import Target

_PAYLOAD_KEYS = {ID_KEY, DOCUMENT_KEY, METADATA_KEY}


@dataclass
class VerifyReport:
    """Outcome of verifying one collection."""

    collection: str
    staging: str
    source_count: int
    target_count: int = 0
    records_checked: int = 0
    mismatches: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)
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
    def identical(self) -> int:
        """Records whose every digest matched."""
        wrong = sum(self.mismatches[k] for k in ("vector", "payload", "document", "metadata"))
        return max(self.records_checked - wrong, 0)

    @property
    def ok(self) -> bool:
        return sum(self.mismatches.values()) == 0


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


def _check_point(
    report: VerifyReport, stored: tuple | None, pid: str, vector: np.ndarray, payload: dict
) -> None:
    cid = payload.get(ID_KEY)
    if stored is None:
        if isinstance(cid, str) and point_id(cid) != pid:
            report.add("duplicate", cid, f"point {pid} repeats a source id")
        else:
            report.add("extra", cid, f"point {pid} is not from the source")
        return
    report.records_checked += 1
    _, chroma_id, vec, doc, meta = stored
    if vector_digest(vector) != vec:
        report.add("vector", chroma_id, "vector bytes differ from those written")
    if cid != chroma_id or set(payload) - _PAYLOAD_KEYS:
        report.add("payload", chroma_id, f"chroma_id {cid!r} / keys {sorted(payload)}")
    if document_digest(payload.get(DOCUMENT_KEY)) != doc:
        report.add("document", chroma_id, "document differs")
    if digest(canonical(payload.get(METADATA_KEY))) != meta:
        report.add("metadata", chroma_id, "metadata differs (value or type)")


def check_records(report: VerifyReport, target: Target, hashes: HashStore, page: int) -> None:
    """One scroll over the target, every point against its stored digests."""
    for points in target.scroll_records(report.staging, page):
        stored = hashes.lookup([pid for pid, _, _ in points])
        for pid, vector, payload in points:
            _check_point(report, stored.get(pid), pid, vector, payload)
    if report.records_checked < report.source_count:
        present = (pid for ids in target.scroll_ids(report.staging) for pid, _ in ids)
        for _, chroma_id in hashes.missing(present):
            report.add("missing", chroma_id)


def check_search(
    truth: TopK,
    chroma: list[list[tuple[str, float]]] | None,
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
    checked = truth.queries[: target.search_budget()]
    exact = searchcheck.from_qdrant(target.search(staging, checked, truth.k), d)
    source_ann = searchcheck.from_chroma(chroma, d) if chroma is not None else None
    index = target.ann_index(staging)
    ann = None
    if index is not None:
        ann = searchcheck.from_qdrant(target.search(staging, truth.queries, truth.k, False), d)
    label = index or "none: the target's search is always exact"
    return searchcheck.check(truth, exact, source_ann, ann, label, recall_threshold, max_listed)


def add_search(report: VerifyReport, search: SearchReport) -> None:
    """Attach the search checks; each failing query is one ``search`` mismatch."""
    report.search = search
    for i in range(search.failures):
        detail = search.examples[i] if i < len(search.examples) else ""
        report.add("search", None, detail)


def verify_collection(
    target: Target,
    info: CollectionInfo,
    staging: str,
    hashes: HashStore,
    truth: TopK,
    chroma: list[list[tuple[str, float]]] | None = None,
    *,
    source_count: int | None = None,
    recall_threshold: float = 0.99,
    page: int = 2000,
    max_listed: int = 20,
) -> VerifyReport:
    """Compare ``staging`` with the digests and the truth of the write pass (module doc)."""
    t0 = time.perf_counter()
    expected = info.count if source_count is None else source_count
    report = VerifyReport(info.name, staging, expected, max_listed=max_listed)
    report.target_count = target.count(staging)
    if report.target_count != expected:
        report.add("count", None, f"source {expected}, target {report.target_count}")
    if hashes.count() != expected:
        report.add(
            "count", None, f"digests of {hashes.count()} records kept, source has {expected}"
        )
    search_args = (truth, chroma, target, info, staging, recall_threshold, max_listed)
    if getattr(target, "reads_in_parallel", False):
        # a server's searches wait on the network while the records are compared here;
        # qdrant_edge's query_batch holds the GIL, so in process the two mostly take turns
        with ThreadPoolExecutor(1, thread_name_prefix="verify-search") as pool:
            searching = pool.submit(check_search, *search_args)
            try:
                check_records(report, target, hashes, page)
            finally:
                search = searching.result()
    else:  # records first: qdrant-client local mode normalises its vectors in place on search
        check_records(report, target, hashes, page)
        search = check_search(*search_args)
    add_search(report, search)
    report.duration_s = time.perf_counter() - t0
    return report
