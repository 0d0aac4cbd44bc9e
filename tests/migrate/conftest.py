"""Shared fixtures: a small real Chroma store, and a guard that fails on any ONNX download."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from opsbook.migrate import make_demo_chroma

SMALL_DOCS = 600


@pytest.fixture(autouse=True)
def no_model_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to fetch or run Chroma's default ONNX embedding model fails the test."""
    from chromadb.utils.embedding_functions import onnx_mini_lm_l6_v2 as onnx

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Chroma tried to download/run its ONNX embedding model")

    monkeypatch.setattr(onnx.ONNXMiniLM_L6_V2, "_download_model_if_not_exists", refuse)
    monkeypatch.setattr(onnx.ONNXMiniLM_L6_V2, "__call__", refuse)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only demo store shared by tests (migrations always open a copy)."""
    return make_demo_chroma(tmp_path_factory.mktemp("chroma") / "store", n_docs=SMALL_DOCS)


@pytest.fixture()
def store(demo_store: Path, tmp_path: Path) -> Path:
    """A private copy of the demo store, for tests that change the source on purpose."""
    dest = tmp_path / "chroma"
    shutil.copytree(demo_store, dest)
    return dest


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
