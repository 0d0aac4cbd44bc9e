"""A fresh Jupyter kernel for one notebook step, started without racing for a port.

jupyter_client picks a TCP kernel's five ports by binding port 0 and closing the socket;
the kernel binds them a moment later. Any other process may take one of them in
between, and the kernel then dies with ``ZMQError: Address already in use``. With two
kernels starting at once (a step's and the next step's, started ahead) that happens
under load.

So a step's kernel talks ZeroMQ over ``ipc``: Unix sockets in a directory private to
that kernel (``<dir>/kernel-ipc-1`` .. ``-5``, the connection file beside them). No
port is chosen, nothing is shared, and nothing on the host can take an address between
its choice and its bind. Where ``ipc`` is unavailable (Windows, or a socket path longer
than the OS allows) the kernel uses TCP, and a kernel that dies before it answers is
started again on fresh ports.

The kernel is started the way nbclient starts one for papermill (``cwd`` set, the IPython
history kept in memory) and is ready (it answered ``kernel_info``) when
:func:`start_kernel` returns.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from opsbook.errors import OpsbookError

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

#: ``sun_path`` holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
UNIX_SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107

#: How many times a TCP kernel that died before answering is started again.
TCP_ATTEMPTS = 3

Transport = Literal["ipc", "tcp"]


class KernelStartError(OpsbookError):
    """A step's kernel died or did not answer while it was starting."""


def connection_file(directory: Path, attempt: int = 1) -> Path:
    """Where the kernel's connection file goes; its ipc sockets are named after it."""
    return directory / f"kernel-{attempt}.json"


def ipc_available(directory: Path) -> bool:
    """Whether a kernel in ``directory`` can use ipc: a POSIX ZeroMQ with ipc, and the
    longest socket path (``kernel-<n>-ipc-<port>``) short enough for ``sun_path``."""
    import zmq

    longest = f"{connection_file(directory, TCP_ATTEMPTS).with_suffix('')}-ipc-5"
    return (
        os.name == "posix"
        and bool(zmq.has("ipc"))
        and len(os.fsencode(longest)) <= UNIX_SOCKET_PATH_MAX
    )


class StartingKernel:
    """A step's fresh kernel, launched and not yet known to answer.

    Launching returns at once, so the caller can do other work (import papermill) while
    the kernel boots; :meth:`wait` returns its manager once it answers. The connection
    file (and the ipc sockets, named after it) go to ``directory``, a directory only
    this kernel uses.

    ``transport`` defaults to ``ipc`` where :func:`ipc_available`, else ``tcp``. Over
    TCP, a kernel that dies before answering (a port taken by another process between
    jupyter_client's choice and the kernel's bind) is started again on fresh ports, up
    to ``attempts`` times in all.

    The manager is nbclient's own default (:class:`AsyncKernelManager`), driven on
    jupyter_core's event loop for this thread, the loop papermill's ``execute_notebook``
    then runs on. (A blocking ``KernelManager`` handed to papermill makes nbclient wait
    for kernel output without ever noticing that the kernel died: a step would hang.)
    """

    def __init__(
        self,
        kernel_name: str,
        cwd: str,
        directory: Path,
        *,
        transport: Transport | None = None,
        attempts: int = TCP_ATTEMPTS,
    ) -> None:
        self.kernel_name = kernel_name
        self.cwd = cwd
        self.directory = directory
        self.transport: Transport = transport or ("ipc" if ipc_available(directory) else "tcp")
        self.tries = max(1, attempts) if self.transport == "tcp" else 1
        self.attempt = 0
        self.km = self._launch()

    def _launch(self) -> AsyncKernelManager:
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        self.attempt += 1
        km = AsyncKernelManager(
            kernel_name=self.kernel_name,
            transport=self.transport,
            connection_file=str(connection_file(self.directory, self.attempt)),
        )
        extra = ["--HistoryManager.hist_file=:memory:"] if km.ipykernel else []
        run_sync(km.start_kernel)(extra_arguments=extra, cwd=self.cwd)
        return km

    def wait(self, timeout: float = 120.0) -> AsyncKernelManager:
        """The kernel's manager once it answers ``kernel_info``; :func:`shutdown_kernel`
        stops it. Raises :class:`KernelStartError` (the kernel is then stopped)."""
        from jupyter_core.utils import run_sync

        while True:
            try:
                run_sync(_wait_ready)(self.km, timeout)
                return self.km
            except RuntimeError as exc:
                died = not run_sync(self.km.is_alive)()
                shutdown_kernel(self.km, now=True)
                if died and self.attempt < self.tries:
                    self.km = self._launch()
                    continue
                raise KernelStartError(
                    f"kernel {self.kernel_name!r} ({self.transport}) "
                    + ("died while starting" if died else f"did not answer in {timeout:.0f} s")
                    + f" (attempt {self.attempt}/{self.tries}): {exc}",
                    hint="see the kernel's own error in the step log; check that the kernel "
                    f"starts with `jupyter console --kernel {self.kernel_name}`",
                ) from exc


def start_kernel(
    kernel_name: str,
    cwd: str,
    directory: Path,
    *,
    transport: Transport | None = None,
    attempts: int = TCP_ATTEMPTS,
    timeout: float = 120.0,
) -> AsyncKernelManager:
    """Start a fresh kernel in ``directory`` and return its manager once it answers
    (:class:`StartingKernel`, then its :meth:`~StartingKernel.wait`)."""
    starting = StartingKernel(kernel_name, cwd, directory, transport=transport, attempts=attempts)
    return starting.wait(timeout)


def shutdown_kernel(km: AsyncKernelManager, *, now: bool = False) -> None:
    """Stop a kernel from :func:`start_kernel` and remove its connection file and sockets.

    ``now`` kills it; otherwise it is asked to shut down (its ``atexit`` handlers run:
    stores close, locks are released) and killed only if it does not exit within
    jupyter_client's ``shutdown_wait_time``. Its exit is noticed within 10 ms
    (jupyter_client's own ``shutdown_kernel`` looks every 100 ms, once per step).
    """
    from jupyter_core.utils import run_sync

    async def stop() -> None:
        if now:
            await km.shutdown_kernel(now=True)
            return
        await km.request_shutdown()
        await km.finish_shutdown(pollinterval=0.01)
        await km.cleanup_resources()

    run_sync(stop)()


async def _wait_ready(km: AsyncKernelManager, timeout: float) -> None:
    """Wait until the kernel answers ``kernel_info``; RuntimeError when it dies first."""
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=timeout)
    finally:
        client.stop_channels()
