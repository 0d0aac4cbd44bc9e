"""``opsbook archive`` commands."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from opsbook.archive import DEMO_NOW, apply_archive, classify, inventory, plan_archive
from opsbook.archive.cli import cli

from .helpers import git_out


def test_fixture_then_audit_json(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["fixture", str(tmp_path / "acme")])
    assert made.exit_code == 0, made.output
    out = runner.invoke(cli, ["audit", str(tmp_path / "acme"), "--now", "2026-11-20", "--as-json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert summary["apps_before"] == 14 and summary["blocked"] == {"legacy-auth": ["web"]}


def test_restore_command(demo: Path) -> None:
    apply_archive(plan_archive(classify(inventory(demo, now=DEMO_NOW))))
    out = CliRunner().invoke(cli, ["restore", str(demo), "status-page"])
    assert out.exit_code == 0, out.output
    assert (demo / "apps/status-page/Procfile").is_file()
    assert git_out(demo, "log", "-1", "--format=%s").startswith("archive: restore status-page")


def test_errors_exit_with_config_code_and_hint(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["audit", str(tmp_path)])
    assert out.exit_code == 2
    assert "not a git repository" in out.output


def test_fixture_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("keep me")
    out = CliRunner().invoke(cli, ["fixture", str(tmp_path / "x")])
    assert out.exit_code == 2 and "not empty" in out.output
    assert (tmp_path / "x" / "file").read_text() == "keep me"
