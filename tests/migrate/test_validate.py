"""Validation finds every kind of record that cannot migrate faithfully."""

from __future__ import annotations

import numpy as np
import pytest

from opsbook.migrate.source import Batch, resolve_metric
from opsbook.migrate.validate import Findings, check_batch


def _batch(
    vectors: np.ndarray | None,
    ids: list[str] | None = None,
    dims: list[int] | None = None,
    docs: list | None = None,
    metas: list | None = None,
) -> Batch:
    n = len(ids or []) or (0 if vectors is None else len(vectors))
    ids = ids or [f"id{i}" for i in range(n)]
    return Batch(0, ids, vectors, docs or ["d"] * n, metas or [{"k": 1}] * n, dims or [])


def test_clean_batch_has_no_findings() -> None:
    f = Findings()
    check_batch(_batch(np.ones((3, 4), np.float32)), f, 4, "Cosine")
    assert f.ok and sum(f.counts.values()) == 0


def test_non_finite_vectors() -> None:
    v = np.ones((3, 4), np.float32)
    v[1, 2] = np.nan
    v[2, 0] = np.inf
    f = Findings()
    check_batch(_batch(v), f, 4, "Euclid")
    assert f.counts["non_finite_vector"] == 2 and not f.ok


def test_zero_vector_only_matters_for_cosine() -> None:
    v = np.zeros((1, 4), np.float32)
    cos, l2 = Findings(), Findings()
    check_batch(_batch(v), cos, 4, "Cosine")
    check_batch(_batch(v), l2, 4, "Euclid")
    assert cos.counts["zero_vector_cosine"] == 1 and l2.ok


def test_dimension_mismatch_ragged_and_uniform() -> None:
    ragged, uniform = Findings(), Findings()
    check_batch(_batch(None, ids=["a", "b"], dims=[4, 3]), ragged, 4, "Dot")
    check_batch(_batch(np.ones((2, 3), np.float32)), uniform, 4, "Dot")
    assert ragged.counts["dimension"] == 1
    assert uniform.counts["dimension"] == 2


def test_duplicates_across_batches() -> None:
    f = Findings()
    check_batch(_batch(np.ones((2, 2), np.float32), ids=["a", "b"]), f, 2, "Dot")
    check_batch(_batch(np.ones((2, 2), np.float32), ids=["b", "c"]), f, 2, "Dot")
    assert f.counts["duplicate_id"] == 1
    assert f.examples[0]["id"] == "b"


def test_notes_do_not_block() -> None:
    f = Findings()
    b = _batch(np.ones((3, 2), np.float32), docs=["", None, "x"], metas=[None, {"a": 1}, {"a": 2}])
    check_batch(b, f, 2, "Dot")
    assert (f.counts["empty_document"], f.counts["none_document"], f.counts["none_metadata"]) == (
        1,
        1,
        1,
    )
    assert f.ok


def test_bad_metadata_blocks() -> None:
    f = Findings()
    check_batch(_batch(np.ones((1, 2), np.float32), metas=[{"x": float("nan")}]), f, 2, "Dot")
    assert f.counts["bad_metadata"] == 1 and not f.ok


@pytest.mark.parametrize(
    ("configuration", "metadata", "expected"),
    [
        ({"hnsw": {"space": "cosine"}}, {"hnsw:space": "l2"}, ("cosine", "configuration")),
        ({"spann": {"space": "ip"}}, None, ("ip", "configuration")),
        ({"hnsw": None}, {"hnsw:space": "ip"}, ("ip", "metadata")),
        (None, {"hnsw:space": "cosine"}, ("cosine", "metadata")),
        ({}, {}, ("l2", "default")),
        (None, None, ("l2", "default")),
    ],
)
def test_metric_from_configuration_then_legacy_metadata(configuration, metadata, expected) -> None:
    assert resolve_metric(configuration, metadata) == expected
