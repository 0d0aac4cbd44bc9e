"""`opsbook attach`: a saved notebook, with outputs, sealed beside its action records."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from opsbook import actions, audit
from opsbook.attach import attach, attachments_of
from opsbook.cli import cli
from opsbook.errors import ConfigError


def saved_notebook(path: Path, action_ids: list[str], extra_output: str = "") -> Path:
    """A notebook as JupyterLab saves it after a changing cell announced its records."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("result = migrate(dry_run=False)", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={actions.ACTION_MIME: {"action_id": a, "action": "t"}, "text/plain": a},
        )
        for a in action_ids
    ]
    if extra_output:
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=extra_output))
    nb.cells = [nbformat.v4.new_markdown_cell("# migration"), cell]
    nbformat.write(nb, path)
    return path


def test_attach_seals_the_notebook_and_verify_catches_an_edit(
    audit_dir: Path, tmp_path: Path
) -> None:
    first = actions.record_action("test.change", parameters={}, summary={})
    second = actions.record_action("test.change", parameters={}, summary={})
    nb_path = saved_notebook(tmp_path / "migration.ipynb", [first, second])
    record_id = attach(nb_path)
    folder, data = audit.load_run(audit_dir, record_id)
    assert data["kind"] == "attachment"
    assert data["actions"] == [first, second]
    assert data["notebook"]["sha256_as_saved"] == audit.sha256_file(nb_path)
    assert (folder / "notebook.ipynb").read_bytes() == nb_path.read_bytes()
    assert set(data["artifacts"]) == {"notebook.ipynb", "report.html", "full.html"}
    assert "migration" in (folder / "report.html").read_text()
    assert attachments_of(audit_dir, first) == [record_id]
    assert audit.verify(audit_dir) == []
    sealed = folder / "notebook.ipynb"
    sealed.chmod(0o644)
    sealed.write_text(sealed.read_text().replace("migrate(dry_run=False)", "print('hi')"))
    assert audit.verify(audit_dir) == [
        f"record {record_id}: notebook.ipynb modified (sha256 differs)"
    ]


def test_attach_finds_actions_by_origin_when_outputs_were_cleared(
    audit_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb_path = saved_notebook(tmp_path / "nb.ipynb", [])
    origin = {"kind": "kernel", "kernel_id": "k", "notebook": str(nb_path)}
    monkeypatch.setattr(actions, "_kernel_origin", lambda: origin)
    monkeypatch.setattr(actions, "_announce", lambda data, where: None)
    action_id = actions.record_action("test.change", parameters={}, summary={})
    other = tmp_path / "other.ipynb"
    monkeypatch.setattr(actions, "_kernel_origin", lambda: dict(origin, notebook=str(other)))
    actions.record_action("test.change", parameters={}, summary={})
    _, data = audit.load_run(audit_dir, attach(nb_path))
    assert data["actions"] == [action_id]


def test_attach_without_actions_is_a_clear_error(audit_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="produced no action record"):
        attach(saved_notebook(tmp_path / "nb.ipynb", []))
    assert audit.list_runs(audit_dir) == []


def test_attach_refuses_a_run_record(audit_dir: Path, tmp_path: Path) -> None:
    run_id, folder = audit.new_record(audit_dir, "some-runbook")
    audit.seal(audit_dir, folder, {"run_id": run_id, "status": "succeeded"}, [])
    with pytest.raises(ConfigError, match="not an action"):
        attach(saved_notebook(tmp_path / "nb.ipynb", [run_id]))


def test_secrets_in_outputs_are_scrubbed_from_the_sealed_copy(
    audit_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QDRANT_API_KEY", "qk-secret-4242")
    action_id = actions.record_action("test.change", parameters={}, summary={})
    nb_path = saved_notebook(tmp_path / "nb.ipynb", [action_id], "key is qk-secret-4242\n")
    folder, _ = audit.load_run(audit_dir, attach(nb_path))
    for path in folder.rglob("*"):
        if path.is_file():
            assert b"qk-secret-4242" not in path.read_bytes(), path.name
    assert audit.verify(audit_dir) == []


def test_cli_attach_then_show(audit_dir: Path, tmp_path: Path) -> None:
    action_id = actions.record_action("test.change", parameters={}, summary={"moved": 1})
    nb_path = saved_notebook(tmp_path / "nb.ipynb", [action_id])
    out = CliRunner().invoke(cli, ["attach", str(nb_path)])
    assert out.exit_code == 0, out.output
    [attachment] = [r for r in audit.list_runs(audit_dir) if r.get("kind") == "attachment"]
    shown = CliRunner().invoke(cli, ["show", action_id])
    assert shown.exit_code == 0
    assert f"notebook attached: {attachment['run_id']}" in shown.output
    missing = CliRunner().invoke(cli, ["attach", str(tmp_path / "nope.ipynb")])
    assert missing.exit_code == 2
