"""``opsbook ledger ...``: set up and inspect the team ledger (PostgreSQL)."""

from __future__ import annotations

import json
import os

import click

from opsbook.clikit import OpsbookGroup
from opsbook.errors import ConfigError

cli = OpsbookGroup(name="ledger", help="The team ledger: create its schema, show its state.")


def _url(value: str | None, *envs: str) -> str:
    for candidate in (value, *(os.environ.get(e) for e in envs)):
        if candidate:
            return candidate
    raise ConfigError(
        "no ledger database given",
        hint="pass --admin-url postgresql://admin@db/opsbook or set OPSBOOK_LEDGER_URL",
    )


@cli.command("init")
@click.option(
    "--admin-url",
    default=None,
    help="URL of a role that may create the schema (default: $OPSBOOK_LEDGER_ADMIN_URL, "
    "then $OPSBOOK_LEDGER_URL); the password comes from PGPASSWORD or ~/.pgpass",
)
@click.option("--runner-role", default=None, help="role the runners connect as: SELECT+INSERT")
def init_command(admin_url: str | None, runner_role: str | None) -> None:
    """Create or migrate the ledger schema; grant the runners' role SELECT and INSERT only.

    Idempotent. UPDATE, DELETE and TRUNCATE on the ledger are refused by a trigger.

    \b
    Example:
      opsbook ledger init --admin-url postgresql://postgres@db/opsbook --runner-role opsbook
    """
    from opsbook.ledger_pg import PostgresLedger

    ledger = PostgresLedger(_url(admin_url, "OPSBOOK_LEDGER_ADMIN_URL", "OPSBOOK_LEDGER_URL"))
    version = ledger.init(runner_role=runner_role)
    granted = f"; role {runner_role} may SELECT and INSERT" if runner_role else ""
    click.echo(f"{ledger.describe()}: schema version {version}{granted}")


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def status_command(as_json: bool) -> None:
    """Where the ledger lives, how many entries it holds and its head.

    \b
    Example:
      OPSBOOK_LEDGER_URL=postgresql://runner@db/opsbook opsbook ledger status
    """
    from opsbook.ledger import preflight
    from opsbook.settings import audit_root

    ledger = preflight(audit_root())
    entries = ledger.entries()
    head = entries[-1] if entries else None
    info = {
        "ledger": ledger.describe(),
        "entries": len(entries),
        "head_seq": head.get("seq") if head else 0,
        "head_hash": head.get("hash") if head else None,
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(
            f"{info['ledger']}: {info['entries']} entries"
            + (f", head {info['head_seq']} {str(info['head_hash'])[:16]}…" if head else "")
        )
