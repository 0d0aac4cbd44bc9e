"""Where the publisher runs and how promptly it wakes: CPU affinity, real-time priority,
timer slack, and the run-queue delay the kernel accounts to a thread.

Every attempt here is best effort and *recorded*: a function returns what was done (or
why not) as a short text for the step's result and never raises, because a benchmark
must run where it is not permitted to pin or to raise priority (no CAP_SYS_NICE, one
core, a platform without ``sched_setaffinity``).

Why each exists (measured with ``benchmarks/pubsub_lag.py``):

* timer slack: Linux lets a normal thread's sleeps end up to ``timerslack_ns`` (50 us by
  default) late, so the kernel can batch wake-ups; a publisher that must send at a given
  microsecond sets its own slack to 1 ns (``PR_SET_TIMERSLACK``, no privilege needed).
* affinity: on 2 cores, a subscriber process busy on the publisher's core makes the
  publisher wait for the CPU when its send is due; the publisher gets a core of its own
  among the benchmark's processes when every subscriber process still has one (Redis
  and other programs still share it).
* real-time priority (``SCHED_FIFO``): a woken real-time thread preempts any normal one
  at once; optional, needs privilege, restored after the step.
* run-queue delay (``/proc/thread-self/schedstat``, second field): the time a thread was
  runnable but not running, which tells CPU preemption apart from a late timer.
* a short slice (EEVDF, Linux >= 6.12: ``sched_attr.sched_runtime`` of a normal task,
  no privilege needed): a task that asks for a 0.1 ms slice gets an early virtual
  deadline when it wakes, so it preempts what runs on its CPU at once instead of waiting
  for that task's slice (1.4 ms by default on 2 cores) to end; it still gets only its fair
  share of the CPU. Measured on this 2-core host at load 5 with other programs on the
  publisher's core: a 1 ms sleep overshot by p99 3.0 ms at the default slice, 0.67 ms at
  0.1 ms (SCHED_FIFO: 0.55 ms), run-queue delay 125 -> 21 ms over 2,400 sleeps.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import struct
from typing import Any

PR_SET_TIMERSLACK = 29
PR_GET_TIMERSLACK = 30
SLICE_NS = 100_000  # the shortest slice the kernel accepts
_SCHED_ATTR_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}  # set, get
_SCHED_ATTR = struct.Struct("IIQiIQQQII")  # struct sched_attr, SCHED_ATTR_SIZE_VER1


@functools.cache
def libc() -> Any:
    """The C library this process already has loaded (``dlopen(NULL)``), once: no
    ``find_library`` (it runs ``ldconfig`` in a subprocess, ~2.5 ms a call) per use.
    None where it cannot be opened."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - every CPython on Linux can
        return None


def get_timerslack() -> int:
    """This thread's timer slack in ns (-1 when it cannot be read)."""
    try:
        c = libc()
        return int(c.prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)) if c else -1
    except (OSError, AttributeError):
        return -1


def set_timerslack(ns: int) -> str:
    """Set this thread's timer slack; returns what happened."""
    try:
        c = libc()
        if c is None or c.prctl(PR_SET_TIMERSLACK, max(1, int(ns)), 0, 0, 0) != 0:
            return f"timer slack not set (errno {ctypes.get_errno()})"
    except (OSError, AttributeError) as exc:
        return f"timer slack not set ({exc})"
    return f"timer slack {get_timerslack()} ns"


