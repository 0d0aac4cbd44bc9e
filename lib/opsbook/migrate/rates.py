"""The throughput figures behind the dry run's duration estimate, and where they come from.

A live run stores what it measured per target kind in ``<work_dir>/rates.json``: records
written per second of writing and records verified per second of verification. The next
dry run in that work dir estimates from those figures ("measured by the live run of
<date> in this work dir"). Without a measurement of its own, the plan uses the figures
benchmarks/migrate.py measured on the reference host and says so; a kind the benchmark
cannot run (a server) is marked as assumed.

>>> estimate(100_000, 2.0, Rates(10_000.0, 40_000.0, "example"))
14.5
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

#: records/s (write, verify) measured by benchmarks/migrate.py on the 100,000 x 384 demo store,
#: median of 3 (edge) / 1 run (local), 2-core host shared with other jobs (load average ~10),
#: 2026-11-30. An idle host is faster; a live run's own figures replace these (rates.json).
REFERENCE = {
    "edge": (1_100.0, 2_000.0),
    "local": (550.0, 600.0),
    "memory": (550.0, 600.0),
    "server": (5_000.0, 4_000.0),
}
_MEASURED = "benchmarks/migrate.py, 100,000 x 384 demo store, 2-core host at load ~10, 2026-11-30"
REFERENCE_BASIS = {
    "edge": _MEASURED,
    "local": _MEASURED,
    "memory": "assumed equal to local mode on disk (not benchmarked)",
    "server": "assumed (no server was benchmarked; network and server size decide)",
}
#: a live run writing fewer records than this says little about the rate: not stored
MIN_RECORDS = 1000
FILE = "rates.json"


@dataclass(frozen=True)
class Rates:
    """Records per second written and verified, and the basis of those figures."""

    write: float
    verify: float
    basis: str


def estimate(total: int, read_s: float, rates: Rates) -> float:
    """Seconds of a live run: the source copy (about the dry run's read time), the write
    and the verification."""
    return round(read_s + total / rates.write + total / rates.verify, 1)


def load(work_dir: str | Path, kind: str) -> Rates:
    """The rates measured by the last live run on ``kind`` in ``work_dir``, else the
    benchmark's reference figures."""
    path = Path(work_dir) / FILE
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        entry = json.loads(path.read_text())[kind]
        write, verify = float(entry["write_rps"]), float(entry["verify_rps"])
        if write > 0 and verify > 0:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(entry["at"])))
            return Rates(
                write,
                verify,
                f"measured by the live run of {when} in this work dir "
                f"({int(entry['records']):,} records)",
            )
    write, verify = REFERENCE.get(kind, REFERENCE["server"])
    return Rates(write, verify, REFERENCE_BASIS.get(kind, REFERENCE_BASIS["server"]))


def record(
    work_dir: str | Path, kind: str, written: int, write_s: float, verified: int, verify_s: float
) -> bool:
    """Store a live run's rates for the next estimate (False when too small to say much)."""
    if written < MIN_RECORDS or write_s <= 0 or verify_s <= 0 or verified <= 0:
        return False
    path = Path(work_dir) / FILE
    data: dict = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(path.read_text())
        data = loaded if isinstance(loaded, dict) else {}
    data[kind] = {
        "write_rps": round(written / write_s, 1),
        "verify_rps": round(verified / verify_s, 1),
        "records": written,
        "at": time.time(),
    }
    tmp = path.with_name(FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return True
