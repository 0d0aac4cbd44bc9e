"""Helpers shared by the archive tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

MakeRepo = Callable[..., Path]


def git_out(repo: Path, *args: str) -> str:
    """stdout of a git command run in ``repo`` (tests only ever touch tmp repos)."""
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def snapshot(repo: Path) -> dict[str, bytes]:
    """Every file under ``repo`` (excluding .git) -> bytes: to prove nothing changed."""
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }
