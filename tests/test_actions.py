"""Action records: one sealed record per changing call, in the runner's ledger, with who,
when, parameters (secrets redacted in every encoding), what changed and where from."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import make_notebook
from opsbook import actions, audit, execute
from opsbook.action_kinds import SPECS
from opsbook.actions import ActionSpec, record_action, recorded
from opsbook.errors import ApprovalRequired


def action_records(root: Path) -> list[dict]:
    """Action records in ledger order."""
    order = {e["run_id"]: e["seq"] for e in audit.read_ledger(root)}
    found = [r for r in audit.list_runs(root) if r.get("kind") == "action"]
    return sorted(found, key=lambda r: order.get(r["run_id"], 0))


def test_record_is_sealed_in_the_ledger_with_every_field(audit_dir: Path) -> None:
    action_id = record_action(
        "test.change", parameters={"n": 1}, summary={"changed": 2}, target="/srv/x"
    )
    [data] = action_records(audit_dir)
    assert data["run_id"] == action_id
    assert data["action"] == "test.change"
    assert data["status"] == "succeeded"
    assert data["user"] == audit.whoami()
    assert data["parameters"] == {"n": 1} and data["summary"] == {"changed": 2}
    assert data["target"] == "/srv/x"
    assert data["origin"]["kind"] == "python"
    assert data["started_at"] and data["ended_at"]
    assert [e["run_id"] for e in audit.read_ledger(audit_dir)] == [action_id]
    assert audit.verify(audit_dir) == []
    assert (audit_dir / action_id / "index.html").exists()


def test_an_edited_action_record_fails_verification(audit_dir: Path) -> None:
    action_id = record_action("test.change", parameters={}, summary={"moved": 1})
    run_json = audit_dir / action_id / "run.json"
    run_json.chmod(0o644)
    run_json.write_text(run_json.read_text().replace('"moved": 1', '"moved": 0'))
    assert audit.verify(audit_dir) == [f"record {action_id}: run.json was modified after sealing"]


def test_no_secret_in_any_encoding(audit_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "qk-7f3a9c1e5b2d"
    password = "pa55-w0rd~xyz"
    monkeypatch.setenv("QDRANT_API_KEY", key)
    url = f"https://admin:{password}@qdrant.internal:6333"
    basic = base64.b64encode(f"admin:{password}".encode()).decode()
    action_id = record_action(
        "test.change",
        parameters={"qdrant_url": url, "header": f"Authorization: Basic {basic}"},
        summary={"echo": f"key={key} quoted={quote(key, safe='')} b64={basic}"},
        target=url,
    )
    folder = audit_dir / action_id
    blobs = [p.read_bytes() for p in folder.rglob("*") if p.is_file()]
    blobs.append((audit_dir / "ledger.jsonl").read_bytes())
    forms = [key, password, quote(password, safe=""), basic.rstrip("=")]
    forms.append(base64.b64encode(key.encode()).decode().rstrip("="))
    leaks = [form for form in forms for blob in blobs if form.encode() in blob]
    assert leaks == []
    assert audit.verify(audit_dir) == []


_calls: list[int] = []


@recorded("test.decorated")
def _change(n: int, dry_run: bool = False) -> int:
    _calls.append(n)
    if n < 0:
        raise ValueError("negative")
    return n


@pytest.fixture
def decorated_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ActionSpec(
        name="test.decorated",
        params=lambda a: {"n": a["n"]},
        summary=lambda r, a: {"result": r},
        target=lambda a: "https://prod.example.com" if a["n"] >= 100 else "local",
        skip=lambda a: a["dry_run"],
        changed=lambda r: r != 0,
    )
    monkeypatch.setitem(SPECS, "test.decorated", spec)
    _calls.clear()


@pytest.mark.usefixtures("decorated_spec")
def test_dry_run_and_no_op_write_nothing(audit_dir: Path) -> None:
    assert _change(5, dry_run=True) == 5
    assert _change(0) == 0
    assert action_records(audit_dir) == []
    assert _calls == [5, 0]


@pytest.mark.usefixtures("decorated_spec")
def test_each_change_writes_exactly_one_record(audit_dir: Path) -> None:
    _change(3)
    _change(4)
    assert [r["summary"] for r in action_records(audit_dir)] == [{"result": 3}, {"result": 4}]


@pytest.mark.usefixtures("decorated_spec")
def test_a_failed_change_is_recorded_as_failed(audit_dir: Path) -> None:
    with pytest.raises(ValueError, match="negative"):
        _change(-1)
    [data] = action_records(audit_dir)
    assert data["status"] == "failed"
    assert data["error"] == {"ename": "ValueError", "evalue": "negative"}


def _as_kernel(monkeypatch: pytest.MonkeyPatch, notebook: str | None = None) -> None:
    origin = {"kind": "kernel", "kernel_id": "k-1", "notebook": notebook}
    monkeypatch.setattr(actions, "_kernel_origin", lambda: origin)
    monkeypatch.setattr(actions, "_prompt", lambda message: "")  # no stdin (nbval, papermill)
    monkeypatch.setattr(actions, "_announce", lambda data, where: None)


@pytest.mark.usefixtures("decorated_spec")
def test_production_from_a_kernel_needs_an_approval(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_kernel(monkeypatch)
    with pytest.raises(ApprovalRequired, match="would change production"):
        _change(100)
    assert _calls == [] and action_records(audit_dir) == []
    actions.approve("alice@example.com", note="CHG-1")
    _change(100)
    [data] = action_records(audit_dir)
    assert data["production"] is True
    assert data["approval"]["by"] == "alice@example.com"
    assert data["approval"]["via"] == "approve()" and data["approval"]["note"] == "CHG-1"
    assert data["origin"] == {"kind": "kernel", "kernel_id": "k-1", "notebook": None}
    with pytest.raises(ApprovalRequired):  # an approval is good for one change
        _change(101)


@pytest.mark.usefixtures("decorated_spec")
def test_prompt_answer_is_recorded(audit_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _as_kernel(monkeypatch)
    monkeypatch.setattr(actions, "_prompt", lambda message: "bob")
    _change(100)
    [data] = action_records(audit_dir)
    assert (data["approval"]["by"], data["approval"]["via"]) == ("bob", "prompt")


@pytest.mark.usefixtures("decorated_spec")
def test_non_production_from_a_kernel_needs_no_approval(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_kernel(monkeypatch)
    _change(7)
    [data] = action_records(audit_dir)
    assert data["production"] is False and data["approval"] is None


@pytest.mark.parametrize(
    ("target", "production"),
    [
        ("http://127.0.0.1:6333", False),
        ("redis://localhost:6379", False),
        ("local:/tmp/qdrant", False),
        ("/srv/repo", False),
        ("https://qdrant.internal:6333", True),
        ("redis://10.0.0.5:6379", True),
    ],
)
def test_is_production(target: str, production: bool) -> None:
    assert actions.is_production(target) is production


def test_cli_origin_keeps_the_command_line(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "_cli_argv", ["opsbook", "migrate", "rollback"])
    record_action("test.change", parameters={}, summary={})
    [data] = action_records(audit_dir)
    assert data["origin"] == {"kind": "cli", "argv": ["opsbook", "migrate", "rollback"]}


RULES_NB = (
    'rules_path = ""  # where to write\n',
    [
        "from opsbook.loki.rules import parse_rules, write_rules",
        textwrap.dedent(
            """\
            groups = parse_rules({"groups": [{"name": "g", "rules": [
                {"alert": "A", "expr": 'sum(rate({app="x"}[5m])) > 1'}]}]})
            write_rules(groups, rules_path)
            """
        ),
    ],
)


def test_runner_record_links_the_actions_of_its_steps(
    project: Path, write_runbook, audit_dir: Path, tmp_path: Path
) -> None:
    make_notebook(project / "notebooks" / "write_rules.ipynb", *RULES_NB)
    path = write_runbook(
        f"""
        name: rules
        steps:
          - id: write
            notebook: notebooks/write_rules.ipynb
            parameters: {{rules_path: "{tmp_path / "rules.yaml"}"}}
        """
    )
    result = execute.run(path, {}, execute.RunOptions(echo=lambda line: None))
    assert result.status == "succeeded"
    [action] = action_records(audit_dir)
    assert result.data["steps"][0]["actions"] == [action["run_id"]]
    assert action["origin"] == {"kind": "runner", "run_id": result.run_id, "step": "write"}
    assert action["action"] == "loki.write_rules"
    assert action["summary"]["added"] == ["g/A"]
    assert not (result.folder / "steps" / "write" / actions.STEP_ACTIONS).exists()
    assert audit.verify(audit_dir) == []
    page = (result.folder / "index.html").read_text()
    assert f"../{action['run_id']}/index.html" in page


def test_history_and_index_show_both_kinds(project: Path, write_runbook, audit_dir: Path) -> None:
    from click.testing import CliRunner

    from opsbook.cli import cli
    from opsbook.report import audit_index

    path = write_runbook("name: plain\nsteps:\n  - id: add\n    notebook: notebooks/add.ipynb\n")
    run = execute.run(path, {}, execute.RunOptions(echo=lambda line: None))
    action_id = record_action("test.change", parameters={}, summary={"moved": 3})
    out = CliRunner().invoke(cli, ["history", "--json"])
    rows = {r["run_id"]: r for r in json.loads(out.output)}
    assert rows[run.run_id]["kind"] == "run" and rows[run.run_id]["name"] == "plain"
    assert rows[action_id]["kind"] == "action" and rows[action_id]["name"] == "test.change"
    assert rows[action_id]["key_results"]["moved"] == 3
    index = audit_index(audit_dir).read_text()
    assert f'href="{action_id}/index.html"' in index
    assert f'href="{run.run_id}/index.html"' in index


def test_action_entries_are_signed_like_runner_entries(audit_dir: Path, key_a) -> None:
    action_id = record_action("test.change", parameters={}, summary={"moved": 1})
    [entry] = audit.read_ledger(audit_dir)
    assert entry["run_id"] == action_id
    assert entry["kind"] == "action"
    assert entry["key"] == key_a.fingerprint and entry["signature"]
    assert audit.verify(audit_dir, require_signed=True) == []
    entry_line = (audit_dir / "ledger.jsonl").read_text()
    forged = entry_line.replace('"status":"succeeded"', '"status":"failed"')
    (audit_dir / "ledger.jsonl").write_text(forged)
    assert audit.verify(audit_dir, require_signed=True) != []


def test_a_team_ledger_entry_names_the_action_and_its_results() -> None:
    data = {
        "kind": "action",
        "action": "migrate.rollback",
        "user": "alice@h",
        "summary": {"integrity_ok": True, "aliases": [{"alias": "docs"}]},
    }
    summary = audit.entry_summary(data)
    assert summary["runbook"] == "migrate.rollback"
    assert summary["key_results"] == {"integrity_ok": True}
