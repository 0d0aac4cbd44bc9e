"""The repository itself: notebooks stored clean, runbooks valid, README in step with them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from opsbook import runbook as rb

ROOT = Path(__file__).resolve().parents[1]


def committed_notebooks() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "*.ipynb"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        # tests/fixtures holds executed records (with outputs) whose bytes are hashed
        found = [ROOT / p for p in out if not p.startswith("tests/fixtures/")]
    except (OSError, subprocess.CalledProcessError):
        found = []
    return sorted(set(found) | set((ROOT / "notebooks").glob("*.ipynb")))


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda p: p.name)
def test_notebook_stored_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} have outputs; strip them (nbstripout)"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"


def test_there_are_notebooks_and_runbooks() -> None:
    assert len(list((ROOT / "notebooks").glob("*.ipynb"))) >= 4
    assert len(rb.discover(ROOT)) >= 5


@pytest.mark.parametrize("path", rb.discover(ROOT), ids=lambda p: p.name)
def test_runbook_validates_and_is_documented(path: Path) -> None:
    loaded = rb.load(path)
    assert rb.validate(loaded) == []
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(
        rf"^### `runbooks/{re.escape(path.name)}`$(.*?)(?=^### |^## |\Z)", readme, re.M | re.S
    )
    assert section, f"README has no '### `runbooks/{path.name}`' section"
    for name in loaded.runbook.parameters:
        assert f"`{name}`" in section.group(1), f"README does not document {path.name}:{name}"
    for secret in loaded.runbook.secrets:
        assert f"`{secret.env}`" in section.group(1)


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme[:1500]
    assert "make demo" in head and "make test" in head


def test_ci_calls_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_environment_yml_mirrors_pyproject() -> None:
    env = (ROOT / "environment.yml").read_text()
    assert "python=3.11" in env and "-e .[" in env
