"""A team ledger in PostgreSQL: many machines append to one signed chain.

Chosen with ``OPSBOOK_LEDGER_URL=postgresql://runner@db.internal/opsbook`` (the password
comes from ``PGPASSWORD`` or ``~/.pgpass`` like any libpq client, never from a record).
Entries are the same signed JSON objects the file ledger holds (see
:mod:`opsbook.ledger`); each row keeps the canonical JSON text exactly as it was hashed
and signed, beside a few columns copied from it for constraints and look-ups.

Appending stays a chain whatever the number of writers: one SERIALIZABLE transaction
takes a transaction-level advisory lock, reads the head, inserts ``head.seq + 1`` with
``prev = head.hash``, and commits; ``seq`` is the primary key and ``prev`` is unique,
so two entries can never share a sequence number or fork from one parent even if the
lock were bypassed. A serialization failure or a dropped connection is retried; after a
connection drop during COMMIT the entry is looked up by its hash before retrying, so an
append is stored exactly once or reported, never half-written. A runner killed inside
the transaction leaves nothing: PostgreSQL rolls it back when the session dies.

``opsbook ledger init`` creates the schema (versioned in ``opsbook.schema_version``),
a trigger that refuses UPDATE, DELETE and TRUNCATE, and grants the runner's role SELECT
and INSERT only. An administrator who bypasses the trigger is still caught by
``opsbook verify``: the chain, the hashes and the signatures are in the rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opsbook.errors import ConfigError, OpsbookError
from opsbook.ledger import Build, Entry, register_backend

SCHEMA = "opsbook"
TABLE = f"{SCHEMA}.ledger"
SCHEMA_VERSION = 1
#: Key of the advisory lock that serialises appends (any constant shared by all writers).
APPEND_LOCK = 0x6F7073626F6F6B  # "opsbook"
RETRIES = 20
CONNECT_TIMEOUT_S = 5

_MIGRATIONS: dict[int, list[str]] = {
    1: [
        f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            seq        bigint PRIMARY KEY CHECK (seq > 0),
            run_id     text NOT NULL,
            prev       text NOT NULL UNIQUE,
            hash       text NOT NULL UNIQUE,
            key        text NOT NULL,
            sealed_at  text NOT NULL,
            host       text NOT NULL DEFAULT '',
            body       text NOT NULL,
            stored_at  timestamptz NOT NULL DEFAULT now()
        )""",
        f"CREATE INDEX IF NOT EXISTS ledger_run_id ON {TABLE} (run_id)",
        f"""CREATE OR REPLACE FUNCTION {SCHEMA}.ledger_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the opsbook ledger is append-only: % refused', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END $$""",
        f"DROP TRIGGER IF EXISTS ledger_no_update ON {TABLE}",
        f"""CREATE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON {TABLE}
            FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.ledger_append_only()""",
        f"DROP TRIGGER IF EXISTS ledger_no_truncate ON {TABLE}",
        f"""CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON {TABLE}
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.ledger_append_only()""",
    ],
}


class LedgerDatabaseError(ConfigError):
    """The ledger database cannot be used: unreachable, refused, or not initialised."""


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and records)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError(
            "the PostgreSQL ledger needs psycopg", hint="pip install 'psycopg[binary]'"
        ) from exc
    return psycopg


