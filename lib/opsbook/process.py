"""Process plumbing of the runner: the notebook child, its output, its timeout, its kill.

Each notebook step runs in a child process (``python -m opsbook._child``, see
:mod:`opsbook._child`) in its own session, so a hung kernel can be killed with its whole
process tree. The runner writes the step's spec (JSON) to the child's stdin and copies the
child's output, line by line, through a :class:`Tee` (step log and terminal, redacted).

A child can be started *ahead* of its step (:func:`start_child` with ``warm``): while one
step runs, the next step's child already imports papermill and starts the step's own
fresh kernel, then waits for its spec. Starting Python, papermill and a kernel is most
of a step's fixed cost (benchmarks/runner_overhead.py), so a chain of steps no longer
waits for it between steps. Each step still gets a new kernel: a warm child serves one
step and exits.

Two kernels now start at once (the running step's and the next one's), so a kernel must
not race anyone for an address: each child's kernel speaks ZeroMQ over Unix sockets in a
directory of its own (:mod:`opsbook.kernel`), under one private temporary directory per
run that the runner removes at the end (:class:`WarmChildren`).

Stopping a kernel (its ``atexit`` work, the interpreter's exit) is the other fixed cost
at the end of a step. A child says when the step's result is written
(:data:`RESULT_WRITTEN`) and only then stops its kernel: the runner records the step
(outputs, reports) meanwhile, and waits for that child to be gone before the next step's
child gets its spec, so no step runs beside the kernel of the step before it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from opsbook.redact import Redactor

#: Lines the child prefixes this way are papermill's log (cell output included).
LOG_PREFIX = "│ "

#: The line the child prints once the step's result is written, before it stops its
#: kernel: the runner records the step while the kernel shuts down (:meth:`WarmChildren.run`).
RESULT_WRITTEN = "\x1eopsbook: result written"

#: How long a child may take to stop its kernel after its result (jupyter_client kills
#: a kernel that has not exited 5 s after it was asked to).
FINISH_TIMEOUT = 30.0


class Tee:
    """Where the child's output goes: the step log and the terminal, redacted line by line
    before anything is written (a secret read in the kernel is known before it prints)."""

    def __init__(self, log: IO[str], log_output: bool, redactor: Redactor, read_file: Path) -> None:
        self.log: IO[str] | None = log
        self.log_output = log_output
        self.redactor = redactor
        self.read_file = read_file

    def line(self, line: str) -> None:
        self.redactor.refresh_file(self.read_file)
        line = self.redactor.text(line)
        if self.log is not None:
            self.log.write(line)
            self.log.flush()
        progress, prefix, logged = line.partition(LOG_PREFIX)
        if progress.strip() and "Kernel is running over TCP without encryption" not in progress:
            sys.stderr.write(progress if prefix else line)
        if prefix and self.log_output:
            sys.stderr.write(prefix + logged)


@dataclass(frozen=True)
class Warmup:
    """What a child needs to start its kernel before its spec arrives."""

    kernel_name: str
    cwd: str
    parent_pid: int

    def matches(self, spec: dict[str, object]) -> bool:
        return spec.get("kernel_name") == self.kernel_name and spec.get("cwd") == self.cwd


def start_child(
    env: dict[str, str], warm: Warmup | None = None, kernel_dir: Path | None = None
) -> subprocess.Popen[str]:
    """Start ``python -m opsbook._child`` in its own session; it reads its spec on stdin.

    With ``warm`` the child imports papermill and starts its kernel right away. The
    kernel's sockets and connection file go to ``kernel_dir`` (a new private temporary
    directory when not given), which no other kernel uses.
    """
    cmd = [sys.executable, "-m", "opsbook._child", "-"]
    if kernel_dir is not None:
        cmd += ["--kernel-dir", str(kernel_dir)]
    if warm is not None:
        cmd += ["--warm", json.dumps(warm.__dict__)]
    return subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        errors="replace",
        start_new_session=True,
        bufsize=1,
    )


def run_child(
    proc: subprocess.Popen[str],
    spec: str,
    tee: Tee,
    timeout: float | None,
    finishing: list[tuple[subprocess.Popen[str], threading.Thread]] | None = None,
) -> tuple[int, bool]:
    """Give a started child its spec, tee its output, enforce the timeout.

    Returns the exit code and whether the timeout killed it. With ``finishing``, returns
    as soon as the child has written its result (exit code 0 then) and appends the child,
    still stopping its kernel, and its output pump to ``finishing``; its later output
    reaches the terminal, not the step log (which the caller may close).
    """
    assert proc.stdout is not None and proc.stdin is not None
    ended = threading.Event()  # the result is written, or the output ended (all exited)
    pump = threading.Thread(
        target=_pump, args=(proc.stdout, tee, ended, finishing is not None), daemon=True
    )
    pump.start()
    timed_out = False
    try:
        try:
            proc.stdin.write(spec)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        if not ended.wait(timeout):
            raise subprocess.TimeoutExpired(proc.args, timeout or 0.0)
        if finishing is not None and proc.poll() is None and tee.log is None:
            finishing.append((proc, pump))
            return 0, False
        proc.wait()
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_tree(proc.pid)
        proc.wait()
    except KeyboardInterrupt:
        kill_tree(proc.pid)
        raise
    pump.join(timeout=10)
    return proc.returncode, timed_out


def _pump(stream: IO[str], tee: Tee, ended: threading.Event, early: bool) -> None:
    """Copy the child's output to the step log; show progress (and, with ``--log-output``,
    papermill's cell output) on the terminal. With ``early``, the line saying that the
    result is written detaches the step log and ends the wait."""
    try:
        for text in stream:
            if text.rstrip("\n") == RESULT_WRITTEN:
                if early:
                    tee.log = None
                    ended.set()
                continue
            tee.line(text)
    finally:
        ended.set()


def finish(
    children: list[tuple[subprocess.Popen[str], threading.Thread]],
    timeout: float = FINISH_TIMEOUT,
) -> None:
    """Wait for children that wrote their result to stop their kernels and exit; kill
    (with their kernels) those that take longer than ``timeout`` or when interrupted."""
    try:
        while children:
            proc, pump = children[0]
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_tree(proc.pid)
                proc.wait()
            pump.join(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
            children.pop(0)
    finally:
        for proc, _ in children:  # interrupted while waiting
            kill_tree(proc.pid)
            proc.wait()
        children.clear()


def kill_tree(pid: int) -> None:
    """Kill a process and every descendant (the kernel runs in its own session)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(procs, timeout=10)


