"""Exact top-k in blocks equals a full sort; tie-aware comparison and recall."""

from __future__ import annotations

import numpy as np
import pytest

from opsbook.migrate.exact import TopK, recall, same_top_k, unit_rows


def _full_sort(queries: np.ndarray, data: np.ndarray, distance: str, k: int) -> np.ndarray:
    q = unit_rows(queries, distance).astype(np.float64)
    x = unit_rows(data, distance).astype(np.float64)
    if distance == "Cosine":
        d = 1 - q @ x.T
    elif distance == "Dot":
        d = -(q @ x.T)
    else:
        d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.sort(d, axis=1)[:, :k], np.argsort(d, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("distance", ["Cosine", "Dot", "Euclid"])
@pytest.mark.parametrize("block", [1, 7, 1000])
def test_blocks_equal_a_full_sort(distance: str, block: int) -> None:
    rng = np.random.default_rng(4)
    data = rng.standard_normal((300, 16)).astype(np.float32) * 3
    queries = rng.standard_normal((25, 16)).astype(np.float32)
    ids = [f"r{i}" for i in range(len(data))]
    truth = TopK(queries, distance, k=10)
    for s in range(0, len(data), block):
        truth.add(ids[s : s + block], data[s : s + block])
    want_d, want_i = _full_sort(queries, data, distance, 10)
    assert truth.seen == 300
    np.testing.assert_allclose(truth.dist, want_d, rtol=1e-5, atol=1e-4)
    assert truth.ids.tolist() == [[f"r{i}" for i in row] for row in want_i]


def test_fewer_records_than_k() -> None:
    truth = TopK(np.ones((2, 3), dtype=np.float32), "Euclid", k=10)
    truth.add(["a", "b"], np.array([[1, 1, 1], [0, 0, 0]], dtype=np.float32))
    assert truth.ids.tolist() == [["a", "b"], ["a", "b"]]
    assert truth.dist.tolist() == [[0.0, 3.0], [0.0, 3.0]]


TRUTH_IDS = ["a", "b", "c"]
TRUTH_D = np.array([0.1, 0.2, 0.3], dtype=np.float32)  # "d" also lies at 0.3: a tie


@pytest.mark.parametrize(
    ("ids", "dists", "verdict"),
    [
        (["a", "b", "c"], [0.1, 0.2, 0.3], None),
        (["a", "b", "d"], [0.1, 0.2, 0.3000001], None),  # the other record tied at the k-th
        (["b", "a", "c"], [0.1, 0.2, 0.3], "'b' at distance"),  # ids swapped: distances lie
        (["a", "b", "x"], [0.1, 0.2, 0.29], "rank 3"),  # nearer than the truth's k-th
        (["a", "b", "x"], [0.1, 0.2, 0.31], "rank 3"),  # a non-tie in place of "c"
        (["a", "b"], [0.1, 0.2], "2 results"),
        (["a", "b", "c"], [0.1, 0.25, 0.3], "rank 2"),  # a perturbed vector kept its rank
    ],
)
def test_same_top_k_allows_only_ties(ids: list, dists: list, verdict: str | None) -> None:
    why = same_top_k(TRUTH_IDS, TRUTH_D, ids, dists, tol=1e-5)
    if verdict is None:
        assert why is None
    else:
        assert why is not None and verdict in why


def test_recall_counts_ties_and_misses() -> None:
    assert recall(TRUTH_IDS, TRUTH_D, ["a", "b", "c"], [0.1, 0.2, 0.3], 1e-5) == 1.0
    assert recall(TRUTH_IDS, TRUTH_D, ["a", "b", "d"], [0.1, 0.2, 0.3], 1e-5) == 1.0
    assert recall(TRUTH_IDS, TRUTH_D, ["a", "x", "y"], [0.1, 0.4, 0.5], 1e-5) == pytest.approx(
        1 / 3
    )
