"""Search checks against exact ground truth: integrity (gates) and index quality (informs).

* **Integrity**: the target's *exact* search (``SearchParams(exact=True)`` on a server, the
  brute-force scan of local mode, ``exact=True`` on a qdrant_edge shard) must return the
  exact top-k of :class:`~opsbook.migrate.exact.TopK`: same distances rank by rank, ids
  equal except among ties at the k-th distance. Any difference is a ``search`` mismatch.
* **Index quality**: recall@k of Chroma's HNSW index and of the target's ANN index against
  the same truth, side by side. Below ``recall_threshold`` it is a warning, never a
  failure: an approximate index missing a neighbour is not a migration error.

``sample_queries=0`` measures nothing, and says so (``measured`` is False); the cutover
then needs ``allow_unverified_search=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opsbook.migrate.exact import TopK, from_chroma_distance, from_qdrant_score, recall, same_top_k
from opsbook.migrate.ids import point_id

Answer = list[tuple[str, float]]  # (id, distance on exact.py's scale), nearest first


@dataclass
class SearchReport:
    """Outcome of the search checks of one collection."""

    queries: int = 0
    exact_queries: int = 0  # of those, checked with the target's exact search
    k: int = 10
    failures: int = 0
    examples: list[str] = field(default_factory=list)
    chroma_recalls: list[float] = field(default_factory=list)
    target_recalls: list[float] = field(default_factory=list)
    target_index: str = "not measured"
    recall_threshold: float = 0.99

    @property
    def measured(self) -> bool:
        return self.queries > 0

    @property
    def chroma_recall(self) -> float | None:
        """Mean recall@k of Chroma's HNSW vs exact; None = not measured."""
        return float(np.mean(self.chroma_recalls)) if self.chroma_recalls else None

    @property
    def target_recall(self) -> float | None:
        """Mean recall@k of the target's ANN index vs exact; None = not measured / no index."""
        return float(np.mean(self.target_recalls)) if self.target_recalls else None

    @property
    def warnings(self) -> list[str]:
        out = []
        for who, value in (("Chroma HNSW", self.chroma_recall), ("target ANN", self.target_recall)):
            if value is not None and value < self.recall_threshold:
                out.append(f"{who} recall@{self.k} {value:.3f} < {self.recall_threshold}")
        return out

    def summary(self) -> dict:
        """JSON-ready figures; "not measured" instead of a number when nothing was searched."""
        if not self.measured:
            return {"measured": False, "status": "not measured"}
        return {
            "measured": True,
            "queries": self.queries,
            "exact_search_queries": self.exact_queries,
            "exact_search_failures": self.failures,
            "chroma_recall": _round(self.chroma_recall),
            "target_recall": _round(self.target_recall),
            "target_index": self.target_index,
            "warnings": self.warnings,
        }


def _round(value: float | None) -> float | str:
    return "not measured" if value is None else round(value, 4)


def pick_queries(pool: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Query vectors near the data: stored rows with 1% noise (so ties are rare but real
    neighbourhoods are searched). ``pool`` is the stored rows picked as seeds."""
    if n <= 0 or len(pool) == 0:
        return np.zeros((0, pool.shape[1] if pool.ndim == 2 else 0), dtype=np.float32)
    rng = np.random.default_rng(seed)
    picks = np.asarray(pool[:n], dtype=np.float32)
    scale = np.linalg.norm(picks, axis=1, keepdims=True) * 0.01
    noise = rng.standard_normal(picks.shape).astype(np.float32) / np.sqrt(picks.shape[1])
    return (picks + scale * noise).astype(np.float32)


def from_qdrant(answers: list[list[tuple[str, float]]], distance: str) -> list[Answer]:
    """Target answers (point id, Qdrant score) on the distance scale of exact.py."""
    return [[(pid, from_qdrant_score(s, distance)) for pid, s in a] for a in answers]


def from_chroma(answers: list[list[tuple[str, float]]], distance: str) -> list[Answer]:
    """Chroma answers (chroma id, Chroma distance), mapped to point ids and exact.py's scale."""
    pid = _memo()
    return [[(pid(cid), from_chroma_distance(d, distance)) for cid, d in a] for a in answers]


def _memo() -> Any:
    """point_id with a per-call cache: a query sample repeats the same neighbours often."""
    cache: dict[str, str] = {}

    def pid(cid: str) -> str:
        if cid not in cache:
            cache[cid] = point_id(cid)
        return cache[cid]

    return pid


def check(
    truth: TopK,
    exact_answers: list[Answer],
    chroma_answers: list[Answer] | None,
    ann_answers: list[Answer] | None,
    target_index: str,
    recall_threshold: float = 0.99,
    max_listed: int = 20,
) -> SearchReport:
    """Compare exact and approximate answers (point ids) with the truth (chroma ids)."""
    report = SearchReport(queries=len(truth.queries), k=truth.k, recall_threshold=recall_threshold)
    report.target_index = target_index
    report.exact_queries = len(exact_answers)
    pid = _memo()
    for q in range(len(truth.queries)):
        want = [pid(c) for c in truth.ids[q]]
        tol = truth.tolerance(q)
        if q < len(exact_answers):  # a slow target may check fewer (search_budget)
            got = exact_answers[q]
            why = same_top_k(want, truth.dist[q], [p for p, _ in got], [d for _, d in got], tol)
            if why is not None:
                report.failures += 1
                if len(report.examples) < max_listed:
                    report.examples.append(f"query {q}: {why}")
        for answers, sink in (
            (chroma_answers, report.chroma_recalls),
            (ann_answers, report.target_recalls),
        ):
            if answers is not None:
                a = answers[q]
                sink.append(recall(want, truth.dist[q], [p for p, _ in a], [d for _, d in a], tol))
    return report


def save_truth(path: Path, truth: TopK, chroma: list[list[tuple[str, float]]] | None) -> None:
    """Keep the exact top-k (and Chroma's answers) of a finished collection, atomically, so a
    later re-verification (the runbook's cutover step) needs no pass over the source."""
    k = truth.k
    cids = np.full((len(truth.queries), k), "", dtype=object)
    cdist = np.full((len(truth.queries), k), np.nan)
    for q, answer in enumerate(chroma or []):
        for r, (cid, d) in enumerate(answer[:k]):
            cids[q, r], cdist[q, r] = cid, d
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        queries=truth.queries,
        ids=truth.ids.astype(str),
        dist=truth.dist,
        meta=np.array([truth.k, truth.seen, truth.max_norm, chroma is not None]),
        chroma_ids=cids.astype(str),
        chroma_dist=cdist,
    )
    tmp.replace(path)


def load_truth(
    path: Path, distance: str, n_queries: int
) -> tuple[TopK, list[list[tuple[str, float]]] | None] | None:
    """The saved truth, or None when absent or made for another number of queries."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        if len(data["queries"]) != min(n_queries, int(data["meta"][1]) or n_queries):
            return None
        k, seen, max_norm, has_chroma = data["meta"]
        truth = TopK(data["queries"], distance, int(k))
        truth.ids = data["ids"].astype(object)
        truth.dist = data["dist"]
        truth.seen, truth.max_norm = int(seen), float(max_norm)
        chroma = None
        if has_chroma:
            chroma = [
                [(str(c), float(d)) for c, d in zip(ci, di, strict=True) if c != ""]
                for ci, di in zip(data["chroma_ids"], data["chroma_dist"], strict=True)
            ]
    return truth, chroma
