"""Fixtures for the archive tests: the demo monorepo (built once, copied per test) and a
builder for small hand-written repositories."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from opsbook.archive.fixture import AUTHORS, DEMO_NOW, Commit, fast_import, make_demo_monorepo

from .helpers import MakeRepo


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_monorepo(tmp_path_factory.mktemp("demo-template") / "repo")


@pytest.fixture
def demo(demo_template: Path, tmp_path: Path) -> Path:
    """A private copy of the demo monorepo (git history, untracked node_modules and all)."""
    dst = tmp_path / "demo"
    shutil.copytree(demo_template, dst, symlinks=True)
    return dst


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """Build a repo from ``{path: text}``; ``ages`` maps a path to its commit age in days."""
    counter = iter(range(1000))

    def build(files: dict[str, str], ages: dict[str, int] | None = None) -> Path:
        repo = tmp_path / f"repo{next(counter)}"
        ages = ages or {}
        commits = []
        for i, (path, text) in enumerate(sorted(files.items())):
            when = DEMO_NOW - timedelta(days=ages.get(path, 1), minutes=i)
            commits.append(Commit(when, AUTHORS[i % 3], f"add {path}", {path: text.encode()}))
        fast_import(repo, commits)
        return repo

    return build
