"""Exact nearest neighbours with numpy: the ground truth every search check compares to.

Chroma's ``query`` and a Qdrant server's default search are approximate (HNSW), so
neither can be the truth. The truth is a brute-force scan of the source vectors, in
blocks so memory stays bounded, with the collection's own metric:

* ``Cosine``: distance ``1 - dot`` of unit-length rows (Chroma's cosine distance; Qdrant's
  score is the ``dot``);
* ``Dot``:    distance ``-dot`` (Chroma's ``ip`` is ``1 - dot``, the same order);
* ``Euclid``: distance ``squared L2`` (Chroma's ``l2`` is squared; Qdrant's Euclid score is
  the square root, so it is squared before comparing).

Every distance here is "lower is nearer". Two engines compute a dot product in float32
with different summation orders, so distances are compared within :func:`tolerance`,
which scales with the magnitude of the vectors involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DISTANCES = ("Cosine", "Dot", "Euclid")
#: Relative float32 tolerance on a distance, times the query's magnitude scale.
RTOL = 3e-5


def unit_rows(vectors: np.ndarray, distance: str) -> np.ndarray:
    """float32 rows, scaled to unit length for Cosine (zero rows left as they are).

    Qdrant normalises Cosine vectors itself (a server on write; a vector already of unit
    length within 1e-6 is stored unchanged), but qdrant-client's local mode persists the
    raw vector. Writing unit vectors makes every target hold the same bytes.
    """
    v = np.asarray(vectors, dtype=np.float32)
    if distance != "Cosine" or v.size == 0:
        return v
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norms == 0, 1, norms)).astype(np.float32)


def distances(queries: np.ndarray, block: np.ndarray, distance: str) -> np.ndarray:
    """(queries × block) distances, lower = nearer; both already passed through unit_rows."""
    dots = queries @ block.T
    if distance == "Cosine":
        return 1.0 - dots
    if distance == "Dot":
        return -dots
    qq = np.einsum("ij,ij->i", queries, queries)[:, None]
    bb = np.einsum("ij,ij->i", block, block)[None, :]
    return np.maximum(qq + bb - 2.0 * dots, 0.0)


def from_qdrant_score(score: float, distance: str) -> float:
    """A Qdrant score as a distance on this module's scale."""
    if distance == "Cosine":
        return 1.0 - score
    if distance == "Dot":
        return -score
    return score * score


def from_chroma_distance(value: float, distance: str) -> float:
    """A Chroma distance (cosine ``1-cos``, ip ``1-dot``, l2 squared) on this module's scale."""
    return value - 1.0 if distance == "Dot" else value


@dataclass
class TopK:
    """Exact top-k of each query over every block fed to :meth:`add`.

    >>> import numpy as np
    >>> t = TopK(np.eye(2, dtype=np.float32), "Dot", k=1)
    >>> t.add(["a", "b"], np.array([[2, 0], [0, 3]], dtype=np.float32))
    >>> t.ids.tolist(), t.dist.tolist()
    ([['a'], ['b']], [[-2.0], [-3.0]])
    """

    queries: np.ndarray
    distance: str
    k: int = 10
    seen: int = 0
    max_norm: float = 0.0
    ids: np.ndarray = field(init=False)
    dist: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.queries = unit_rows(np.asarray(self.queries, dtype=np.float32), self.distance)
        n = len(self.queries)
        self.ids = np.empty((n, 0), dtype=object)
        self.dist = np.empty((n, 0), dtype=np.float32)

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        """Merge one block of records (ids and their rows, before normalisation)."""
        if len(ids) == 0 or len(self.queries) == 0:
            return
        block = unit_rows(vectors, self.distance)
        self.seen += len(ids)
        self.max_norm = max(self.max_norm, float(np.sqrt(np.max(np.sum(block * block, 1)))))
        block_d = distances(self.queries, block, self.distance)
        best = min(self.k, block_d.shape[1])  # the block's own top-k first: small merges
        part = np.argpartition(block_d, best - 1, axis=1)[:, :best]
        d = np.concatenate([self.dist, np.take_along_axis(block_d, part, 1)], axis=1)
        every = np.concatenate([self.ids, np.asarray(ids, dtype=object)[part]], axis=1)
        order = np.argsort(d, axis=1, kind="stable")[:, : self.k]
        self.dist = np.take_along_axis(d, order, 1).astype(np.float32)
        self.ids = np.take_along_axis(every, order, 1)

    def tolerance(self, q: int) -> float:
        """Distance tolerance for query ``q``: float32 error grows with the magnitudes."""
        qn = float(np.linalg.norm(self.queries[q]))
        if self.distance == "Cosine":
            scale = 1.0
        elif self.distance == "Dot":
            scale = qn * self.max_norm
        else:
            scale = qn * qn + self.max_norm * self.max_norm
        return RTOL * max(scale, 1.0)


def same_top_k(
    truth_ids: list[str],
    truth_dist: np.ndarray,
    got_ids: list[str],
    got_dist: list[float],
    tol: float,
) -> str | None:
    """Why an exact top-k answer differs from the truth, or None when it agrees.

    Ids may differ only among records tied at the k-th distance (within ``tol``); every
    returned distance must equal the truth's distance at the same rank within ``tol``
    (so a perturbed vector that stays in the top-k is caught too).
    """
    if len(got_ids) != len(truth_ids):
        return f"{len(got_ids)} results, expected {len(truth_ids)}"
    if len(truth_ids) == 0:
        return None
    for rank, (want, got) in enumerate(zip(truth_dist, got_dist, strict=True)):
        if abs(float(want) - float(got)) > tol:
            return f"rank {rank + 1}: distance {got:.6g}, exact {float(want):.6g}"
    kth = float(truth_dist[-1])
    truth = dict(zip(truth_ids, truth_dist, strict=True))
    for cid, d in zip(got_ids, got_dist, strict=True):
        if cid not in truth and abs(float(d) - kth) > tol:
            return f"{cid!r} returned at distance {d:.6g}, not a tie at the k-th ({kth:.6g})"
        if cid in truth and abs(float(d) - float(truth[cid])) > tol:
            return f"{cid!r} at distance {d:.6g}, exact {float(truth[cid]):.6g}"
    return None


def recall(
    truth_ids: list[str],
    truth_dist: np.ndarray,
    got_ids: list[str],
    got_dist: list[float],
    tol: float,
) -> float:
    """Share of the exact top-k an approximate answer found (a tie at the k-th counts)."""
    if len(truth_ids) == 0:
        return 1.0
    want = set(truth_ids)
    kth = float(truth_dist[-1])
    hits = sum(1 for cid, d in zip(got_ids, got_dist, strict=True) if cid in want or d <= kth + tol)
    return min(hits, len(truth_ids)) / len(truth_ids)
