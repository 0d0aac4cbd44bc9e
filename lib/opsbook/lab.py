"""``make lab``: JupyterLab on ``notebooks/`` that starts for anyone, anywhere.

JupyterLab refuses to run as root without ``--allow-root`` (containers, CI runners),
tries to open a browser even where there is no display, and prints its URL among other
log lines. :func:`lab_command` builds the command line for the current user and machine:

- bound to 127.0.0.1 (a notebook server can run code: never on every interface);
- ``--allow-root`` only when the effective user is root;
- ``--no-browser`` when there is no display (no ``DISPLAY``/``WAYLAND_DISPLAY`` on Linux);
- a fresh token, so the URL printed before JupyterLab starts is the one that works;
- the ``opsbook`` kernel as the default kernel (the notebooks also name it).

``python -m opsbook.lab [NOTEBOOK_DIR] [--port N]`` prints the URL and execs JupyterLab.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from opsbook.errors import ConfigError
from opsbook.paths import project_root

HOST = "127.0.0.1"
KERNEL = "opsbook"


@dataclass
class LabLaunch:
    """The command to exec, the environment to give it and the URL to open."""

    argv: list[str]
    env: dict[str, str]
    url: str
    token: str


def has_display(env: dict[str, str], platform: str = sys.platform) -> bool:
    """Whether a browser could open a window: always on macOS/Windows, else X11/Wayland."""
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def _writable_home(env: dict[str, str]) -> dict[str, str]:
    """Jupyter writes runtime files under $HOME; give users without one a private folder."""
    home = env.get("HOME", "")
    if home and os.access(home, os.W_OK):
        return {}
    scratch = Path(tempfile.gettempdir()) / f"opsbook-lab-{os.geteuid()}"
    scratch.mkdir(mode=0o700, exist_ok=True)
    return {"HOME": str(scratch), "JUPYTER_RUNTIME_DIR": str(scratch / "runtime")}


def lab_command(
    notebook_dir: Path,
    *,
    port: int = 8888,
    euid: int | None = None,
    env: dict[str, str] | None = None,
    token: str | None = None,
    jupyter: str | None = None,
) -> LabLaunch:
    """The JupyterLab command line for this user and machine (see the module docstring).

    >>> lab_command(Path("notebooks"), euid=0, env={}).argv[-3:]  # doctest: +SKIP
    ['--no-browser', '--allow-root', ...]
    """
    env = dict(os.environ if env is None else env)
    euid = os.geteuid() if euid is None else euid
    if not notebook_dir.is_dir():
        raise ConfigError(f"{notebook_dir} is not a folder", hint="pass the notebooks/ folder")
    jupyter = jupyter or jupyter_executable()
    token = token or secrets.token_hex(24)
    argv = [
        jupyter,
        "lab",
        f"--ServerApp.root_dir={notebook_dir.resolve()}",
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--MappingKernelManager.default_kernel_name={KERNEL}",
    ]
    if not has_display(env):
        argv.append("--no-browser")
    if euid == 0:
        argv.append("--allow-root")
    env.update(_writable_home(env))
    # the `opsbook` kernelspec lives in this Python's prefix, JupyterLab maybe in .venv-lab
    kernels = str(Path(sys.prefix) / "share" / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (kernels, env.get("JUPYTER_PATH")) if p)
    # the token is in argv (visible to local users via ps) and in the URL we print; also
    # hand it over in the environment so Jupyter's own banner matches
    env["JUPYTER_TOKEN"] = token
    return LabLaunch(argv, env, f"http://{HOST}:{port}/lab?token={token}", token)


def jupyter_executable() -> str:
    """JupyterLab's ``jupyter``: the project's ``.venv-lab`` (``make lab`` creates it), else
    beside this Python (the ``lab`` extra, conda), else on PATH."""
    candidates = [
        project_root() / ".venv-lab" / "bin" / "jupyter",
        Path(sys.executable).with_name("jupyter"),
    ]
    for candidate in candidates:
        lab = candidate.with_name("jupyter-lab")
        if lab.exists():
            return str(candidate)
    found = shutil.which("jupyter-lab")
    if found is None:
        raise ConfigError(
            "JupyterLab is not installed",
            hint="`make lab` installs it in .venv-lab (or pip install -e '.[lab]', or conda "
            "env create -f environment.yml)",
        )
    return str(Path(found).with_name("jupyter"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m opsbook.lab", description=__doc__)
    parser.add_argument("notebook_dir", nargs="?", default=None, help="default: notebooks/")
    parser.add_argument("--port", type=int, default=int(os.environ.get("OPSBOOK_LAB_PORT", 8888)))
    args = parser.parse_args(argv)
    folder = Path(args.notebook_dir) if args.notebook_dir else project_root() / "notebooks"
    try:
        launch = lab_command(folder, port=args.port)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    print(f"JupyterLab for {folder} (kernel: {KERNEL}); open:\n\n    {launch.url}\n", flush=True)
    os.execve(launch.argv[0], launch.argv, launch.env)


if __name__ == "__main__":
    main()
