"""Publisher lag: measured from the intended time of a batch's oldest message, never before
it is due; GC off during a step and back on after it, even on error; CPU placement and
priority attempts recorded, never fatal."""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import platform
import subprocess
import uuid
from array import array
from collections import deque
from typing import Any

import numpy as np
import pytest

from opsbook.pubsub import hist, sched, workers
from opsbook.pubsub.endpoint import Endpoint
from opsbook.pubsub.resp import RawConn
from opsbook.pubsub.workers import CLOCK, TRACE_FIELDS, Waiter, lag_histogram

MS = 1_000_000


def _publish(endpoint: Endpoint, start_in_ns: int, **cmd: Any) -> tuple[dict, int, np.ndarray]:
    """Run one publisher step whose schedule starts ``start_in_ns`` from now (negative: in
    the past); return its report, the start and its trace (one row per batch)."""
    conn = RawConn(endpoint.params)
    try:
        base = {"step": 1, "channels": [f"opsbook:test-lag:{uuid.uuid4().hex[:8]}"], "size": 64}
        start = CLOCK() + start_in_ns
        report = workers._publish(conn, 0, {**base, "trace": True, "start_ns": start, **cmd})
    finally:
        conn.close()
    trace = np.frombuffer(report["trace"], dtype=np.int64).reshape(-1, len(TRACE_FIELDS))
    return report, start, trace


def _values(h: Any) -> list[tuple[int, int]]:
    return [(i.value_iterated_to, i.count_at_value_iterated_to) for i in h.get_recorded_iterator()]


@pytest.mark.services
@pytest.mark.parametrize("wait", workers.WAITS)
def test_lag_of_a_late_batch_counts_from_its_oldest_message(endpoint: Endpoint, wait: str) -> None:
    """A schedule that started 10 ms ago: all 5 messages are due, sent 2 per batch; each
    batch's lag runs from its oldest message's intended time (start, +2 ms, +4 ms)."""
    report, start, trace = _publish(endpoint, -10 * MS, rate=1000, count=5, batch_max=2, wait=wait)
    assert (report["sent"], report["batches"]) == (5, 3)
    intended, sending = trace[:, 0], trace[:, 3]
    assert intended.tolist() == [start, start + 2 * MS, start + 4 * MS]
    lags = (sending - intended) // 1000
    assert lags[0] >= 10_000 and lags[1] >= 8_000 and lags[2] >= 6_000
    expected = lag_histogram(array("q", lags.tolist()))
    assert _values(hist.decode(report["lag"])) == _values(expected)


@pytest.mark.services
@pytest.mark.parametrize("wait", workers.WAITS)
def test_nothing_is_sent_before_it_is_due(endpoint: Endpoint, wait: str) -> None:
    report, start, trace = _publish(endpoint, 5 * MS, rate=2000, count=6, wait=wait)
    assert (report["sent"], report["receivers"]) == (6, 0)
    assert len(trace) == report["batches"]  # one message per batch unless it fell behind
    schedule = [start + i * MS // 2 for i in range(6)]
    assert trace[0, 0] == start and set(trace[:, 0].tolist()) <= set(schedule)
    assert (trace[:, 3] >= trace[:, 0]).all()  # sending >= intended, batch by batch
    assert report["wait"].startswith(wait)


def test_an_unknown_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="^unknown wait 'nap'; one of select, early, early-max$"):
        Waiter("nap", MS)


def test_the_early_spin_is_capped_by_the_interval() -> None:
    assert Waiter("early", MS).cap == workers.MAX_SPIN_NS  # 1k msg/s: 200 us
    assert Waiter("early", 100_000).cap == 50_000  # 10k msg/s: half the interval
    assert Waiter("early", 10_000).cap == workers.SPIN_NS  # never below the base spin


def test_the_early_margin_follows_the_usual_overshoot_not_the_preemptions() -> None:
    """A spin covers a late timer, not a preemption: a few ms-long overshoots among 50 us
    ones leave the margin at the base spin + 50 us; ``early-max`` (the first version)
    goes to the cap."""
    overshoots = deque([50_000] * 40 + [5 * MS] * 10 + [-3_000] * 5, maxlen=64)
    assert Waiter("early", MS).margin_for(overshoots) == workers.SPIN_NS + 50_000
    assert Waiter("early-max", MS).margin_for(overshoots) == workers.MAX_SPIN_NS
    assert Waiter("early", MS).margin_for(deque([5 * MS] * 40)) == workers.MAX_SPIN_NS
    assert Waiter("early", MS).margin_for(deque([-3_000] * 40)) == workers.SPIN_NS


