"""Checks that decide whether a collection can be migrated faithfully.

Errors block a live migration (dimension mismatch, NaN/inf or zero-for-cosine vectors,
duplicate ids, metadata with no exact JSON form). Notes are reported but migrate as
they are (empty or None documents, whole-metadata None).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from opsbook.migrate.payload import metadata_problems
from opsbook.migrate.source import Batch

ERROR_KINDS = (
    "dimension",
    "non_finite_vector",
    "zero_vector_cosine",
    "duplicate_id",
    "bad_metadata",
    "missing_vector",
)


@dataclass
class Findings:
    """Counts and first examples of each finding kind for one collection."""

    counts: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)
    max_examples: int = 20
    _seen: set[str] = field(default_factory=set)

    def add(self, kind: str, chroma_id: str, detail: str = "") -> None:
        self.counts[kind] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append({"kind": kind, "id": chroma_id, "detail": detail})

    @property
    def errors(self) -> int:
        return sum(self.counts[k] for k in ERROR_KINDS)

    @property
    def ok(self) -> bool:
        return self.errors == 0


def check_batch(batch: Batch, findings: Findings, dim: int | None, distance: str) -> None:
    """Add the findings of one batch (ids seen in earlier batches count as duplicates)."""
    _check_ids(batch, findings)
    _check_vectors(batch, findings, dim, distance)
    for cid, doc, meta in zip(batch.ids, batch.documents, batch.metadatas, strict=True):
        if doc is None:
            findings.add("none_document", cid)
        elif doc == "":
            findings.add("empty_document", cid)
        if meta is None:
            findings.add("none_metadata", cid)
        for problem in metadata_problems(meta):
            findings.add("bad_metadata", cid, problem)


def _check_ids(batch: Batch, findings: Findings) -> None:
    for cid in batch.ids:
        if cid in findings._seen:
            findings.add("duplicate_id", cid)
        findings._seen.add(cid)


def _check_vectors(batch: Batch, findings: Findings, dim: int | None, distance: str) -> None:
    if batch.vectors is None:  # ragged rows
        for cid, d in zip(batch.ids, batch.dims, strict=False):
            if d != dim:
                findings.add("dimension", cid, f"{d} values, collection has {dim}")
        return
    if len(batch.ids) and batch.vectors.shape[0] != len(batch.ids):
        findings.add("missing_vector", batch.ids[0], "page returned fewer vectors than ids")
        return
    if len(batch.ids) and dim is not None and batch.vectors.shape[1] != dim:
        for cid in batch.ids:
            findings.add("dimension", cid, f"{batch.vectors.shape[1]} values, collection has {dim}")
        return
    bad = ~np.isfinite(batch.vectors).all(axis=1)
    for i in np.flatnonzero(bad):
        findings.add("non_finite_vector", batch.ids[i], "NaN or inf in the vector")
    if distance == "Cosine":
        zero = np.linalg.norm(batch.vectors, axis=1) == 0
        for i in np.flatnonzero(zero & ~bad):
            findings.add("zero_vector_cosine", batch.ids[i], "a zero vector has no direction")