def _canonical(entry: Entry) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class PostgresLedger:
    """The :class:`opsbook.ledger.Ledger` interface over one PostgreSQL table."""

    def __init__(self, url: str, root: Path | None = None) -> None:
        self.url = url
        self.root = root
        self._conn: Any = None  # reused between calls; reopened after any failure

    def describe(self) -> str:
        return f"PostgreSQL ledger {safe_url(self.url)}"

    # ------------------------------------------------------------------ connections

    def _connect(self) -> Any:
        psycopg = _psycopg()
        try:
            # autocommit: reads hold no transaction open; appends open their own
            return psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        except psycopg.OperationalError as exc:
            raise LedgerDatabaseError(
                f"cannot connect to the {self.describe()}: {_first_line(exc)}",
                hint="check OPSBOOK_LEDGER_URL, that the server is up, and the credentials "
                "(PGPASSWORD or ~/.pgpass); unset OPSBOOK_LEDGER_URL to use the ledger file",
            ) from None

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """The cached connection; on any error it is closed and the next call reconnects."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        try:
            yield self._conn
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the cached connection (the next call opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def preflight(self) -> None:
        """Refuse early (before any step runs) when the ledger cannot take an append.

        Checks: the server answers, the schema exists at the version this opsbook
        writes, and the connecting role may SELECT and INSERT.
        """
        psycopg = _psycopg()
        with self._connection() as conn:
            try:
                version = self._schema_version(conn)
            except psycopg.errors.InsufficientPrivilege:
                raise LedgerDatabaseError(
                    f"the role of OPSBOOK_LEDGER_URL may not read the {SCHEMA} schema",
                    hint="`opsbook ledger init --admin-url URL --runner-role ROLE` grants it",
                ) from None
            if version is None:
                raise LedgerDatabaseError(
                    f"the {self.describe()} has no opsbook schema",
                    hint="an administrator runs `opsbook ledger init --admin-url URL` once",
                )
            if version != SCHEMA_VERSION:
                raise LedgerDatabaseError(
                    f"the {self.describe()} is at schema version {version}, this opsbook "
                    f"writes version {SCHEMA_VERSION}",
                    hint="run `opsbook ledger init --admin-url URL` to migrate it",
                )
            try:
                row = conn.execute(
                    "SELECT has_table_privilege(current_user, %s, 'SELECT'),"
                    " has_table_privilege(current_user, %s, 'INSERT')",
                    (TABLE, TABLE),
                ).fetchone()
            except psycopg.Error as exc:
                raise LedgerDatabaseError(f"{self.describe()}: {_first_line(exc)}") from None
            if not (row and row[0] and row[1]):
                raise LedgerDatabaseError(
                    f"the role of OPSBOOK_LEDGER_URL may not SELECT and INSERT on {TABLE}",
                    hint="`opsbook ledger init --admin-url URL --runner-role ROLE` grants it",
                )

    @staticmethod
    def _schema_version(conn: Any) -> int | None:
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
            (TABLE, f"{SCHEMA}.schema_version"),
        ).fetchone()
        if not row[0] or not row[1]:
            return None
        found = conn.execute(f"SELECT max(version) FROM {SCHEMA}.schema_version").fetchone()
        return int(found[0]) if found and found[0] is not None else None

    # ------------------------------------------------------------------ the interface

    def entries(self) -> list[Entry]:
        psycopg = _psycopg()
        with self._connection() as conn:
            try:
                rows = conn.execute(
                    f"SELECT seq, run_id, prev, hash, key, body FROM {TABLE} ORDER BY seq"
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                raise LedgerDatabaseError(
                    f"the {self.describe()} has no opsbook schema",
                    hint="an administrator runs `opsbook ledger init --admin-url URL` once",
                ) from None
        return [_row_entry(position, row) for position, row in enumerate(rows, start=1)]

    def append(self, build: Build) -> Entry:
        psycopg = _psycopg()
        last_error: Exception | None = None
        for attempt in range(RETRIES):
            self._pending = None
            try:
                with self._connection() as conn:
                    return self._append_once(conn, build)
            except (psycopg.errors.SerializationFailure, psycopg.errors.UniqueViolation) as exc:
                last_error = exc  # another writer won the race: read the new head again
            except psycopg.OperationalError as exc:
                last_error = exc  # the connection dropped: was the entry committed?
                found = self._find_uncertain()
                if found is not None:
                    return found
            except LedgerDatabaseError:
                raise
            except psycopg.Error as exc:
                raise LedgerDatabaseError(
                    f"appending to the {self.describe()} failed: {_first_line(exc)}",
                    hint="nothing was stored; fix the cause and run `opsbook recover RUN_ID`",
                ) from None
            time.sleep(min(0.5, 0.01 * 2**attempt))
        raise LedgerDatabaseError(
            f"could not append to the {self.describe()} after {RETRIES} attempts: "
            f"{_first_line(last_error)}",
            hint="nothing was stored; the record stays unsealed: `opsbook recover RUN_ID` "
            "seals it once the database is back",
        )

    def _append_once(self, conn: Any, build: Build) -> Entry:
        psycopg = _psycopg()
        # The session lock is taken before the transaction starts: a SERIALIZABLE
        # snapshot taken while waiting for it would not see the previous holder's entry
        # and every waiter would then fail to serialize. The lock dies with the session.
        conn.execute("SELECT pg_advisory_lock(%s)", (APPEND_LOCK,))
        try:
            conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
            with conn.transaction():
                entry = self._insert_next(conn, build)
            self._pending = None  # committed
            return entry
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (APPEND_LOCK,))

    def _insert_next(self, conn: Any, build: Build) -> Entry:
        """Inside the append transaction: read the head, build the entry, insert it.

        The entry is kept in ``_pending`` until COMMIT returns, so that a connection
        lost during COMMIT can be resolved by looking the entry up (:meth:`_find_uncertain`).
        """
        row = conn.execute(
            f"SELECT seq, run_id, prev, hash, key, body FROM {TABLE} ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        head = _row_entry(row[0], row) if row else None
        entry = build(head)
        self._pending = entry
        conn.execute(
            f"INSERT INTO {TABLE} (seq, run_id, prev, hash, key, sealed_at, host, body)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                entry["seq"],
                entry["run_id"],
                entry["prev"],
                entry["hash"],
                entry.get("key", ""),
                entry.get("sealed_at", ""),
                str(entry.get("host", "")),
                _canonical(entry),
            ),
        )
        return entry

    _pending: Entry | None = None

    def _find_uncertain(self) -> Entry | None:
        """After a dropped connection: the entry if its COMMIT went through, else None."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        try:
            with self._connection() as conn:
                row = conn.execute(
                    f"SELECT body FROM {TABLE} WHERE hash = %s", (pending["hash"],)
                ).fetchone()
        except OpsbookError:
            return None  # still unreachable: the caller retries or reports
        return json.loads(row[0]) if row else None

    # ------------------------------------------------------------------ administration

    def init(self, runner_role: str | None = None) -> int:
        """Create or migrate the schema; grant ``runner_role`` SELECT and INSERT only.

        Run by an administrator (the URL's role must own or create the schema).
        Idempotent. Returns the schema version.
        """
        psycopg = _psycopg()
        from psycopg import sql

        with self._connection() as conn:
            try:
                with conn.transaction():
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version "
                        "(version int PRIMARY KEY, applied_at timestamptz DEFAULT now())"
                    )
                    current = self._schema_version(conn) or 0
                    for version in sorted(v for v in _MIGRATIONS if v > current):
                        for statement in _MIGRATIONS[version]:
                            conn.execute(statement)
                        conn.execute(
                            f"INSERT INTO {SCHEMA}.schema_version (version) VALUES (%s)",
                            (version,),
                        )
                    if runner_role:
                        role = sql.Identifier(runner_role)
                        conn.execute(
                            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                                sql.Identifier(SCHEMA), role
                            )
                        )
                        conn.execute(
                            sql.SQL("REVOKE ALL ON {}.{} FROM {}").format(
                                sql.Identifier(SCHEMA), sql.Identifier("ledger"), role
                            )
                        )
                        conn.execute(
                            sql.SQL("GRANT SELECT, INSERT ON {}.{} TO {}").format(
                                sql.Identifier(SCHEMA), sql.Identifier("ledger"), role
                            )
                        )
                        conn.execute(
                            sql.SQL("GRANT SELECT ON {}.{} TO {}").format(
                                sql.Identifier(SCHEMA), sql.Identifier("schema_version"), role
                            )
                        )
            except psycopg.Error as exc:
                raise LedgerDatabaseError(
                    f"initialising the {self.describe()} failed: {_first_line(exc)}",
                    hint="run it with an administrator's URL (--admin-url) and an existing "
                    "runner role",
                ) from None
        return SCHEMA_VERSION


def _row_entry(position: int, row: Any) -> Entry:
    """The stored entry of a row; columns that disagree with it mark it unreadable."""
    seq, run_id, prev, digest, key, body = row
    try:
        entry = json.loads(body)
    except (TypeError, json.JSONDecodeError):
        return {"_unreadable": str(body)[:200], "_line": position}
    if not isinstance(entry, dict):
        return {"_unreadable": str(body)[:200], "_line": position}
    columns = {"seq": seq, "run_id": run_id, "prev": prev, "hash": digest}
    if any(entry.get(name) != value for name, value in columns.items()):
        return {
            "_unreadable": f"row seq={seq}: its columns disagree with the stored entry "
            "(edited with SQL?)",
            "_line": position,
        }
    return entry


def _first_line(exc: BaseException | None) -> str:
    text = str(exc or "").strip().splitlines()
    return text[0] if text else type(exc).__name__


def _factory(url: str, root: Path) -> PostgresLedger:
    return PostgresLedger(url, root)


for _scheme in ("postgresql", "postgres"):
    register_backend(_scheme, _factory)
