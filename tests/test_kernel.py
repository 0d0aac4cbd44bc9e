"""A step's kernel starts without racing anyone for an address (opsbook.kernel)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from jupyter_client.manager import AsyncKernelManager

from opsbook import kernel
from opsbook.execute import default_kernel

pytestmark = pytest.mark.notebooks


@pytest.fixture
def kernel_dirs() -> Iterator[list[Path]]:
    """Short private directories (a pytest tmp_path can be too long for a socket path)."""
    dirs = [Path(tempfile.mkdtemp(prefix="opsbook-test-")) for _ in range(2)]
    yield dirs
    for directory in dirs:
        shutil.rmtree(directory, ignore_errors=True)


def test_kernels_started_side_by_side_listen_on_private_unix_sockets(
    kernel_dirs: list[Path],
) -> None:
    """Each kernel's five channels are Unix sockets in its own directory: no TCP port is
    chosen for them, so none can be taken before the kernel binds it. (ipykernel's own
    IOPub pipe for forked subprocesses is a TCP port it binds atomically itself.)"""
    managers = [kernel.start_kernel(default_kernel(), os.getcwd(), d) for d in kernel_dirs]
    try:
        for km, directory in zip(managers, kernel_dirs, strict=True):
            info = km.get_connection_info()
            assert info["transport"] == "ipc"
            assert Path(str(info["ip"])).parent == directory
            pid = km.provisioner.pid  # type: ignore[union-attr]
            listening = {c.laddr for c in psutil.Process(pid).net_connections(kind="unix")}
            assert {f"{info['ip']}-{port}" for port in range(1, 6)} <= listening
        assert sorted(os.listdir(kernel_dirs[0])) == [
            "kernel-1-ipc-1",
            "kernel-1-ipc-2",
            "kernel-1-ipc-3",
            "kernel-1-ipc-4",
            "kernel-1-ipc-5",
            "kernel-1.json",
        ]
    finally:
        for km in managers:
            kernel.shutdown_kernel(km)
    assert [os.listdir(d) for d in kernel_dirs] == [[], []]  # sockets and files removed


def test_a_tcp_port_taken_between_choice_and_bind_kills_the_kernel_then_a_retry_succeeds(
    kernel_dirs: list[Path], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The race, made deterministic: right after jupyter_client has chosen the first
    kernel's ports (bind to 0, close), another socket takes the shell port, as another
    kernel or any process may do at that moment. Over TCP (where ipc is unavailable) the
    kernel dies, and is started again on fresh ports."""
    taken: list[socket.socket] = []
    chosen: list[int] = []
    original = AsyncKernelManager.write_connection_file

    def write_then_take_shell_port(self: AsyncKernelManager, **kwargs: object) -> None:
        original(self, **kwargs)
        chosen.append(self.shell_port)
        if len(chosen) == 1:
            thief = socket.socket()
            thief.bind((self.ip, self.shell_port))
            thief.listen()
            taken.append(thief)

    monkeypatch.setattr(AsyncKernelManager, "write_connection_file", write_then_take_shell_port)
    try:
        km = kernel.start_kernel(default_kernel(), os.getcwd(), kernel_dirs[0], transport="tcp")
    finally:
        for thief in taken:
            thief.close()
    try:
        assert "Address already in use" in capfd.readouterr().err  # the first kernel's error
        assert psutil.Process(km.provisioner.pid).is_running()  # type: ignore[union-attr]
        assert km.get_connection_info()["transport"] == "tcp"
        assert len(chosen) == 2 and km.shell_port == chosen[1] != chosen[0]
    finally:
        kernel.shutdown_kernel(km, now=True)