class RunDelay:
    """Cumulative run-queue delay of the calling thread, in ns (``read`` gives -1 where
    ``/proc/thread-self/schedstat`` does not exist)."""

    def __init__(self) -> None:
        self.fd = -1
        with contextlib.suppress(OSError):
            self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)

    def read(self) -> int:
        if self.fd < 0:
            return -1
        try:
            return int(os.pread(self.fd, 128, 0).split()[1])
        except (OSError, IndexError, ValueError):
            return -1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _sched_attr(pid: int) -> tuple[Any, tuple[int, int], list[int]] | str:
    """libc, the syscall numbers and ``pid``'s current sched_attr, or why not."""
    calls = _SCHED_ATTR_SYSCALLS.get(platform.machine())
    c = libc()
    if calls is None or c is None:
        return f"no sched_setattr on {platform.system()} {platform.machine()}"
    buf = ctypes.create_string_buffer(_SCHED_ATTR.size)
    try:
        if c.syscall(calls[1], int(pid), buf, _SCHED_ATTR.size, 0) != 0:
            return f"sched_getattr failed (errno {ctypes.get_errno()})"
    except (OSError, AttributeError) as exc:
        return f"sched_getattr failed ({exc})"
    return c, calls, list(_SCHED_ATTR.unpack(buf.raw))


def set_slice(pid: int, ns: int = SLICE_NS) -> str:
    """Ask EEVDF for a ``ns`` slice for ``pid`` (a normal-priority task; 0: the default
    again), keeping its nice value; returns what happened (read back: a kernel before
    6.12 ignores the request). Never raises."""
    got = _sched_attr(pid)
    if isinstance(got, str):
        return f"slice not set ({got})"
    c, calls, attr = got
    if attr[1] != os.SCHED_OTHER:
        return "slice not set (not a normal-priority task)"
    attr[0], attr[2], attr[5] = _SCHED_ATTR.size, 0, int(ns)  # size, flags, sched_runtime
    try:
        if c.syscall(calls[0], int(pid), _SCHED_ATTR.pack(*attr), 0) != 0:
            return f"slice not set (errno {ctypes.get_errno()})"
    except (OSError, AttributeError) as exc:
        return f"slice not set ({exc})"
    back = _sched_attr(pid)
    if not ns:
        return "default slice"
    if isinstance(back, str) or back[2][5] != ns:
        return "slice not set (this kernel has no per-task slice)"
    return f"slice {ns / 1000:g} us"


def cores() -> list[int]:
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return list(range(os.cpu_count() or 1))


def plan_affinity(
    n_pubs: int, n_subs: int, cpus: list[int]
) -> tuple[dict[int, set[int]], set[int], str]:
    """Which CPU each publisher gets and where subscriber processes may run.

    A publisher gets a CPU of its own only when the CPUs left still give every subscriber
    process one (pinning must not take parallelism from subscribers: 2 subscriber
    processes confined to 1 core would lower the throughput measured). Otherwise nobody
    is pinned. Returns (publisher index -> CPUs, subscriber CPUs, what was decided)."""
    if n_pubs < 1 or len(cpus) < n_pubs + max(1, n_subs):
        why = f"not pinned: {n_pubs} publisher(s) + {n_subs} subscriber process(es)"
        return {}, set(cpus), f"{why} on {len(cpus)} core(s)"
    pubs = {i: {cpus[-1 - i]} for i in range(n_pubs)}
    subs = set(cpus[: len(cpus) - n_pubs])
    return pubs, subs, "pinned"


def set_affinity(pid: int, cpus: set[int]) -> str:
    """Pin ``pid`` to ``cpus``; returns what happened."""
    try:
        os.sched_setaffinity(pid, cpus)
    except (AttributeError, OSError, ValueError) as exc:
        return f"affinity not set ({type(exc).__name__}: {exc})"
    return "cpus " + ",".join(str(c) for c in sorted(cpus))


def set_realtime(pid: int, priority: int = 1) -> str:
    """``SCHED_FIFO`` at ``priority`` for ``pid``; returns what happened (a refusal, e.g.
    without CAP_SYS_NICE, is recorded, never raised)."""
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError) as exc:
        return f"not permitted ({type(exc).__name__}: {exc})"
    return f"SCHED_FIFO {priority}"


def set_normal(pid: int) -> str:
    """Back to ``SCHED_OTHER`` (after a step that raised the priority)."""
    try:
        os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError) as exc:
        return f"not restored ({type(exc).__name__}: {exc})"
    return "SCHED_OTHER"
