"""All-or-nothing changes to one repository's working tree.

Every rename and created file is logged; on any error :meth:`Transaction.rollback` undoes
the renames in reverse, resets the index and tracked files to the starting commit (the
tree was clean, so nothing of the user's is lost) and removes the files it created. It
only ever touches paths inside the repository it was opened on.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import TracebackType

from opsbook.archive.errors import ApplyFailed
from opsbook.archive.gitutil import git, git_dir, head_sha, require_writable


class Transaction:
    """Context manager: changes inside either all land or none do."""

    def __init__(self, repo: Path, what: str) -> None:
        self.repo = repo
        self.what = what
        self.head = require_writable(repo)
        self.renames: list[tuple[Path, Path]] = []
        self.created: list[Path] = []
        self.created_dirs: list[Path] = []
        self.trash = git_dir(repo) / f"opsbook-trash-{os.getpid()}-{time.time_ns()}"
        self.pruned: list[tuple[Path, Path]] = []

    def _inside(self, path: Path, root_ok: bool = False) -> Path:
        """``path`` with its folder resolved; refused outside the repository or in .git
        (the repository root itself only when ``root_ok``: the folder of a top-level file)."""
        path = path if path.is_absolute() else self.repo / path
        resolved = path.parent.resolve() / path.name
        if root_ok and resolved == self.repo:
            return resolved
        if self.repo not in resolved.parents or ".git" in resolved.relative_to(self.repo).parts:
            raise ApplyFailed(f"refusing to touch {path}: outside the working tree of {self.repo}")
        return resolved

    def makedirs(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents, remembering which ones were new."""
        folder = self._inside(folder, root_ok=True)
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for d in reversed(missing):
            d.mkdir()
            self.created_dirs.append(d)

    def rename(self, src: Path, dst: Path) -> None:
        """Move ``src`` to ``dst`` (same filesystem: atomic per folder)."""
        src, dst = self._inside(src), self._inside(dst)
        self.makedirs(dst.parent)
        os.rename(src, dst)
        self.renames.append((src, dst))

    def write(self, path: Path, text: str) -> None:
        """Write a file the transaction created (removed again on rollback)."""
        path = self._inside(path)
        self.makedirs(path.parent)
        if not path.exists():
            self.created.append(path)
        path.write_text(text, encoding="utf-8")

    def prune(self, folder: Path) -> None:
        """Set an untracked dependency folder aside; deleted on commit, restored on rollback."""
        folder = self._inside(folder)
        self.trash.mkdir(exist_ok=True)
        parked = self.trash / str(len(self.pruned))
        os.rename(folder, parked)
        self.pruned.append((folder, parked))

    def rollback(self) -> None:
        """Put the tree back exactly where it was when the transaction began."""
        if head_sha(self.repo) != self.head:
            git(self.repo, ["reset", "-q", "--soft", self.head], check=False)
        for src, dst in reversed(self.renames):
            if dst.exists() and not src.exists():
                src.parent.mkdir(parents=True, exist_ok=True)
                os.rename(dst, src)
        git(self.repo, ["reset", "-q", "--hard", self.head], check=False)
        for path in self.created:
            if path.is_file():
                path.unlink()
        for folder in reversed(self.created_dirs):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        for original, parked in reversed(self.pruned):
            if parked.exists() and not original.exists():
                original.parent.mkdir(parents=True, exist_ok=True)
                os.rename(parked, original)
        shutil.rmtree(self.trash, ignore_errors=True)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            shutil.rmtree(self.trash, ignore_errors=True)
            return False
        self.rollback()
        if isinstance(exc, ApplyFailed) or not isinstance(exc, Exception):
            return False  # ours already, or Ctrl-C / SystemExit: re-raise as is
        stderr = getattr(exc, "stderr", None)
        detail = stderr.decode(errors="replace").strip() if isinstance(stderr, bytes) else ""
        detail = detail or str(exc)
        raise ApplyFailed(
            f"{self.what} failed and was rolled back, the tree is as before: {detail}",
            hint="fix the cause above (e.g. a failing git hook or missing git identity) and run "
            "again",
        ) from exc
