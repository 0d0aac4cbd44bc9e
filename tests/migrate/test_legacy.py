"""A checkpoint written before record hashes existed is adopted on resume, not refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from opsbook.migrate import migrate
from opsbook.migrate.ids import point_id
from opsbook.migrate.source import open_source
from opsbook.migrate.target import open_target

COL = "support-articles"  # cosine: the older writer sent raw vectors, the current unit rows
WRITTEN = 200  # records the "older opsbook" wrote before it stopped


def _older_run(store: Path, work: Path) -> tuple[dict, list[str]]:
    """Leave what an interrupted older opsbook left: raw vectors in staging for the first
    WRITTEN records, a checkpoint at WRITTEN, no hashes and no saved truth beside it."""
    first = migrate(
        chroma_path=str(store),
        work_dir=str(work),
        target="edge",
        dry_run=False,
        collections=[COL],
        backup=False,
        cutover=False,
    )
    assert first.integrity_ok
    cp_path = next((work / "checkpoints").glob(f"{COL}-*.json"))
    beside = [p for p in cp_path.parent.glob(f"{cp_path.stem}.*") if p != cp_path]
    assert {p.name.rsplit(".", 2)[-2] for p in beside} >= {"hashes", "truth"}
    for extra in beside:
        extra.unlink()  # the hashes and the truth: an older opsbook kept neither
    state = json.loads(cp_path.read_text()) | {"next_offset": WRITTEN, "done": False}
    cp_path.write_text(json.dumps(state))
    source = open_source(str(store), work_dir=str(work / "peek"))
    try:
        page = source.read(COL, 0, WRITTEN)
    finally:
        source.close()
    pids = [point_id(c) for c in page.ids]
    with open_target("edge", work / "qdrant") as qdrant:
        found = qdrant.retrieve(state["staging"], pids)
        payloads = [found[p][1] for p in pids]
        qdrant.upsert(state["staging"], pids, page.vectors, payloads)  # raw, as it sent them
    return state, page.ids


def test_old_checkpoint_resumes_and_every_record_is_verified(
    demo_store: Path, tmp_path: Path
) -> None:
    state, ids = _older_run(demo_store, tmp_path)
    meta_id, vec_id = ids[5], ids[150]  # two records the older run wrote, changed since
    with open_target("edge", tmp_path / "qdrant") as qdrant:
        found = qdrant.retrieve(state["staging"], [point_id(meta_id), point_id(vec_id)])
        vec, payload = found[point_id(meta_id)]
        changed = payload | {"metadata": {**(payload["metadata"] or {}), "page": -1}}
        qdrant.upsert(state["staging"], [point_id(meta_id)], vec[None, :], [changed])
        vec, payload = found[point_id(vec_id)]
        moved = vec.copy()
        moved[0] += 0.05  # far beyond a normalisation's rounding: not "the same vector"
        qdrant.upsert(state["staging"], [point_id(vec_id)], moved[None, :], [payload])
    result = migrate(
        chroma_path=str(demo_store),
        work_dir=str(tmp_path),
        target="edge",
        dry_run=False,
        collections=[COL],
        backup=False,
        resume=True,
    )
    c = result.collections[0]
    assert (c.staging, c.resumed_from, c.adopted) == (state["staging"], WRITTEN, WRITTEN)
    assert result.records_written == c.info.count - WRITTEN
    report = c.report
    assert report.records_checked == c.info.count  # the adopted records included
    assert report.identical == c.info.count - 2  # raw vectors written back as unit rows
    assert report.mismatches["metadata"] == 1 and report.mismatches["vector"] == 1
    kinds = {e["id"]: e["kind"] for e in report.examples if e["kind"] in ("metadata", "vector")}
    assert kinds == {meta_id: "metadata", vec_id: "vector"}
    assert not result.integrity_ok and not result.cutover_done


def test_normalised_by_the_engine_is_the_same_vector() -> None:
    from opsbook.migrate.legacy import NORMALISED_ATOL

    unit = np.float32([0.6, 0.8])
    assert np.allclose(np.nextafter(unit, 1), unit, rtol=0, atol=NORMALISED_ATOL)
    assert not np.allclose(unit + np.float32(1e-5), unit, rtol=0, atol=NORMALISED_ATOL)
