"""The audit notebook and runbook: defaults, apply + restore, verify-only, validation."""

from __future__ import annotations

from pathlib import Path

import papermill as pm
import pytest

import opsbook
from opsbook import runbook
from opsbook.archive import make_demo_monorepo

from .helpers import git_out

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "archive_audit.ipynb"
RUNBOOK = ROOT / "runbooks" / "archive-experimental-apps.yaml"

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


def _run(tmp_path: Path, name: str, **params: object) -> dict[str, object]:
    out = tmp_path / f"{name}.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters=params,
        cwd=str(ROOT),
        progress_bar=False,
        kernel_name="python3",
    )
    return opsbook.results(out)


def test_defaults_audit_the_generated_demo_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel makes the demo repo in here
    rec = _run(tmp_path, "defaults", output_dir=str(tmp_path / "art"))
    assert (rec["apps_before"], rec["apps_after"], rec["active_after"]) == (14, 8, 7)
    assert rec["blocked"] == {"legacy-auth": ["web"]}
    assert len(rec["candidates"]) == 6  # type: ignore[arg-type]
    assert rec["archived"] == [] and rec["commit_sha"] is None and rec["verify_ok"] is None
    assert rec["monthly_saving_usd"] == 115.0
    assert {p.name for p in (tmp_path / "art").iterdir()} >= {
        "inventory.csv",
        "classification.csv",
        "archive-README.md",
        "dependencies.png",
    }
    demo_repo = Path(str(rec["repo_path"]))
    assert tmp_path in demo_repo.parents
    assert git_out(demo_repo, "log", "-1", "--format=%s").startswith("fix(")


def test_apply_then_verify_only_then_restore(tmp_path: Path) -> None:
    repo = make_demo_monorepo(tmp_path / "repo")
    common = {"repo_path": str(repo), "now": "2026-11-20"}
    applied = _run(tmp_path, "apply", apply=True, **common)
    assert applied["verify_ok"] is True
    assert applied["apps_after"] == 8
    assert applied["bytes_freed"] == applied["bytes_reclaimable"]
    assert applied["commit_sha"] == git_out(repo, "rev-parse", "HEAD").strip()
    verified = _run(
        tmp_path, "verify", verify_only=True, archive_dir=applied["archive_path"], **common
    )
    assert verified["verify_ok"] is True
    assert verified["archived"] == applied["archived"]
    restored = _run(tmp_path, "restore", restore_app="flan-router", **common)
    assert restored["restored"] == "flan-router"
    assert (repo / "apps/flan-router/fly.toml").is_file()


def test_runbook_validates_against_the_notebook() -> None:
    loaded = runbook.load(RUNBOOK)
    assert runbook.validate(loaded) == []
    steps = {s.id: s for s in loaded.runbook.steps}
    assert steps["apply"].parameters["apply"] is True
    assert steps["audit"].parameters["apply"] is False
    assert steps["approve"].gate == "approval"
    assert "steps.audit.outputs.candidates" in steps["apply"].parameters["candidates"]
