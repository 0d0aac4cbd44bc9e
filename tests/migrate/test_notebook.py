"""The notebook runs live and in rollback mode through papermill, and records its results."""

from __future__ import annotations

from pathlib import Path

import papermill as pm
import pytest

import opsbook
from opsbook.migrate.target import open_target

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "chroma_to_qdrant.ipynb"
ROOT = NOTEBOOK.parents[1]


def _run(tmp_path: Path, name: str, **params: object) -> dict:
    out = tmp_path / f"{name}.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters=params,
        cwd=str(ROOT),
        kernel_name="python3",
        progress_bar=False,
    )
    return opsbook.results(out)


@pytest.mark.notebooks
@pytest.mark.slow
def test_live_run_then_rollback(tmp_path: Path) -> None:
    work = tmp_path / "work"
    common = {"work_dir": str(work), "demo_docs": 500}
    live = _run(tmp_path, "live", dry_run=False, output_dir=str(tmp_path / "live"), **common)
    assert live["integrity_ok"] is True and live["cutover_done"] is True
    assert all(v == 0 for m in live["mismatches"].values() for v in m.values())
    assert all(c["source"] == c["target"] for c in live["counts"].values())
    assert live["search_verified"] is True and live["records_per_s"] > 0
    assert all(s["exact_search_failures"] == 0 for s in live["search"].values())
    assert all(0 < r["chroma"] <= 1 for r in live["recall_at_10"].values())
    assert (tmp_path / "live" / "summary.json").exists()
    back = _run(tmp_path, "rollback", rollback=True, output_dir=str(tmp_path / "rb"), **common)
    assert {r["alias"] for r in back["rolled_back"]} == set(live["staging"])
    with open_target("local", work / "qdrant") as target:
        assert target.aliases() == {}
        assert set(live["staging"].values()) <= set(target.collections())


@pytest.mark.notebooks
def test_failure_is_recorded_then_raised(tmp_path: Path) -> None:
    out = tmp_path / "bad.ipynb"
    with pytest.raises(pm.PapermillExecutionError, match="SourceNotFound"):
        pm.execute_notebook(
            str(NOTEBOOK),
            str(out),
            cwd=str(ROOT),
            kernel_name="python3",
            parameters={"chroma_path": str(tmp_path / "missing")},
            progress_bar=False,
        )
    assert out.exists()
