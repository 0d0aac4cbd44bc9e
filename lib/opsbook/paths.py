"""Where things are: the project root, whatever the notebook's working directory.

papermill runs notebooks with the project root as working directory, nbval and
JupyterLab with ``notebooks/``. :func:`resolve` finds a project-relative path from either.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def project_root() -> Path:
    """The folder holding ``runbooks/`` and ``notebooks/`` (the cwd or one of its parents)."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "runbooks").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return _PACKAGE_ROOT


def resolve(path: str | Path) -> Path:
    """An absolute path for ``path``: as given if absolute or found from the cwd, else
    relative to :func:`project_root`."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate.resolve()
    return (project_root() / candidate).resolve()
