"""The command line through click's CliRunner: exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from opsbook.cli import cli
from opsbook.errors import ExitCode

RUNBOOK = """
name: clirun
parameters:
  a: {type: int, default: 1}
steps:
  - id: first
    notebook: notebooks/add.ipynb
    parameters: {x: "{{ params.a }}"}
  - id: gate
    gate: approval
    message: ok?
  - id: second
    notebook: notebooks/add.ipynb
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_validate_reports_invalid_runbook(write_runbook) -> None:
    good = write_runbook(RUNBOOK)
    bad = write_runbook(RUNBOOK.replace("x: ", "nope: "))
    code, out = invoke("validate", str(good))
    assert code == 0 and "✓" in out
    code, out = invoke("validate", str(good), str(bad))
    assert code == ExitCode.INVALID_RUNBOOK
    assert "parameter 'nope' is not declared" in out and "✗" in out


@pytest.mark.notebooks
def test_run_gate_resume_history_show_verify(write_runbook, audit_dir: Path) -> None:
    path = write_runbook(RUNBOOK)
    code, out = invoke("run", str(path), "-p", "a=5")
    assert code == ExitCode.AWAITING_APPROVAL
    assert "awaiting approval" in out
    run_id = json.loads(invoke("history", "--json")[1])[-1]["run_id"]

    code, out = invoke("resume", run_id[:22], "--approve", "gate")
    assert code == ExitCode.OK, out
    code, out = invoke("history", "--json")
    runs = json.loads(out)
    assert [r["status"] for r in runs] == ["awaiting_approval", "succeeded"]
    assert runs[1]["key_results"]["total"] == 3  # the last step that records it wins

    code, out = invoke("show", runs[1]["run_id"])
    assert code == 0 and f"resumed from {run_id}" in out and "approved gate by" in out
    assert "ledger: entry 2, unsigned, verifies" in out
    assert invoke("verify")[0] == 0
    code, out = invoke("report")
    assert code == 0 and Path(out.strip()).name == "index.html"

    (audit_dir / runs[0]["run_id"] / "runbook.yaml").chmod(0o644)
    (audit_dir / runs[0]["run_id"] / "runbook.yaml").write_text("edited")
    code, out = invoke("verify")
    assert code == ExitCode.TAMPERED and "runbook.yaml modified" in out


def test_bad_parameters_exit_2(write_runbook, audit_dir: Path, tmp_path: Path) -> None:
    path = write_runbook(RUNBOOK)
    code, out = invoke("run", str(path), "-p", "b=1")
    assert code == 2 and "has no parameter 'b'" in out and "declared parameters: a (int)" in out
    code, out = invoke("run", str(path), "-p", "a=notanint")
    assert code == 2 and "expects an int" in out
    code, out = invoke("run", str(path), "-p", "novalue")
    assert code == 2 and "name=value" in out
    code, out = invoke("run", str(tmp_path / "missing.yaml"))
    assert code == ExitCode.USAGE and "does not exist" in out
    code, out = invoke("run", str(path), "-f", str(tmp_path / "nope.yaml"))
    assert code == 2 and "does not exist" in out
    assert not audit_dir.exists() or not any(audit_dir.iterdir())  # nothing half-written


def test_params_file_keeps_types(write_runbook, audit_dir: Path, tmp_path: Path) -> None:
    path = write_runbook(
        RUNBOOK.replace(
            "a: {type: int, default: 1}", "a: {type: int, default: 1}\n  names: {type: list}"
        )
    )
    params = tmp_path / "p.yaml"
    params.write_text("a: 2\nnames: [x, y]\nunknown: 1\n")
    code, out = invoke("run", str(path), "-f", str(params))
    assert code == 2 and "'unknown'" in out


def test_show_unknown_run(audit_dir: Path) -> None:
    code, out = invoke("show", "nope")
    assert code == 2 and "is not a run" in out


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("a: 1\nnames: [x, y\n", ":3:1:", "expected ',' or ']'"),
        ("a: 1\nnames: !!python/object:os.system {}\n", ":2:8:", "python/object"),
        ("a: 1\nwhen: 2026-02-30\n", ":2:7:", "not a valid date"),
    ],
)
def test_bad_params_file_names_file_line_and_column(
    write_runbook, audit_dir: Path, tmp_path: Path, text: str, position: str, problem: str
) -> None:
    params = tmp_path / "p.yaml"
    params.write_text(text)
    code, out = invoke("run", str(write_runbook(RUNBOOK)), "-f", str(params))
    assert code == ExitCode.USAGE, out
    assert f"{params}{position}" in out and problem in out
    assert "Traceback" not in out
    assert not audit_dir.exists()


def test_unknown_gate_refused(write_runbook, audit_dir: Path) -> None:
    code, out = invoke("run", str(write_runbook(RUNBOOK)), "--approve", "nosuchgate")
    assert code == ExitCode.USAGE
    assert "no gate 'nosuchgate'" in out and "gates: gate" in out
    assert not audit_dir.exists()


def test_validate_lists_schema_and_semantic_problems_at_once(write_runbook) -> None:
    bad = write_runbook(
        RUNBOOK.replace("    message: ok?", "    message: ok?\n    colour: red").replace(
            "x: ", "nope: "
        )
    )
    code, out = invoke("validate", str(bad))
    assert code == ExitCode.INVALID_RUNBOOK
    assert "unknown key 'colour'" in out and "parameter 'nope' is not declared" in out


def test_validate_missing_file_is_bad_input(tmp_path: Path) -> None:
    code, out = invoke("validate", str(tmp_path / "nope.yaml"))
    assert code == ExitCode.USAGE and "does not exist" in out


def test_domain_parameter_out_of_range_refused_before_anything_runs(audit_dir: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    cases = [
        ("migrate-chroma-to-qdrant.yaml", "batch_size=0"),
        ("archive-experimental-apps.yaml", "staleness_days=99999999999999"),
        ("archive-experimental-apps.yaml", "now=2026-02-30"),
    ]
    for name, param in cases:
        code, out = (
            invoke("run", str(root / "runbooks" / name), "-p", param, "-p", f"repo_path={root}")
            if name.startswith("archive")
            else invoke("run", str(root / "runbooks" / name), "-p", param)
        )
        assert code == ExitCode.USAGE, (param, out)
        assert param.split("=")[0] in out
    assert not audit_dir.exists()


def test_domain_groups_are_entry_points_loaded_on_first_use() -> None:
    """The core names no domain: each group comes from the ``opsbook.cli`` entry points."""
    probe = (
        "import sys, click\n"
        "from opsbook.cli import cli\n"
        "names = cli.list_commands(click.Context(cli))\n"
        "listed_only = [m for m in sys.modules if m.startswith(('opsbook.loki', 'opsbook.pubsub'))]\n"
        "loki = cli.get_command(click.Context(cli), 'loki')\n"
        "from opsbook.loki.cli import cli as loki_cli\n"
        "print(json.dumps([names, listed_only, loki is loki_cli]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + probe], capture_output=True, text=True, check=True
    )
    names, imported, same = json.loads(done.stdout)
    assert {"archive", "migrate", "loki", "pubsub"} <= set(names)
    assert imported == []  # listing the commands imports no domain
    assert same is True
