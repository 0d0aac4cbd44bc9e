"""The PostgreSQL team ledger on the real server: one chain under concurrency, no half entries.

Each test gets a database of its own (created and dropped here) on the server at
``$OPSBOOK_TEST_PG_URL`` (default: the local superuser over TCP). Without a reachable
server the tests skip, except where ``OPSBOOK_REQUIRE_PG=1`` (``.ci/run`` sets it).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from opsbook import audit
from opsbook.errors import ConfigError
from opsbook.ledger import FileLedger
from opsbook.ledger_pg import TABLE, LedgerDatabaseError, PostgresLedger, safe_url

psycopg = pytest.importorskip("psycopg")

ADMIN_URL = os.environ.get("OPSBOOK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _server_or_skip() -> None:
    try:
        psycopg.connect(ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("OPSBOOK_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL required but unreachable at {safe_url(ADMIN_URL)}: {exc}")
        pytest.skip(f"no PostgreSQL at {safe_url(ADMIN_URL)} (set OPSBOOK_TEST_PG_URL)")


def _url_for(database: str, user: str | None = None) -> str:
    base = psycopg.conninfo.conninfo_to_dict(ADMIN_URL)
    host, port = base.get("host", "127.0.0.1"), base.get("port", "5432")
    who = user or base.get("user", "postgres")
    return f"postgresql://{who}@{host}:{port}/{database}"


@pytest.fixture
def database():
    """A fresh database and a runner role; yields (admin_url, runner_url)."""
    _server_or_skip()
    name = f"opsbook_test_{uuid.uuid4().hex[:10]}"
    role = f"opsbook_runner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        yield _url_for(name), _url_for(name, role)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def ledger(database):
    admin, runner = database
    role = psycopg.conninfo.conninfo_to_dict(runner)["user"]
    PostgresLedger(admin).init(runner_role=role)
    return PostgresLedger(runner)


def _build(run_id: str):
    """A chained entry built the way the audit module builds one (unsigned)."""

    def build(head):
        entry = {
            "seq": head["seq"] + 1 if head else 1,
            "run_id": run_id,
            "status": "succeeded",
            "run_json_sha256": "0" * 64,
            "sealed_at": audit.now_iso(),
            "prev": head["hash"] if head else audit.GENESIS,
            "key": audit.UNSIGNED,
        }
        entry["hash"] = audit.entry_hash(entry)
        return entry

    return build


def _chain_problems(entries):
    prev, problems = audit.GENESIS, []
    for index, entry in enumerate(entries, start=1):
        if "_unreadable" in entry:
            problems.append(f"entry {index}: unreadable: {entry['_unreadable']}")
            prev = "?"
            continue
        problems += audit._chain_problems(entry, index, prev, f"entry {index}")
        prev = entry.get("hash", "?")
    return problems


# ------------------------------------------------------------------ schema and roles


def test_init_is_idempotent_and_the_runner_may_only_select_and_insert(database, ledger):
    admin, runner = database
    role = psycopg.conninfo.conninfo_to_dict(runner)["user"]
    assert PostgresLedger(admin).init(runner_role=role) == 1  # second run: no error
    ledger.preflight()
    ledger.append(_build("r1"))
    with psycopg.connect(runner, autocommit=True) as conn:
        for statement in (f"UPDATE {TABLE} SET run_id = 'x'", f"DELETE FROM {TABLE}"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert [e["run_id"] for e in ledger.entries()] == ["r1"]


@pytest.mark.parametrize(
    "statement",
    [f"UPDATE {TABLE} SET run_id = 'x'", f"DELETE FROM {TABLE}", f"TRUNCATE {TABLE}"],
)
def test_the_trigger_refuses_changes_even_from_the_owner(database, ledger, statement):
    admin, _ = database
    ledger.append(_build("r1"))
    with (
        psycopg.connect(admin, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        conn.execute(statement)
    assert len(ledger.entries()) == 1


# ------------------------------------------------------------------ bad input, refused early


def test_unreachable_database_is_a_clear_config_error():
    ledger = PostgresLedger("postgresql://runner:hunter2@127.0.0.1:1/opsbook")
    with pytest.raises(LedgerDatabaseError) as info:
        ledger.preflight()
    assert info.value.exit_code == 2
    assert "cannot connect" in info.value.message and "hunter2" not in str(info.value)
    assert "***" in ledger.describe() and "hunter2" not in ledger.describe()


def test_unknown_role_is_refused(database):
    admin, _ = database
    PostgresLedger(admin).init()
    url = admin.replace("postgres@", "nosuchrole@", 1)
    with pytest.raises(LedgerDatabaseError, match="cannot connect"):
        PostgresLedger(url).preflight()


def test_missing_schema_is_refused_before_anything_runs(database):
    _, runner = database
    with pytest.raises(LedgerDatabaseError, match="has no opsbook schema") as info:
        PostgresLedger(runner).preflight()
    assert "opsbook ledger init" in (info.value.hint or "")


def test_a_role_without_insert_is_refused(database):
    admin, runner = database
    PostgresLedger(admin).init()  # no runner role granted
    with pytest.raises(LedgerDatabaseError, match="may not (SELECT and INSERT|read)"):
        PostgresLedger(runner).preflight()


def test_a_failing_build_stores_nothing(ledger):
    def broken(head):
        raise ConfigError("signing key unreadable")

    with pytest.raises(ConfigError, match="signing key unreadable"):
        ledger.append(broken)
    assert ledger.entries() == []


# ------------------------------------------------------------------ concurrency and faults


def _writer(url: str, worker: int, count: int) -> None:
    ledger = PostgresLedger(url)
    for n in range(count):
        ledger.append(_build(f"w{worker}-{n}"))


def test_eight_writers_make_one_chain_of_two_hundred(ledger):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(ledger.url, w, 25)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 8
    entries = ledger.entries()
    assert [e["seq"] for e in entries] == list(range(1, 201))
    assert len({e["run_id"] for e in entries}) == 200
    assert _chain_problems(entries) == []


def _slow_append(url: str) -> None:
    def build(head):
        entry = _build("killed")(head)
        time.sleep(60)  # killed here, inside the transaction
        return entry

    PostgresLedger(url).append(build)


def test_sigkill_during_append_leaves_no_partial_entry(database, ledger):
    admin, _ = database
    ledger.append(_build("before"))
    proc = multiprocessing.get_context("fork").Process(target=_slow_append, args=(ledger.url,))
    proc.start()
    with psycopg.connect(admin, autocommit=True) as conn:
        for _ in range(200):  # wait until the child holds the append lock
            held = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            ).fetchone()[0]
            if held:
                break
            time.sleep(0.05)
        assert held, "the child never took the append lock"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    ledger.append(_build("after"))  # the lock died with the session
    entries = ledger.entries()
    assert [e["run_id"] for e in entries] == ["before", "after"]
    assert _chain_problems(entries) == []


def test_a_connection_dropped_mid_append_is_retried_once_and_stored_once(database, ledger):
    admin, _ = database
    calls = []

    def build(head):
        calls.append(head)
        if len(calls) == 1:  # the server drops this session, as a network cut would
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        return _build("dropped")(head)

    entry = ledger.append(build)
    assert len(calls) == 2 and entry["run_id"] == "dropped"
    assert [e["run_id"] for e in ledger.entries()] == ["dropped"]


# ------------------------------------------------------------------ tampering, both backends


def _file_ledger(tmp_path: Path) -> FileLedger:
    return FileLedger(tmp_path / "audit")


def _tamper_file(ledger: FileLedger, kind: str) -> None:
    lines = ledger.path.read_text().splitlines()
    if kind == "edit":
        lines[1] = lines[1].replace('"succeeded"', '"failed"')
    elif kind == "delete":
        del lines[1]
    elif kind == "reorder":
        lines[0], lines[1] = lines[1], lines[0]
    elif kind == "truncate":
        lines = lines[:-1]
    ledger.path.write_text("\n".join(lines) + "\n")


def _tamper_pg(admin: str, kind: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # bypass the triggers
        if kind == "edit":
            conn.execute(
                f"UPDATE {TABLE} SET body = replace(body, 'succeeded', 'failed') WHERE seq = 2"
            )
        elif kind == "delete":
            conn.execute(f"DELETE FROM {TABLE} WHERE seq = 2")
        elif kind == "reorder":
            conn.execute(f"UPDATE {TABLE} SET seq = seq + 100 WHERE seq IN (1, 2)")
            conn.execute(f"UPDATE {TABLE} SET seq = 2 WHERE seq = 101")
            conn.execute(f"UPDATE {TABLE} SET seq = 1 WHERE seq = 102")
        elif kind == "truncate":
            conn.execute(f"DELETE FROM {TABLE} WHERE seq = 3")
        elif kind == "column":
            conn.execute(f"UPDATE {TABLE} SET run_id = 'other' WHERE seq = 2")


# What verification says after each tamper, per backend. Rows of the PostgreSQL ledger
# are ordered by their seq column; moving rows means editing seq, which then disagrees
# with the signed body.
TAMPERS = [
    (
        "edit",
        {
            "file": "entry hash does not match its content",
            "postgresql": "entry hash does not match its content",
        },
    ),
    (
        "delete",
        {
            "file": "sequence number 3 where 2 was expected",
            "postgresql": "sequence number 3 where 2 was expected",
        },
    ),
    (
        "reorder",
        {
            "file": "does not chain to the entry before it",
            "postgresql": "columns disagree with the stored entry",
        },
    ),
]


@pytest.mark.parametrize("backend", ["file", "postgresql"])
@pytest.mark.parametrize(("kind", "expected"), TAMPERS)
def test_the_same_tamper_table_holds_for_both_backends(tmp_path, request, backend, kind, expected):
    if backend == "file":
        ledger = _file_ledger(tmp_path)
    else:
        ledger = request.getfixturevalue("ledger")
        admin, _ = request.getfixturevalue("database")
    for n in range(3):
        ledger.append(_build(f"r{n}"))
    assert _chain_problems(ledger.entries()) == []
    if backend == "file":
        _tamper_file(ledger, kind)
    else:
        _tamper_pg(admin, kind)
    problems = _chain_problems(ledger.entries())
    assert any(expected[backend] in p for p in problems), problems


def test_a_row_whose_columns_were_edited_is_unreadable(database, ledger):
    admin, _ = database
    for n in range(3):
        ledger.append(_build(f"r{n}"))
    _tamper_pg(admin, "column")
    entries = ledger.entries()
    assert "columns disagree" in entries[1]["_unreadable"]


@pytest.mark.parametrize("backend", ["file", "postgresql"])
def test_a_dropped_last_entry_is_caught_by_a_checkpoint(tmp_path, request, backend):
    from opsbook.checkpoint import check_against, for_head
    from opsbook.signing import TrustStore

    if backend == "file":
        ledger = _file_ledger(tmp_path)
    else:
        ledger = request.getfixturevalue("ledger")
        admin, _ = request.getfixturevalue("database")
    for n in range(3):
        ledger.append(_build(f"r{n}"))
    cp = for_head(ledger.entries()[-1], None)
    if backend == "file":
        _tamper_file(ledger, "truncate")
    else:
        _tamper_pg(admin, "truncate")
    entries = ledger.entries()
    assert _chain_problems(entries) == []  # the chain alone cannot see a dropped tail
    problems = check_against(cp, entries, TrustStore(tmp_path / "trusted.json"))
    assert any("truncated or rolled back" in p for p in problems)


# ------------------------------------------------------------------ the runner on a team ledger

TEAM_RUNBOOK = """
name: team
steps:
  - id: first
    notebook: notebooks/add.ipynb
    parameters: {x: 1}
