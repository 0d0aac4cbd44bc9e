"""Containment of every path the archive reads from a manifest, a config or a parameter.

A manifest (``archive.json``) is committed data that anyone with push access can edit, so
restore treats its paths as untrusted: each one is checked here *before* any file is
opened. A path is accepted only when it is relative, has no ``..`` part, does not enter
``.git``, and still lies inside the repository once every symlink on the way is resolved.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from opsbook.archive.errors import UnsafePath


def _refuse(what: str, value: object, why: str) -> UnsafePath:
    return UnsafePath(
        f"{what} {value!r} {why}; refused, nothing was touched",
        hint="every path must be relative to the repository root and stay inside it "
        "(no absolute path, no '..', no symlink leading out, nothing under .git)",
    )


def contained(repo: Path, rel: object, what: str = "path") -> Path:
    """``repo / rel`` after checking that it stays inside ``repo`` (``repo`` is resolved).

    ``what`` names the value in the error ("archive.json edits[0].file").

    >>> contained(Path("/srv/repo"), "apps/web")  # doctest: +SKIP
    PosixPath('/srv/repo/apps/web')
    """
    if not isinstance(rel, str) or not rel.strip():
        raise _refuse(what, rel, "is not a non-empty relative path")
    text = rel.replace("\\", "/")
    pure = PurePosixPath(text)
    if pure.is_absolute() or os.path.isabs(rel) or (len(text) > 1 and text[1] == ":"):
        raise _refuse(what, rel, "is an absolute path")
    if ".." in pure.parts:
        raise _refuse(what, rel, "climbs out with '..'")
    if ".git" in pure.parts:
        raise _refuse(what, rel, "points into .git")
    full = repo.joinpath(*pure.parts)
    resolved = full.resolve()
    if resolved != repo and repo not in resolved.parents:
        raise _refuse(what, rel, f"resolves (through a symlink) to {resolved}, outside {repo}")
    if ".git" in resolved.relative_to(repo).parts:
        raise _refuse(what, rel, "resolves (through a symlink) into .git")
    return full


def is_within(path: str, folder: str) -> bool:
    """True when the relative ``path`` is ``folder`` or lies under it (both normalised)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")
