"""``ai:jobs`` over pub/sub vs a Redis Stream with a consumer group, with a worker that is
absent at first and later crashes and restarts.

The worker is a redis-py process (what the product would run). Timeline, relative to the
publisher's start: absent until ``join``; processes jobs; at ``crash`` (a fixed point of the
schedule, the same for both transports) it crashes (pub/sub: the connection goes; Streams: the batch in hand is never acknowledged);
it restarts ``down_ms`` later (Streams: a new consumer first takes over the crashed one's
pending jobs with XAUTOCLAIM). Every job carries its sequence number and due time, so the
orchestrator can say which jobs were lost, when, and what each transport costs in latency.
"""

from __future__ import annotations

import contextlib
import time
from array import array
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pandas as pd

from opsbook.pubsub import hist
from opsbook.pubsub.harness import Bench, receive
from opsbook.pubsub.message import HEADER
from opsbook.pubsub.redispy import ReconnectWatch, redis_client
from opsbook.pubsub.resp import ConnParams
from opsbook.pubsub.workers import CLOCK

GROUP = "workers"


class _Tally:
    def __init__(self) -> None:
        self.seqs, self.lat = array("q"), array("q")
        self.events: dict[str, int] = {}
        self.connects = 0

    def add(self, payload: bytes, now: int) -> None:
        _, _, _, seq, intended = HEADER.unpack_from(payload)
        self.seqs.append(seq)
        self.lat.append(now - intended)


def _pubsub_session(
    r: Any, key: str, tally: _Tally, until: Any, stop: Any, *, started: str
) -> None:
    """Subscribe; note ``started`` once Redis confirmed it; consume until told to stop."""
    pubsub = r.pubsub()
    pubsub.subscribe(key)
    while (msg := pubsub.get_message(timeout=1.0)) is None or msg["type"] != "subscribe":
        pass
    tally.events[started] = CLOCK()
    watch = ReconnectWatch(pubsub)  # redis-py reconnects silently: count it
    try:
        while not until() and not stop():
            msg = pubsub.get_message(timeout=0.02)
            if msg and msg["type"] == "message":
                tally.add(msg["data"], CLOCK())
    finally:
        tally.connects += watch.reconnects
        watch.close()
        pubsub.close()


def _stream_session(
    r: Any,
    key: str,
    consumer: str,
    tally: _Tally,
    until: Any,
    stop: Any,
    *,
    crash: bool,
    claim_idle_ms: int | None,
) -> None:
    if claim_idle_ms is not None:
        cursor = "0-0"
        while True:
            cursor, claimed, *_ = r.xautoclaim(
                key, GROUP, consumer, claim_idle_ms, cursor, count=500
            )
            _process(r, key, claimed, tally, ack=True)
            tally.events["claimed"] = tally.events.get("claimed", 0) + len(claimed)
            if cursor in (b"0-0", "0-0") or not claimed:
                break
    while not stop():
        batches = r.xreadgroup(GROUP, consumer, {key: ">"}, count=50, block=20)
        entries = batches[0][1] if batches else []
        last = bool(until() and entries)  # crash with a batch in hand
        _process(r, key, entries, tally, ack=not (crash and last))
        if last:
            return


def _process(r: Any, key: str, entries: list[Any], tally: _Tally, *, ack: bool) -> None:
    now = CLOCK()
    for _id, fields in entries:
        tally.add(fields[b"d"], now)
    if ack and entries:
        r.xack(key, GROUP, *[e[0] for e in entries])


def job_worker_main(params: ConnParams, cmd: dict[str, Any], pipe: Connection) -> None:
    """Entry point of the job worker process (see module docstring)."""
    r = redis_client(params)
    r.ping()
    pipe.send({"ready": True})
    start = pipe.recv()["start_ns"]
    tally, key = _Tally(), cmd["key"]
    total = int(cmd["jobs"])
    crash_at = start + int(cmd["crash_ms"] * 1e6)

    def stop() -> bool:
        return pipe.poll() or len(set(tally.seqs)) >= total

    _sleep_until(start + int(cmd["join_ms"] * 1e6))
    if cmd["transport"] == "pubsub":
        _pubsub_session(r, key, tally, lambda: CLOCK() >= crash_at, stop, started="join_ns")
    else:
        tally.events["join_ns"] = CLOCK()
        _stream_session(
            r,
            key,
            "w1",
            tally,
            lambda: CLOCK() >= crash_at,
            stop,
            crash=True,
            claim_idle_ms=None,
        )
    tally.events["crash_ns"] = CLOCK()
    time.sleep(cmd["down_ms"] / 1000)
    if cmd["transport"] == "pubsub":
        _pubsub_session(r, key, tally, lambda: False, stop, started="restart_ns")
    else:
        tally.events["restart_ns"] = CLOCK()
        _stream_session(
            r,
            key,
            "w2",
            tally,
            lambda: False,
            stop,
            crash=False,
            claim_idle_ms=max(1, int(cmd["down_ms"] / 2)),
        )
    if pipe.poll():
        pipe.recv()
    pipe.send(
        {
            "seqs": tally.seqs.tobytes(),
            "lat": tally.lat.tobytes(),
            "events": tally.events,
            "connects": tally.connects,
        }
    )