def test_the_early_wait_restores_the_timer_slack() -> None:
    before = sched.get_timerslack()
    waiter = Waiter("early", MS)
    old = waiter.begin()
    assert waiter.slack == "timer slack 1 ns"
    waiter.end(old)
    assert (old, sched.get_timerslack()) == (before, before)


def test_gc_is_off_during_a_step_and_back_on_after_an_error() -> None:
    ours, theirs = mp.Pipe()
    seen: list[bool] = []

    def handle(cmd: dict[str, Any]) -> dict[str, Any]:
        seen.append(gc.isenabled())
        raise RuntimeError("boom")

    assert gc.isenabled()
    ours.send({"op": "run"})
    ours.send({"op": "stop"})
    workers._serve(theirs, handle)
    assert seen == [False]
    assert gc.isenabled()
    assert ours.recv() == {"error": "RuntimeError: boom"}


@pytest.mark.parametrize(
    ("pubs", "subs", "cpus", "expected"),
    [
        (1, 1, [0, 1], ({0: {1}}, {0}, "pinned")),
        (1, 0, [0, 1], ({0: {1}}, {0}, "pinned")),
        (2, 2, [0, 1, 2, 3], ({0: {3}, 1: {2}}, {0, 1}, "pinned")),
        (
            1,
            2,
            [0, 1],
            ({}, {0, 1}, "not pinned: 1 publisher(s) + 2 subscriber process(es) on 2 core(s)"),
        ),
        (
            2,
            1,
            [0, 1],
            ({}, {0, 1}, "not pinned: 2 publisher(s) + 1 subscriber process(es) on 2 core(s)"),
        ),
        (
            1,
            1,
            [0],
            ({}, {0}, "not pinned: 1 publisher(s) + 1 subscriber process(es) on 1 core(s)"),
        ),
    ],
)
def test_a_publisher_gets_a_core_only_when_every_subscriber_process_keeps_one(
    pubs: int, subs: int, cpus: list[int], expected: tuple
) -> None:
    assert sched.plan_affinity(pubs, subs, cpus) == expected


def test_refused_affinity_and_priority_are_recorded_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = os.sched_getaffinity(0)
    assert sched.set_affinity(0, {os.cpu_count() or 1 + 64}).startswith("affinity not set (")
    assert os.sched_getaffinity(0) == before

    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sched.os, "sched_setscheduler", refuse)
    assert sched.set_realtime(os.getpid()) == (
        "not permitted (PermissionError: [Errno 1] Operation not permitted)"
    )
    assert sched.set_normal(os.getpid()).startswith("not restored (PermissionError")


def _kernel() -> tuple[int, int]:
    major, minor = platform.release().split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def test_a_short_slice_is_asked_for_read_back_and_undone_keeping_the_nice_value() -> None:
    child = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: os.nice(5))
    try:
        done = sched.set_slice(child.pid, sched.SLICE_NS)
        if platform.machine() in ("x86_64", "aarch64") and _kernel() >= (6, 12):
            assert done == "slice 100 us"
            attr = sched._sched_attr(child.pid)
            assert not isinstance(attr, str) and attr[2][5] == sched.SLICE_NS
        else:
            assert done.startswith("slice not set (")
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == 5  # nice kept
        assert sched.set_slice(child.pid, 0) in ("default slice", done)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == 5
    finally:
        child.kill()
        child.wait()


def test_a_slice_that_cannot_be_asked_for_is_recorded_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert sched.set_slice(2**22 + 12345).startswith("slice not set (sched_getattr failed")
    monkeypatch.setattr(sched, "_sched_attr", lambda pid: (None, (0, 0), [56, 1] + [0] * 8))
    assert sched.set_slice(os.getpid()) == "slice not set (not a normal-priority task)"
    monkeypatch.undo()
    monkeypatch.setattr(sched.platform, "machine", lambda: "sparc64")
    assert sched.set_slice(os.getpid()) == (
        f"slice not set (no sched_setattr on {platform.system()} sparc64)"
    )
