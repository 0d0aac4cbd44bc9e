"""``make lab``: the command line per user and machine, and the real server for root and
for an ordinary user (start, reach /api/status, stop)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from opsbook.errors import ConfigError
from opsbook.lab import HOST, has_display, jupyter_executable, lab_command

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _argv(euid: int, env: dict[str, str]) -> list[str]:
    return lab_command(NOTEBOOKS, euid=euid, env=env, jupyter="jupyter", token="t" * 8).argv


def test_allow_root_only_for_root() -> None:
    assert "--allow-root" in _argv(0, {})
    assert "--allow-root" not in _argv(1000, {})


def test_no_browser_without_display() -> None:
    assert "--no-browser" in _argv(1000, {"HOME": "/tmp"})
    assert "--no-browser" not in _argv(1000, {"DISPLAY": ":0", "HOME": "/tmp"})
    assert "--no-browser" not in _argv(1000, {"WAYLAND_DISPLAY": "wayland-0", "HOME": "/tmp"})
    assert has_display({}, platform="darwin") is True


def test_bound_to_localhost_with_the_printed_token_and_opsbook_kernel() -> None:
    launch = lab_command(NOTEBOOKS, euid=1000, env={}, jupyter="jupyter", port=9123, token="abc1")
    assert "--ServerApp.ip=127.0.0.1" in launch.argv
    assert "--ServerApp.port=9123" in launch.argv
    assert "--IdentityProvider.token=abc1" in launch.argv
    assert "--MappingKernelManager.default_kernel_name=opsbook" in launch.argv
    assert launch.url == "http://127.0.0.1:9123/lab?token=abc1"


def test_home_that_cannot_be_written_gets_a_private_one() -> None:
    env = lab_command(NOTEBOOKS, euid=1000, env={"HOME": "/nonexistent"}, jupyter="jupyter").env
    assert env["HOME"] != "/nonexistent"
    assert Path(env["HOME"]).is_dir()


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a folder"):
        lab_command(tmp_path / "nope", euid=1000, env={}, jupyter="jupyter")


def test_notebooks_name_the_opsbook_kernel() -> None:
    import json

    for path in NOTEBOOKS.glob("*.ipynb"):
        spec = json.loads(path.read_text(encoding="utf-8"))["metadata"]["kernelspec"]
        assert spec["name"] == "opsbook", path.name


# ------------------------------------------------------------------- the real server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _start(prefix: list[str], port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.Popen(
        [*prefix, "make", "--no-print-directory", "-C", str(ROOT), "lab", f"LAB_PORT={port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def _wait_for_status(proc: subprocess.Popen[str]) -> tuple[str, dict, dict]:
    """Read the printed URL, then poll /api/status until the server answers."""
    assert proc.stdout is not None
    lines: list[str] = []
    url = None
    for line in proc.stdout:
        lines.append(line)
        found = re.search(r"(http://127\.0\.0\.1:\d+)/lab\?token=(\w+)", line)
        if found:
            url = found.group(0)
            base, token = found.group(1), found.group(2)
            break
    assert url is not None, "make lab printed no URL:\n" + "".join(lines)
    headers = {"Authorization": f"token {token}"}
    for _ in range(600):
        if proc.poll() is not None:
            pytest.fail(f"make lab exited with {proc.returncode}:\n" + "".join(lines))
        try:
            status = requests.get(f"{base}/api/status", headers=headers, timeout=2)
            if status.status_code == 200:
                specs = requests.get(f"{base}/api/kernelspecs", headers=headers, timeout=5)
                return url, status.json(), specs.json()
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail("JupyterLab did not answer /api/status within 120 s")


def _stop(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _hidden_ancestor(path: Path) -> Path | None:
    """The first folder on ``path`` that other users cannot enter (e.g. /root)."""
    for folder in reversed(path.parents):
        if folder != Path("/") and not folder.stat().st_mode & 0o001:
            return folder
    return None


def _user_prefix(who: str, scratch: Path) -> list[str]:
    """Run as ``nobody``. Where the venv's interpreter lives under a folder only root can
    enter (pyenv in /root here), show nobody just that interpreter tree, in a private
    mount namespace: nothing on the machine changes."""
    if who == "current":
        return []
    if os.geteuid() != 0:
        pytest.skip("already an ordinary user: the 'current' case is the non-root test")
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("runuser is not installed: cannot switch to an ordinary user")
    checkout = _hidden_ancestor(ROOT / "Makefile")
    if checkout is not None:
        pytest.skip(f"the checkout is under {checkout}, which nobody cannot enter")
    interpreter = Path(os.path.realpath(ROOT / ".venv" / "bin" / "python"))
    hidden = _hidden_ancestor(interpreter)
    if hidden is None:
        return [runuser, "-u", "nobody", "--"]
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip(f"nobody cannot reach the interpreter under {hidden} and unshare is missing")
    child = hidden / interpreter.relative_to(hidden).parts[0]
    view = scratch / "view"
    (view / child.name).mkdir(parents=True)
    view.chmod(0o711)
    script = (
        f"mount --make-rprivate / && mount --bind {child} {view / child.name} && "
        f'mount --rbind {view} {hidden} && exec {runuser} -u nobody -- "$@"'
    )
    probe = subprocess.run(
        [unshare, "-m", "sh", "-c", script, "sh", str(interpreter), "-c", "pass"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot reach the interpreter under {hidden}: {probe.stderr[-300:]}")
    return [unshare, "-m", "sh", "-c", script, "sh"]


@pytest.mark.slow
@pytest.mark.parametrize("who", ["current", "nobody"])
def test_make_lab_serves_on_localhost(who: str, tmp_path: Path) -> None:
    try:
        jupyter_executable()
    except ConfigError:
        pytest.skip("JupyterLab is not installed (`make lab` / `make test` put it in .venv-lab)")
    prefix = _user_prefix(who, tmp_path)
    port = free_port()
    proc = _start(prefix, port)
    try:
        url, status, specs = _wait_for_status(proc)
    finally:
        _stop(proc)
    assert url.startswith(f"http://127.0.0.1:{port}/lab?token=")
    assert "started" in status
    assert specs["default"] == "opsbook"
    assert "opsbook" in specs["kernelspecs"]
    assert proc.returncode is not None