def _sleep_until(target: int) -> None:
    while (left := target - CLOCK()) > 0:
        time.sleep(left / 1e9)


def run_jobs(
    bench: Bench,
    transport: str,
    *,
    jobs: int,
    rate: int,
    join_frac: float = 0.2,
    crash_frac: float = 0.5,
    down_ms: float | None = None,
    size: int = 512,
) -> dict[str, Any]:
    """Publish ``jobs`` at ``rate`` over ``transport`` ("pubsub" | "streams") to a worker
    that joins late and crashes once; count what was lost and when."""
    key = bench.channel(f"ai:jobs:{transport}")
    span_ms = jobs / rate * 1000
    down_ms = span_ms * 0.2 if down_ms is None else down_ms
    if transport == "streams":
        bench.admin.xgroup_create(key, GROUP, id="$", mkstream=True)
    cmd = {
        "transport": transport,
        "key": key,
        "jobs": jobs,
        "join_ms": span_ms * join_frac,
        "crash_ms": span_ms * crash_frac,
        "down_ms": down_ms,
    }
    worker = bench.spawn(job_worker_main, (bench.params, cmd))
    publisher = bench.publishers(1)[0]
    try:
        receive(worker, 60, "job worker")
        bench.step_id += 1
        start = CLOCK() + 100_000_000
        worker.pipe.send({"start_ns": start})
        publisher.pipe.send(
            {
                "op": "run",
                "step": bench.step_id,
                "channels": [key],
                "rate": rate,
                "count": jobs,
                "size": size,
                "start_ns": start,
                "command": "XADD" if transport == "streams" else "PUBLISH",
            }
        )
        pub = receive(publisher, span_ms / 1000 * 3 + 30, "publisher process")
        time.sleep(0.3 + down_ms / 1000)
        with contextlib.suppress(OSError):  # a Streams worker may be done already
            worker.pipe.send({"stop": True})
        report = receive(worker, 60, "job worker")
    finally:
        worker.process.join(timeout=10)
        if worker.process.is_alive():  # pragma: no cover
            worker.process.kill()
        bench.admin.delete(key)
    return _jobs_summary(transport, jobs, rate, start, pub, report)


def _jobs_summary(
    transport: str, jobs: int, rate: int, start: int, pub: dict[str, Any], report: dict[str, Any]
) -> dict[str, Any]:
    seqs = np.frombuffer(report["seqs"], dtype=np.int64)
    lat = np.frombuffer(report["lat"], dtype=np.int64)
    ev = report["events"]
    due = start + np.arange(jobs, dtype=np.int64) * int(1e9 / rate)
    got = np.zeros(jobs, dtype=bool)
    got[seqs[seqs < jobs]] = True
    missing = ~got
    absent = missing & (due < ev["join_ns"])
    # in flight when the worker went away (due up to 20 ms before) or published while it was
    # down: both are lost to the restart
    restart = missing & (due >= ev["crash_ns"] - 20_000_000) & (due <= ev["restart_ns"])
    recv = due[seqs] + lat
    steady = (due[seqs] >= ev["join_ns"]) & (recv < ev["crash_ns"])  # not backlog, not replay
    summary = hist.summary(hist.from_values(lat[steady] // 1000))
    return {
        "transport": "Redis Streams + consumer group" if transport == "streams" else "pub/sub",
        "published": int(pub["sent"]),
        "publish_to_nobody": int(pub["zero_receivers"]) if transport == "pubsub" else 0,
        "processed_unique": int(got.sum()),
        "lost": int(missing.sum()),
        "lost_worker_absent": int(absent.sum()),
        "lost_worker_restarting": int(restart.sum()),
        "lost_other": int(missing.sum() - absent.sum() - restart.sum()),
        "redelivered": int(len(seqs) - got.sum()),
        "claimed_after_crash": int(ev.get("claimed", 0)),
        "steady_p50_ms": summary["p50_ms"],
        "steady_p99_ms": summary["p99_ms"],
        "silent_reconnects": int(report["connects"]),
    }


def compare(bench: Bench, *, jobs: int, rate: int) -> pd.DataFrame:
    """pub/sub and Streams side by side under the same worker timeline."""
    return pd.DataFrame([run_jobs(bench, t, jobs=jobs, rate=rate) for t in ("pubsub", "streams")])
