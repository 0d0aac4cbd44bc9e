"""A migration killed with SIGKILL mid-way resumes to an exact copy: no duplicates, no gaps."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsbook.migrate import make_demo_chroma, migrate
from opsbook.migrate.ids import point_id
from opsbook.migrate.source import open_source
from opsbook.migrate.target import open_target

SCRIPT = """
import sys
from opsbook.migrate import migrate
migrate(chroma_path=sys.argv[1], work_dir=sys.argv[2], dry_run=False,
        batch_size=int(sys.argv[4]), backup=False, target=sys.argv[3])
print("FINISHED")
"""


def _progress(work: Path) -> list[dict]:
    out = []
    for p in (work / "checkpoints").glob("*.json"):
        with contextlib.suppress(json.JSONDecodeError, FileNotFoundError):  # mid-replace
            out.append(json.loads(p.read_text()))
    return out


def _kill_midway(tmp_path: Path, target: str, batch_size: int) -> tuple[Path, Path, list[dict]]:
    """Start a migration in a child process and SIGKILL it after >= 300 records."""
    store = make_demo_chroma(tmp_path / "chroma", n_docs=2000, seed=3)
    work = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(store), str(work), target, str(batch_size)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    killed_at: list[dict] = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            states = _progress(work)
            if sum(s["next_offset"] for s in states) >= 300 and not all(s["done"] for s in states):
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = states
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and not killed_at:
            proc.kill()
        out, err = proc.communicate(timeout=30)
    assert killed_at, f"the migration ended before it could be killed: {out!r} {err[-2000:]!r}"
    assert proc.returncode == -signal.SIGKILL and b"FINISHED" not in out
    return store, work, killed_at


@pytest.mark.slow
@pytest.mark.parametrize(("target", "batch_size"), [("local", 20), ("edge", 5)])
def test_sigkill_then_resume(tmp_path: Path, target: str, batch_size: int) -> None:
    store, work, killed_at = _kill_midway(tmp_path, target, batch_size)
    result = migrate(
        chroma_path=str(store),
        work_dir=str(work),
        dry_run=False,
        batch_size=batch_size,
        backup=False,
        resume=True,
        target=target,
    )
    assert result.integrity_ok and result.cutover_done, result.mismatch_examples()
    assert result.total_records == 2000
    assert any(0 < c.resumed_from < c.info.count for c in result.collections)
    assert result.records_written == sum(c.info.count - c.resumed_from for c in result.collections)
    with open_target(target, work / "qdrant") as qdrant:
        for c in result.collections:
            assert qdrant.count(c.alias) == c.info.count
            chroma_ids = [cid for page in qdrant.scroll_ids(c.alias) for _, cid in page]
            assert len(chroma_ids) == len(set(chroma_ids)) == c.info.count


@pytest.mark.slow
def test_hashes_catch_changes_to_records_written_before_the_kill(tmp_path: Path) -> None:
    store, work, killed_at = _kill_midway(tmp_path, "edge", 20)
    state = max(killed_at, key=lambda s: s["next_offset"])  # a collection cut mid-way
    assert state["next_offset"] >= 3
    source = open_source(str(store), work_dir=str(tmp_path / "peek"))
    try:
        changed, perturbed, deleted = source.read(state["collection"], 0, 3).ids
    finally:
        source.close()
    with open_target("edge", work / "qdrant") as qdrant:
        staging = state["staging"]
        found = qdrant.retrieve(staging, [point_id(changed), point_id(perturbed)])
        vec, payload = found[point_id(changed)]
        meta = {**(payload["metadata"] or {}), "page": 7.5}
        qdrant.upsert(staging, [point_id(changed)], vec[None, :], [payload | {"metadata": meta}])
        vec, payload = found[point_id(perturbed)]
        qdrant.upsert(staging, [point_id(perturbed)], vec[None, :] * 0.5, [payload])
        qdrant.delete_points(staging, [point_id(deleted)])
    result = migrate(
        chroma_path=str(store),
        work_dir=str(work),
        dry_run=False,
        batch_size=20,
        backup=False,
        resume=True,
        target="edge",
    )
    assert not result.integrity_ok and not result.cutover_done
    report = next(c.report for c in result.collections if c.info.name == state["collection"])
    assert report.mismatches["metadata"] == 1 and report.mismatches["vector"] == 1
    assert report.mismatches["missing"] == 1 and report.mismatches["count"] == 1
    assert set(report.mismatches) <= {"metadata", "vector", "missing", "count", "search"}
    assert {(e["kind"], e["id"]) for e in report.examples} >= {
        ("metadata", changed),
        ("vector", perturbed),
        ("missing", deleted),
    }
    others = [c.report for c in result.collections if c.info.name != state["collection"]]
    assert all(r.ok for r in others)
