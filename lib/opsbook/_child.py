"""Child process that executes one notebook with papermill.

The runner starts ``python -m opsbook._child - --kernel-dir DIR`` and writes the spec
(JSON) to its stdin, so that parameters never sit in a file on disk. The child starts
the step's fresh kernel itself (:func:`opsbook.kernel.start_kernel`: ZeroMQ over Unix
sockets in ``DIR``, a directory for this kernel only, so no TCP port can be raced for)
and hands it to papermill. Started ahead of its step (``--warm WARMUP``, see
:mod:`opsbook.process`), the child imports papermill and starts its kernel first, then
waits for the spec. The child runs in its own process group so that a hung or dead
kernel can be killed with its whole process tree when a step's ``timeout_s`` runs out,
and so that the runner's terminal shows papermill's progress bar. It writes its outcome
to the spec's ``result_path``: status, error name, value and cell index, says so on
stdout (:data:`opsbook.process.RESULT_WRITTEN`), and then stops its kernel.

The child dies with the runner, even when the runner is SIGKILLed: the child asks
Linux for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``), a watchdog thread
notices a changed parent pid as a fallback, and either way the child kills the kernel
and every other descendant, and removes the kernel's directory, before exiting.

Every notebook the child writes goes through :class:`opsbook.redact.Redactor` first
(declared secrets, URL passwords in the parameters, variables the kernel read with
``opsbook.settings.secret()``), so even a killed run leaves no plain secret in it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from opsbook.kernel import KernelStartError, StartingKernel, shutdown_kernel
from opsbook.process import LOG_PREFIX, RESULT_WRITTEN
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


def _kill_descendants_and_exit(kernel_dir: Path, code: int = 143) -> None:
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
    shutil.rmtree(kernel_dir, ignore_errors=True)  # the kernel's sockets, connection file
    os._exit(code)


def _die_on_sigterm(kernel_dir: Path) -> None:
    """SIGTERM kills the kernel, removes its directory and exits. (Set again after
    papermill: nbclient handles SIGTERM while it runs and then resets it to the default.)"""
    signal.signal(signal.SIGTERM, lambda *_: _kill_descendants_and_exit(kernel_dir))


def _die_with_parent(parent_pid: int, kernel_dir: Path) -> None:
    """SIGTERM on the runner's death (Linux), a watchdog elsewhere and as a fallback."""

    def die(*_: object) -> None:
        _kill_descendants_and_exit(kernel_dir)

    _die_on_sigterm(kernel_dir)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the runner died before prctl took effect
        die()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                die()

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


#: papermill's optional storage backends, which it imports when installed: a step reads
#: and writes local files only, and pyarrow (HDFS; numpy with it) alone is ~0.3-0.6 s of
#: every child's start.
UNUSED_BACKENDS = ("pyarrow", "pyarrow.fs", "gcsfs", "github")


def _prepare_validation() -> None:
    """Compile nbformat's validator for current notebooks now: fastjsonschema generates
    its code on the first notebook read (~0.2 s of CPU), which a child started ahead does
    while it waits for its spec instead of on the step's clock."""
    import nbformat
    from nbformat.validator import get_validator

    get_validator(version=4, version_minor=nbformat.v4.nbformat_minor)


def _import_papermill() -> Any:
    for name in UNUSED_BACKENDS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # "not installed"
    import papermill

    return papermill


class _StepKernel:
    """The step's kernel as the child goes: launched, ready, stopped.

    ``None`` for :attr:`km` lets papermill start a kernel its own way: no kernel name
    given, or the start failed (papermill then writes the notebook and reports the
    failure as before).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.starting: StartingKernel | None = None
        self.km: Any = None

    def launch(self, kernel_name: str | None, cwd: str | None) -> None:
        """Launch it (:class:`opsbook.kernel.StartingKernel`); returns while it boots."""
        self.starting = None
        if not kernel_name:
            return
        try:
            self.starting = StartingKernel(kernel_name, cwd or os.getcwd(), self.directory)
        except Exception as exc:  # e.g. no such kernel: papermill says so in the notebook
            print(f"opsbook: {exc}; papermill starts the kernel instead", flush=True)

    def ready(self, timeout: float, *, wait: bool) -> Any:
        """Its manager: with ``wait`` (a child started ahead, which has the time) or over
        TCP (whose start is retried on fresh ports) once the kernel answers; otherwise at
        once, and nbclient waits for the answer after papermill has written the notebook
        (so a step killed by its timeout while the kernel boots still leaves it)."""
        if self.starting is None:
            return None
        if not wait and self.starting.transport == "ipc":
            self.km = self.starting.km
            return self.km
        try:
            self.km = self.starting.wait(timeout)
        except KernelStartError as exc:
            print(f"opsbook: {exc}; papermill starts the kernel instead", flush=True)
        return self.km

    def stop(self, *, now: bool = False) -> None:
        """Shut it down (papermill shuts down only the kernels it started)."""
        if self.km is not None:
            shutdown_kernel(self.km, now=now)
        elif self.starting is not None:  # launched, then not used
            shutdown_kernel(self.starting.km, now=True)
        self.km = self.starting = None


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m opsbook._child")
    parser.add_argument("spec", help="the spec (JSON) file, or - for stdin")
    parser.add_argument("--kernel-dir", help="a directory for this child's kernel only")
    parser.add_argument("--warm", help="start the kernel first: Warmup as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    directory = Path(args.kernel_dir or tempfile.mkdtemp(prefix="opsbook-kernel-"))
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    kernel = _StepKernel(directory)
    try:
        return _run(args, kernel)
    finally:  # also when the spec never came (the runner died while this child waited)
        kernel.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _run(args: argparse.Namespace, kernel: _StepKernel) -> int:
    if args.warm is not None:  # started ahead of the step: kernel first, spec when it is time
        warm = json.loads(args.warm)
        _die_with_parent(int(warm["parent_pid"]), kernel.directory)
        _log_to_stdout()
        kernel.launch(warm["kernel_name"], warm["cwd"])
        papermill = _import_papermill()  # while the kernel boots
        _prepare_validation()
        kernel.ready(120.0, wait=True)
        spec = _read_spec(args.spec)
        if kernel.km is None or (
            spec.get("kernel_name") != warm["kernel_name"] or spec.get("cwd") != warm["cwd"]
        ):
            kernel.stop(now=True)  # not what the step needs: start the right one
            kernel.launch(spec.get("kernel_name"), spec.get("cwd"))
    else:
        spec = _read_spec(args.spec)
        if spec.get("parent_pid"):
            _die_with_parent(int(spec["parent_pid"]), kernel.directory)
        _log_to_stdout()
        kernel.launch(spec.get("kernel_name"), spec.get("cwd"))
        papermill = _import_papermill()  # while the kernel boots

    redactor = _redacting_writes(spec)
    error: BaseException | None = None
    try:
        km = kernel.km
        if km is None:
            km = kernel.ready(spec.get("start_timeout", 120), wait=False)
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
    if spec.get("parent_pid") or args.warm is not None:
        _die_on_sigterm(kernel.directory)
    outcome = redactor.value(_outcome(error))
    Path(spec["result_path"]).write_text(json.dumps(outcome), encoding="utf-8")
    print(RESULT_WRITTEN, flush=True)  # the runner records the step while the kernel stops
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
