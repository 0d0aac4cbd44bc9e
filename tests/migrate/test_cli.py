"""The CLI: one library call per command, errors as messages with exit codes."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from opsbook.migrate.cli import cli


def test_plan_run_rollback(demo_store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    work = str(tmp_path / "work")
    args = ["--chroma-path", str(demo_store), "--work-dir", work, "--collection", "release-notes"]
    res = runner.invoke(cli, ["plan", *args])
    assert res.exit_code == 0, res.output
    assert "release-notes" in res.output and "valid" in res.output
    res = runner.invoke(cli, ["run", *args, "--no-backup"])
    assert res.exit_code == 0, res.output
    assert "integrity OK" in res.output and "cutover done" in res.output
    res = runner.invoke(cli, ["rollback", "--work-dir", work])
    assert res.exit_code == 0 and '"alias": "release-notes"' in res.output


def test_errors_become_messages(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli, ["plan", "--chroma-path", str(tmp_path / "nope"), "--work-dir", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "does not exist" in res.output and "hint:" in res.output


def test_unverified_search_refuses_cutover_with_exit_1(demo_store: Path, tmp_path: Path) -> None:
    base = ["run", "--chroma-path", str(demo_store), "--collection", "release-notes"]
    base += ["--no-backup", "--sample-queries", "0"]
    res = CliRunner().invoke(cli, [*base, "--work-dir", str(tmp_path / "a")])
    assert res.exit_code == 1, res.output
    assert "cutover not done" in res.output and "search NOT verified" in res.output
    res = CliRunner().invoke(
        cli, [*base, "--work-dir", str(tmp_path / "b"), "--allow-unverified-search"]
    )
    assert res.exit_code == 0 and "cutover done" in res.output, res.output
