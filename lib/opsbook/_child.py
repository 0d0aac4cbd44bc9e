"""Child process that executes one notebook with papermill.

The runner starts ``python -m opsbook._child -`` and writes the spec (JSON) to its
stdin, so that parameters never sit in a file on disk. Started ahead of its step
(``python -m opsbook._child - WARMUP``, see :mod:`opsbook.process`), the child imports
papermill and starts its kernel first, then waits for the spec. The child runs in its own
process group so that a hung or dead kernel can be killed with its whole process tree
when a step's ``timeout_s`` runs out, and so that the runner's terminal shows
papermill's progress bar. It writes its outcome to the spec's ``result_path``:
status, error name, value and cell index.

The child dies with the runner, even when the runner is SIGKILLed: the kernel asks
Linux for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``), a watchdog thread
notices a changed parent pid as a fallback, and either way the child kills the kernel
and every other descendant before exiting.

Every notebook the child writes goes through :class:`opsbook.redact.Redactor` first
(declared secrets, URL passwords in the parameters, variables the kernel read with
``opsbook.settings.secret()``), so even a killed run leaves no plain secret in it.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from opsbook.process import LOG_PREFIX
from opsbook.redact import READ_FILE, Redactor

PR_SET_PDEATHSIG = 1


def _outcome(exc: BaseException | None) -> dict[str, Any]:
    if exc is None:
        return {"status": "succeeded"}
    import papermill.exceptions as pmx

    if isinstance(exc, pmx.PapermillExecutionError):
        return {
            "status": "failed",
            "ename": exc.ename,
            "evalue": exc.evalue,
            "cell_index": exc.cell_index,
            "exec_count": exc.exec_count,
        }
    return {
        "status": "failed",
        "ename": type(exc).__name__,
        "evalue": str(exc)[:2000],
        "cell_index": None,
    }


class _PrefixedFormatter(logging.Formatter):
    """Prefix every line of papermill's log (cell output included) so the runner can tell
    it apart from the progress bar and show it only with ``--log-output``."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(LOG_PREFIX + line for line in super().format(record).splitlines())


def _log_to_stdout() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_PrefixedFormatter("%(message)s"))
    logger = logging.getLogger("papermill")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


# ------------------------------------------------------------- dying with the runner


def _kill_descendants_and_exit(code: int = 143) -> None:
    import psutil

    try:
        procs = psutil.Process().children(recursive=True)
    except psutil.Error:
        procs = []
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(procs, timeout=5)
    os._exit(code)


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM on the runner's death (Linux), a watchdog elsewhere and as a fallback."""
    signal.signal(signal.SIGTERM, lambda signum, frame: _kill_descendants_and_exit())
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the runner died before prctl took effect
        _kill_descendants_and_exit()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                _kill_descendants_and_exit()

    threading.Thread(target=watch, name="opsbook-watchdog", daemon=True).start()


# ------------------------------------------------------------------------ redaction


def _redacting_writes(spec: dict[str, Any]) -> Redactor:
    """Route every notebook papermill writes through the run's redactor."""
    from papermill.iorw import papermill_io

    redactor = Redactor(spec.get("secret_env", []))
    redactor.add_from_data(spec.get("parameters", {}))
    read_file = Path(spec["step_dir"]) / READ_FILE if spec.get("step_dir") else None
    original = papermill_io.write

    def write(buf: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if read_file is not None:
            redactor.refresh_file(read_file)
        return original(redactor.notebook_text(buf), path, *args, **kwargs)

    papermill_io.write = write  # type: ignore[method-assign]
    return redactor


def _read_spec(arg: str) -> dict[str, Any]:
    text = sys.stdin.read() if arg == "-" else Path(arg).read_text(encoding="utf-8")
    return json.loads(text)


def _start_kernel(kernel_name: str, cwd: str) -> Any:
    """A fresh kernel for the coming notebook, started as papermill (nbclient) would."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=kernel_name)
    extra = ["--HistoryManager.hist_file=:memory:"] if km.ipykernel else []
    km.start_kernel(extra_arguments=extra, cwd=cwd)
    return km


def main(spec_arg: str, warmup: str | None = None) -> int:
    km = None
    if warmup is not None:  # started ahead of the step: kernel first, spec when it is time
        warm = json.loads(warmup)
        _die_with_parent(int(warm["parent_pid"]))
        _log_to_stdout()
        import papermill

        km = _start_kernel(warm["kernel_name"], warm["cwd"])
        spec = _read_spec(spec_arg)
        if spec.get("kernel_name") != warm["kernel_name"] or spec.get("cwd") != warm["cwd"]:
            km.shutdown_kernel(now=True)  # not what the step needs: let papermill start one
            km = None
    else:
        spec = _read_spec(spec_arg)
        if spec.get("parent_pid"):
            _die_with_parent(int(spec["parent_pid"]))
        _log_to_stdout()
        import papermill

    redactor = _redacting_writes(spec)
    error: BaseException | None = None
    try:
        papermill.execute_notebook(
            spec["input"],
            spec["output"],
            parameters=spec["parameters"],
            kernel_name=spec.get("kernel_name"),
            cwd=spec.get("cwd"),
            log_output=spec.get("log_output", True),
            progress_bar=spec.get("progress_bar", True),
            start_timeout=spec.get("start_timeout", 120),
            **({"km": km} if km is not None else {}),
        )
    except Exception as exc:  # every failure is reported to the parent, never swallowed
        error = exc
    finally:
        if km is not None:  # papermill shuts down only the kernels it started
            km.shutdown_kernel(now=False)
    outcome = redactor.value(_outcome(error))
    Path(spec["result_path"]).write_text(json.dumps(outcome), encoding="utf-8")
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
