"""A lock file per running run, so that verification can tell running from interrupted.

``<audit root>/.running/<run_id>.json`` holds the runner's pid, the process's start
time (so a recycled pid is not mistaken for the runner) and the host. It is written
before the run's first step and removed once the record is sealed. A record folder
that is not in the ledger is then:

- ``running`` while that process still lives (checked on the same host only),
- ``interrupted`` when the lock names a process that is gone (a killed runner:
  ``opsbook recover RUN_ID`` seals it as failed),
- ``unknown`` when there is no lock at all (a planted folder, a dropped ledger line,
  or a record from before run locks existed).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

LOCK_DIR = ".running"


@dataclass
class LockState:
    """What an unledgered record folder is: running, interrupted or unknown."""

    state: str
    detail: str
    lock: dict[str, Any] | None = None


def lock_path(root: Path, run_id: str) -> Path:
    return root / LOCK_DIR / f"{run_id}.json"


def _start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def acquire(root: Path, run_id: str, pid: int | None = None) -> Path:
    """Write the lock for ``run_id`` naming this process (or ``pid``)."""
    from opsbook.audit import now_iso

    pid = pid or os.getpid()
    path = lock_path(root, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "run_id": run_id,
        "pid": pid,
        "process_start": _start_time(pid),
        "host": socket.gethostname(),
        "started_at": now_iso(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def release(root: Path, run_id: str) -> None:
    lock_path(root, run_id).unlink(missing_ok=True)


def read(root: Path, run_id: str) -> dict[str, Any] | None:
    try:
        data = json.loads(lock_path(root, run_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def state(root: Path, run_id: str) -> LockState:
    """Classify an unledgered record folder (see the module docstring)."""
    lock = read(root, run_id)
    if lock is None:
        return LockState("unknown", "no run lock")
    pid, host = lock.get("pid"), lock.get("host")
    where = f"pid {pid} on {host}"
    if host != socket.gethostname():
        return LockState("unknown", f"lock held by {where}: cannot check from this host", lock)
    started = _start_time(pid) if isinstance(pid, int) else None
    recorded = lock.get("process_start")
    if started is not None and recorded is not None and abs(started - float(recorded)) < 1.0:
        return LockState("running", f"runner {where} is alive", lock)
    return LockState("interrupted", f"runner {where} is gone", lock)