"""


@pytest.fixture
def team(ledger, audit_dir, monkeypatch):
    monkeypatch.setenv("OPSBOOK_LEDGER_URL", ledger.url)
    return ledger


def _run(write_runbook, audit_dir):
    from opsbook import execute

    return execute.run(
        write_runbook(TEAM_RUNBOOK),
        {},
        execute.RunOptions(root=audit_dir, progress_bar=False, echo=lambda _: None),
    )


@pytest.mark.notebooks
def test_a_run_seals_into_the_team_ledger_and_verifies(team, write_runbook, audit_dir, key_a):
    result = _run(write_runbook, audit_dir)
    assert result.status == "succeeded"
    assert not (audit_dir / "ledger.jsonl").exists()  # the database holds the chain
    (entry,) = team.entries()
    assert entry["run_id"] == result.run_id and entry["key"] == key_a.fingerprint
    assert entry["runbook"] == "team" and entry["artifacts"]
    trail = audit.verify_trail(audit_dir, require_signed=True)
    assert trail.problems == [] and trail.signed == 1
    assert [r["run_id"] for r in audit.team_runs(audit_dir)] == [result.run_id]


@pytest.mark.notebooks
def test_records_of_another_machine_are_listed_not_failed(
    team, write_runbook, audit_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(audit.socket, "gethostname", lambda: "ci-runner-7")
    result = _run(write_runbook, audit_dir)
    monkeypatch.undo()
    monkeypatch.setenv("OPSBOOK_LEDGER_URL", team.url)
    laptop = tmp_path / "laptop-audit"  # another machine: same ledger, no folders
    laptop.mkdir()
    trail = audit.verify_trail(laptop)
    assert trail.problems == [] and trail.remote == [result.run_id]
    assert "written on ci-runner-7" in trail.notes[0]
    strict = audit.verify_trail(laptop, require_artifacts=True)
    assert any("--require-artifacts" in p for p in strict.problems)
    (row,) = audit.team_runs(laptop)
    assert row["remote"] == "ci-runner-7" and row["runbook"]["name"] == "team"
    # the folder, found again (a shared OPSBOOK_AUDIT_DIR), is checked file by file
    trail = audit.verify_trail(audit_dir)
    assert trail.problems == [] and trail.remote == []


@pytest.mark.notebooks
def test_a_record_deleted_on_its_own_host_is_a_problem(team, write_runbook, audit_dir):
    import shutil

    result = _run(write_runbook, audit_dir)
    for path in result.folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(result.folder)
    problems = audit.verify_trail(audit_dir).problems
    assert problems == [f"record {result.run_id}: folder missing (deleted?)"]


def test_an_unreachable_ledger_refuses_the_run_before_anything_is_written(
    write_runbook, audit_dir, monkeypatch
):
    from click.testing import CliRunner

    from opsbook.cli import cli

    monkeypatch.setenv("OPSBOOK_LEDGER_URL", "postgresql://runner:pw@127.0.0.1:1/opsbook")
    result = CliRunner().invoke(cli, ["run", str(write_runbook(TEAM_RUNBOOK))])
    assert result.exit_code == 2, result.output
    assert "cannot connect" in result.output and ":pw@" not in result.output
    assert not audit_dir.exists() or not any(audit_dir.iterdir())


def test_a_missing_schema_refuses_the_run(database, write_runbook, audit_dir, monkeypatch):
    from click.testing import CliRunner

    from opsbook.cli import cli

    _, runner = database
    monkeypatch.setenv("OPSBOOK_LEDGER_URL", runner)
    result = CliRunner().invoke(cli, ["run", str(write_runbook(TEAM_RUNBOOK))])
    assert result.exit_code == 2, result.output
    assert "has no opsbook schema" in result.output
    assert not audit_dir.exists() or not any(audit_dir.iterdir())


def test_ledger_cli_init_and_status(database, monkeypatch):
    from click.testing import CliRunner

    from opsbook.cli import cli

    admin, runner = database
    role = psycopg.conninfo.conninfo_to_dict(runner)["user"]
    result = CliRunner().invoke(
        cli, ["ledger", "init", "--admin-url", admin, "--runner-role", role]
    )
    assert result.exit_code == 0, result.output
    assert "schema version 1" in result.output and role in result.output
    monkeypatch.setenv("OPSBOOK_LEDGER_URL", runner)
    result = CliRunner().invoke(cli, ["ledger", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert '"entries": 0' in result.output
