"""Checkpoints written before opsbook kept record hashes are adopted on resume, not refused.

Such a checkpoint (the same JSON, but no ``*.hashes.sqlite`` beside it) says records
``[0, next_offset)`` were written, and nothing about what was written. On resume they
are adopted: the source pages ``[0, next_offset)`` are read once (feeding the exact
truth, as any resume does) and each record's digests are computed exactly as the write
pass computes them and stored, so verification then compares every record, the old
ones included, with the source.

The older writer sent vectors as Chroma returned them; the current one sends unit-length
float32 rows for Cosine, and the digests are of those bytes. A Cosine point written by
the older version holds either the raw vector (qdrant-client local mode stores what it
is sent) or the engine's own normalisation of it (a server, qdrant_edge), which may
differ from numpy's in the last bits. Such a point is rewritten with the current bytes
and *its own* payload, so a payload that differs from the source is still reported by
verification. Any other difference is left as it is, for verification to report.
"""

from __future__ import annotations

import numpy as np

from opsbook.migrate.checkpoint import Checkpoint
from opsbook.migrate.exact import TopK
from opsbook.migrate.hashes import HashStore
from opsbook.migrate.pipeline import prepare, split
from opsbook.migrate.source import ChromaSource, CollectionInfo
from opsbook.migrate.target import Target

#: a stored Cosine vector within this of the unit row (per component) is the same vector
#: normalised by the engine, not a different one (float32 spacing near 1 is 6e-8)
NORMALISED_ATOL = 1e-6


def needs_adoption(cp: Checkpoint, hashes_exist: bool) -> bool:
    """A checkpoint that says records were written but keeps no digests of them."""
    return cp.next_offset > 0 and not hashes_exist


def adopt(
    source: ChromaSource,
    target: Target,
    info: CollectionInfo,
    cp: Checkpoint,
    hashes: HashStore,
    truth: TopK | None,
    read_page: int = 2000,
) -> int:
    """Store the digests of the records an older run wrote; returns the Cosine points
    rewritten with the current vector bytes (see the module docstring)."""
    rewritten = 0
    for page in source.batches(info.name, read_page):
        keep = min(len(page), cp.next_offset - page.offset)
        if keep <= 0:
            break
        if keep < len(page):
            page = next(split(page, keep))
        if truth is not None and page.vectors is not None and page.vectors.size:
            truth.add(page.ids, page.vectors)
        ids, vectors, _, rows = prepare(page, info)
        hashes.put(rows)
        if info.distance == "Cosine" and page.vectors is not None:
            rewritten += _rewrite_normalised(target, cp.staging, ids, vectors, page.vectors)
    return rewritten


def _rewrite_normalised(
    target: Target, staging: str, ids: list[str], unit: np.ndarray, raw: np.ndarray
) -> int:
    found = target.retrieve(staging, ids)
    fix_ids, fix_rows, fix_payloads = [], [], []
    for i, pid in enumerate(ids):
        if pid not in found:
            continue  # missing: verification reports it
        vector, payload = found[pid]
        want = unit[i]
        if vector.shape != want.shape or vector.tobytes() == want.tobytes():
            continue
        same_raw = vector.tobytes() == np.asarray(raw[i], dtype=np.float32).tobytes()
        if same_raw or np.allclose(vector, want, rtol=0.0, atol=NORMALISED_ATOL):
            fix_ids.append(pid)
            fix_rows.append(want)
            fix_payloads.append(payload)
    if fix_ids:
        target.upsert(staging, fix_ids, np.stack(fix_rows), fix_payloads)
    return len(fix_ids)
