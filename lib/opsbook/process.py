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
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from opsbook.redact import Redactor

#: Lines the child prefixes this way are papermill's log (cell output included).
LOG_PREFIX = "│ "


class Tee:
    """Where the child's output goes: the step log and the terminal, redacted line by line
    before anything is written (a secret read in the kernel is known before it prints)."""

    def __init__(self, log: IO[str], log_output: bool, redactor: Redactor, read_file: Path) -> None:
        self.log = log
        self.log_output = log_output
        self.redactor = redactor
        self.read_file = read_file

    def line(self, line: str) -> None:
        self.redactor.refresh_file(self.read_file)
        line = self.redactor.text(line)
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
    proc: subprocess.Popen[str], spec: str, tee: Tee, timeout: float | None
) -> tuple[int, bool]:
    """Give a started child its spec, tee its output, enforce the timeout.

    Returns the exit code and whether the timeout killed it.
    """
    assert proc.stdout is not None and proc.stdin is not None
    pump = threading.Thread(target=_pump, args=(proc.stdout, tee.line), daemon=True)
    pump.start()
    timed_out = False
    try:
        try:
            proc.stdin.write(spec)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_tree(proc.pid)
        proc.wait()
    except KeyboardInterrupt:
        kill_tree(proc.pid)
        raise
    pump.join(timeout=10)
    return proc.returncode, timed_out


def _pump(stream: IO[str], line: Callable[[str], None]) -> None:
    """Copy the child's output to the step log; show progress (and, with ``--log-output``,
    papermill's cell output) on the terminal."""
    for text in stream:
        line(text)


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
        return start_child(env, kernel_dir=self._kernel_dir())

    def start(self, step_id: str, env: dict[str, str], warm: Warmup) -> None:
        if self._proc is not None and self._step_id == step_id:
            return
        self.discard()
        self._step_id, self._env, self._warm = step_id, env, warm
        self._proc = start_child(env, warm, self._kernel_dir())

    def take(
        self, step_id: str, env: dict[str, str], spec: dict[str, object]
    ) -> subprocess.Popen[str] | None:
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
        """Discard the child started ahead and remove the run's kernel directories."""
        self.discard()
        root, self._kernel_root = self._kernel_root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


def child_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The child's environment: the runner's, plus the step's variables, unbuffered."""
    return dict(base if base is not None else os.environ, **extra, PYTHONUNBUFFERED="1")
