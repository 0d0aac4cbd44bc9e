"""opsbook.record / opsbook.results."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest

import opsbook
from opsbook.errors import ConfigError
from opsbook.record import MIME_TYPE, local_results


def test_record_outside_kernel_keeps_value() -> None:
    opsbook.record("answer", np.int64(42))
    assert local_results()["answer"] == 42
    opsbook.record("ratio", np.float32(0.5))
    opsbook.record("nan", float("nan"))
    assert local_results()["ratio"] == 0.5 and local_results()["nan"] is None


@pytest.mark.parametrize("bad", ["", "has space", "dash-name"])
def test_record_rejects_bad_names(bad: str) -> None:
    with pytest.raises(ConfigError):
        opsbook.record(bad, 1)


def test_record_rejects_unserialisable() -> None:
    with pytest.raises(ConfigError, match="cannot record"):
        opsbook.record("obj", object())


def test_results_reads_last_value(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    out = lambda v: nbformat.v4.new_output(  # noqa: E731
        "display_data", data={MIME_TYPE: {"name": "n", "value": v}, "text/plain": "n"}
    )
    nb.cells = [
        nbformat.v4.new_code_cell("x", outputs=[out(1)]),
        nbformat.v4.new_code_cell("y", outputs=[out([1, 2])]),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert opsbook.results(path) == {"n": [1, 2]}
    with pytest.raises(ConfigError, match="no notebook"):
        opsbook.results(tmp_path / "missing.ipynb")