class WarmChildren:
    """A run's notebook children: at most one started ahead, for a named step, with the
    env it will need; each child's kernel in its own directory under the run's private
    temporary directory (:attr:`kernel_root`).

    :meth:`take` hands the child started ahead to its step (or returns ``None`` when the
    step differs, the env differs or the child died: the caller then starts one with
    :meth:`start_now`); :meth:`start` for another step and :meth:`discard` kill an unused
    one (a step skipped by ``when:``, a run stopped at a gate or failed); :meth:`close`
    at the end of the run also removes the kernels' directories (the sockets of a child
    killed by a timeout included).
    """

    def __init__(self) -> None:
        self._step_id: str | None = None
        self._env: dict[str, str] = {}
        self._warm: Warmup | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._kernel_root: Path | None = None
        self._finishing: list[tuple[subprocess.Popen[str], threading.Thread]] = []

    @property
    def kernel_root(self) -> Path:
        """The run's private (0700) temporary directory for its kernels, made on first use."""
        if self._kernel_root is None:
            self._kernel_root = Path(tempfile.mkdtemp(prefix="opsbook-"))
        return self._kernel_root

    def _kernel_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="k", dir=self.kernel_root))

    def start_now(self, env: dict[str, str]) -> subprocess.Popen[str]:
        """Start a child for the step about to run (none was started ahead for it)."""
        finish(self._finishing)
        return start_child(env, kernel_dir=self._kernel_dir())

    def run(
        self, proc: subprocess.Popen[str], spec: str, tee: Tee, timeout: float | None
    ) -> tuple[int, bool]:
        """:func:`run_child`, returning once the step's result is written: the child stops
        its kernel while the runner records the step, and is waited for before the next
        child gets its spec (:meth:`take`, :meth:`start_now`) or the run ends
        (:meth:`close`), so a step never runs beside the kernel of the step before it."""
        return run_child(proc, spec, tee, timeout, self._finishing)

    def start(self, step_id: str, env: dict[str, str], warm: Warmup) -> None:
        if self._proc is not None and self._step_id == step_id:
            return
        self.discard()
        self._step_id, self._env, self._warm = step_id, env, warm
        self._proc = start_child(env, warm, self._kernel_dir())

    def take(
        self, step_id: str, env: dict[str, str], spec: dict[str, object]
    ) -> subprocess.Popen[str] | None:
        finish(self._finishing)
        proc = self._proc
        if proc is None or self._step_id != step_id:  # kept for its step (a retry came first)
            return None
        fits = self._env == env and self._warm is not None and self._warm.matches(spec)
        if not fits or proc.poll() is not None:
            self.discard()
            return None
        self._proc = None
        return proc

    def forget(self, step_id: str) -> None:
        """Discard the child started for ``step_id`` (the step will not run)."""
        if self._step_id == step_id:
            self.discard()

    def discard(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            kill_tree(proc.pid)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
            proc.wait()

    def close(self) -> None:
        """Discard the child started ahead, wait for those stopping their kernels, and
        remove the run's kernel directories."""
        try:
            self.discard()
            finish(self._finishing)
        finally:
            root, self._kernel_root = self._kernel_root, None
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)


def child_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The child's environment: the runner's, plus the step's variables, unbuffered."""
    return dict(base if base is not None else os.environ, **extra, PYTHONUNBUFFERED="1")
