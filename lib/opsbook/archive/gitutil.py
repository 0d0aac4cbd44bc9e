"""Thin helpers around the git CLI, always scoped to one repository with ``git -C``."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from opsbook.archive.errors import DetachedHead, DirtyWorkingTree, NotAGitRepo

_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env["LC_ALL"] = "C"
    if extra:
        env.update(extra)
    return env


def git(
    repo: Path,
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git -C repo args`` and return the completed process (stdout as bytes)."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        env=_env(env),
        input=input_bytes,
        check=False,
    )
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc


def git_background(repo: Path, args: Sequence[str]) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """Start ``git -C repo args`` writing to a temp file, so it runs while we do other work.

    A pipe would stall git once its 64 KiB buffer fills; a file lets it finish. Call
    :func:`collect` for the output.
    """
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by collect()
    proc = subprocess.Popen(
        ["git", "-C", str(repo), *args], stdout=out, stderr=subprocess.DEVNULL, env=_env()
    )
    return proc, out


def collect(started: tuple[subprocess.Popen[bytes], IO[bytes]]) -> bytes | None:
    """Wait for a :func:`git_background` command; its stdout, or None if it failed."""
    proc, out = started
    with out:
        if proc.wait() != 0:
            return None
        out.seek(0)
        return out.read()


def git_text(repo: Path, args: Sequence[str], **kwargs: object) -> str:
    """Run git and return stripped stdout as text."""
    return git(repo, args, **kwargs).stdout.decode("utf-8", "replace").strip()  # type: ignore[arg-type]


def repo_root(path: str | Path) -> Path:
    """Resolve ``path`` and check it is the top of a git working tree.

    Requiring the top level (not any folder inside a repo) keeps every write scoped to the
    repository the caller named, never to an enclosing one.
    """
    p = Path(path).expanduser()
    if not str(path) or not p.is_dir():
        raise NotAGitRepo(
            f"repo_path {str(path)!r} is not a directory",
            hint="pass the root folder of a git repository (or '' for the demo fixture)",
        )
    p = p.resolve()
    proc = git(p, ["rev-parse", "--show-toplevel"], check=False)
    if proc.returncode != 0:
        raise NotAGitRepo(
            f"{p} is not a git repository",
            hint="run the audit on a git checkout (git init / git clone) so history can be read",
        )
    top = Path(proc.stdout.decode().strip()).resolve()
    if top != p:
        raise NotAGitRepo(
            f"{p} is inside the git repository {top} but is not its root",
            hint=f"pass repo_path={str(top)!r}",
        )
    return p


def head_sha(repo: Path) -> str | None:
    """The commit HEAD points at, or None in a repository without commits."""
    proc = git(repo, ["rev-parse", "--verify", "-q", "HEAD"], check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip() or None


def git_dir(repo: Path) -> Path:
    """The repository's git directory (``.git`` may be a file in worktrees)."""
    return Path(git_text(repo, ["rev-parse", "--absolute-git-dir"]))


def current_branch(repo: Path) -> str | None:
    """The checked-out branch name, or None when HEAD is detached."""
    proc = git(repo, ["symbolic-ref", "-q", "--short", "HEAD"], check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def dirty_paths(repo: Path) -> list[str]:
    """Paths with staged, unstaged or untracked (not ignored) changes."""
    out = git(repo, ["status", "--porcelain=v1", "-z", "--untracked-files=normal"]).stdout
    return [entry[3:].decode("utf-8", "replace") for entry in out.split(b"\0") if entry[3:]]


def require_writable(repo: Path) -> str:
    """Refuse to write unless HEAD is a branch with a commit and the tree is clean.

    Returns the HEAD commit, the point a failed apply returns to.
    """
    if current_branch(repo) is None:
        raise DetachedHead(
            f"HEAD is detached in {repo}",
            hint="check out a branch first (git switch -c archive-apps) so the archive commit "
            "lands on it",
        )
    sha = head_sha(repo)
    if sha is None:
        raise DetachedHead(f"{repo} has no commits yet", hint="commit the apps before archiving")
    dirty = dirty_paths(repo)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise DirtyWorkingTree(
            f"the working tree of {repo} has uncommitted changes: {shown}",
            hint="commit or stash them (git stash -u), then run again; nothing was changed",
        )
    return sha


def tracked_files(repo: Path, pathspecs: Sequence[str]) -> list[str]:
    """Tracked files under the given pathspecs (index view)."""
    out = git(repo, ["ls-files", "-z", "--", *pathspecs]).stdout
    return [p.decode("utf-8", "replace") for p in out.split(b"\0") if p]
