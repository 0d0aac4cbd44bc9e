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
from opsbook.migrate.target import open_target

SCRIPT = """
import sys
from opsbook.migrate import migrate
migrate(chroma_path=sys.argv[1], work_dir=sys.argv[2], dry_run=False, batch_size=20,
        backup=False)
print("FINISHED")
"""


def _progress(work: Path) -> list[dict]:
    out = []
    for p in (work / "checkpoints").glob("*.json"):
        with contextlib.suppress(json.JSONDecodeError, FileNotFoundError):  # mid-replace
            out.append(json.loads(p.read_text()))
    return out


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path: Path) -> None:
    store = make_demo_chroma(tmp_path / "chroma", n_docs=2000, seed=3)
    work = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(store), str(work)],
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
    result = migrate(
        chroma_path=str(store),
        work_dir=str(work),
        dry_run=False,
        batch_size=20,
        backup=False,
        resume=True,
    )
    assert result.integrity_ok and result.cutover_done, result.mismatch_examples()
    assert result.total_records == 2000
    assert any(0 < c.resumed_from < c.info.count for c in result.collections)
    assert result.records_written == sum(c.info.count - c.resumed_from for c in result.collections)
    with open_target("local", work / "qdrant") as target:
        for c in result.collections:
            assert target.count(c.alias) == c.info.count
            chroma_ids = [cid for page in target.scroll_ids(c.alias) for _, cid in page]
            assert len(chroma_ids) == len(set(chroma_ids)) == c.info.count
