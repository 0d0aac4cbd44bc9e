"""The ``opsbook`` command line: thin wrappers over the library.

Every command turns an :class:`~opsbook.errors.OpsbookError` into a clean message and
the documented exit code (see :mod:`opsbook.execute`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import click

from opsbook import audit, execute
from opsbook import runbook as rbmod
from opsbook.clikit import OpsbookGroup
from opsbook.errors import ConfigError, OpsbookError
from opsbook.settings import audit_root

DOMAINS = ("archive", "migrate", "loki", "pubsub")


class _Group(OpsbookGroup):
    """Turns OpsbookError into a message and exit code instead of a traceback.

    Domain command groups (``opsbook loki ...``) load on first use, so ``opsbook --help``
    and the runner do not pay for importing Chroma or Redis clients.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_available_domains()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _available_domains():
            group = getattr(importlib.import_module(f"opsbook.{cmd_name}.cli"), "cli", None)
            if isinstance(group, click.Command):
                return group
        return command


@click.group(cls=_Group)
@click.version_option(package_name="opsbook")
def cli() -> None:
    """Run operational runbooks (papermill notebooks) and keep every run as an audit record.

    \b
    Examples:
      opsbook validate
      opsbook run runbooks/archive-experimental-apps.yaml -p repo_path=../monorepo
      opsbook resume 20261128T101500Z-archive-experimental-apps-3fa2c1 --approve approve
      opsbook history && opsbook verify && opsbook report
    """


def _parse_params(pairs: tuple[str, ...], files: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in files:
        data = rbmod.read_yaml(Path(name), "parameters file") or {}
        if not isinstance(data, dict):
            raise ConfigError(f"parameters file {name} must be a mapping of name: value")
        params.update(data)
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"-p {pair!r} must look like name=value")
        key, value = pair.split("=", 1)
        params[key.strip()] = value
    return params


def _options(
    approve: tuple[str, ...], yes: bool, log_output: bool, kernel: str | None
) -> execute.RunOptions:
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    return execute.RunOptions(
        approve=set(approve),
        yes=yes,
        interactive=interactive,
        confirm=lambda msg: click.confirm(msg, default=False),
        log_output=log_output,
        kernel_name=kernel,
        echo=lambda line: click.echo(line, err=True),
    )


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
def validate(paths: tuple[str, ...]) -> None:
    """Check runbooks before anything runs (all of runbooks/ by default).

    Example: opsbook validate runbooks/migrate-chroma-to-qdrant.yaml
    """
    files = [Path(p) for p in paths] or rbmod.discover(Path.cwd())
    if not files:
        raise ConfigError("no runbooks found", hint="run from the project root or pass paths")
    codes = set()
    for path in files:
        try:
            problems = rbmod.check_file(path)
        except OpsbookError as exc:
            problems = [exc.message]
            codes.add(exc.exit_code)
        if problems:
            codes.add(execute.EXIT_INVALID)
            click.secho(f"✗ {path}", fg="red")
            for problem in problems:
                click.echo(f"    {problem}")
        else:
            click.secho(f"✓ {path}", fg="green")
    if codes:  # a missing file (2) before an invalid runbook (4)
        sys.exit(min(codes))


@cli.command()
@click.argument("runbook", type=click.Path())
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A runbook parameter (repeatable); typed by the runbook's schema.",
)
@click.option(
    "-f",
    "--params-file",
    "files",
    multiple=True,
    metavar="FILE",
    help="YAML file of parameters (keeps lists and numbers typed).",
)
@click.option("--approve", multiple=True, metavar="STEP_ID", help="Approve this gate.")
@click.option("--yes", is_flag=True, help="Approve every gate (recorded as --yes).")
@click.option("--log-output", is_flag=True, help="Stream cell output to the terminal.")
@click.option("--kernel", default=None, help="Jupyter kernel name (default: opsbook).")
def run(
    runbook: str,
    params: tuple[str, ...],
    files: tuple[str, ...],
    approve: tuple[str, ...],
    yes: bool,
    log_output: bool,
    kernel: str | None,
) -> None:
    """Execute RUNBOOK with papermill and write an audit record.

    Example: opsbook run runbooks/pubsub-benchmark.yaml -p profile=quick --log-output
    """
    result = execute.run(
        runbook, _parse_params(params, files), _options(approve, yes, log_output, kernel)
    )
    sys.exit(result.exit_code)


@cli.command()
@click.argument("run_id")
@click.option("--approve", multiple=True, metavar="STEP_ID", help="Approve this gate.")
@click.option("--yes", is_flag=True, help="Approve every gate.")
@click.option("--log-output", is_flag=True, help="Stream cell output to the terminal.")
@click.option("--kernel", default=None, help="Jupyter kernel name.")
def resume(
    run_id: str, approve: tuple[str, ...], yes: bool, log_output: bool, kernel: str | None
) -> None:
    """Continue a stopped or failed run from where it stopped, as a new linked record.

    Example: opsbook resume 20261128T101500Z-migrate --approve approve_migration
    """
    result = execute.resume(run_id, _options(approve, yes, log_output, kernel))
    sys.exit(result.exit_code)


@cli.command()
@click.option("-n", "--limit", default=20, show_default=True, help="How many recent runs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def history(limit: int, as_json: bool) -> None:
    """Table of runs: id, runbook, status, duration, key results.

    Example: opsbook history -n 5
    """
    runs = audit.list_runs(audit_root())[-limit:]
    if as_json:
        click.echo(
            json.dumps(
                [
                    {k: r.get(k) for k in ("run_id", "status", "duration_s")}
                    | {"runbook": r["runbook"]["name"], "key_results": audit.key_results(r)}
                    for r in runs
                ],
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"opsbook runs ({audit_root()})")
    for column in ("run", "runbook", "status", "duration", "key results"):
        table.add_column(column)
    for r in runs:
        results = ", ".join(f"{k}={v}" for k, v in audit.key_results(r, 4).items())
        duration = r.get("duration_s")
        table.add_row(
            r["run_id"],
            r["runbook"]["name"],
            r.get("status", "?"),
            "" if duration is None else f"{duration:.1f}s",
            results,
        )
    Console(width=200).print(table)


@cli.command()
@click.argument("run_id")
def show(run_id: str) -> None:
    """Show one run: steps, statuses, outputs, approvals, where its files are.

    Example: opsbook show 20261128T101500Z   (a unique prefix is enough)
    """
    folder, data = audit.load_run(audit_root(), run_id)
    click.echo(
        f"{data['run_id']}  {data['runbook']['name']}  {data['status']}  "
        f"{data.get('duration_s')}s  by {data['user']}"
    )
    if data.get("resumed_from"):
        click.echo(f"  resumed from {data['resumed_from']}")
    for step in data.get("steps", []):
        click.echo(
            f"  - {step['id']}: {step.get('status')}"
            + (
                f" ({step['error']['ename']}: {step['error']['evalue']})"
                if step.get("error")
                else ""
            )
        )
        for key, value in (step.get("outputs") or {}).items():
            text = json.dumps(value, default=str)
            click.echo(f"      {key} = {text[:120] + ('…' if len(text) > 120 else '')}")
    for approval in data.get("approvals", []):
        click.echo(
            f"  approved {approval['step']} by {approval['by']} at {approval['at']} "
            f"({approval['via']})"
        )
    click.echo(f"  record: {folder}")


@cli.command()
def report() -> None:
    """Write audit/index.html listing every run with links to its reports.

    Example: opsbook report && xdg-open audit/index.html
    """
    from opsbook.report import audit_index

    click.echo(str(audit_index(audit_root())))


@cli.command()
def verify() -> None:
    """Recompute every artifact hash and the ledger chain; name every tampered record.

    Example: opsbook verify || echo "audit trail tampered"
    """
    root = audit_root()
    problems = audit.verify(root)
    runs = len(audit.read_ledger(root))
    if problems:
        for problem in problems:
            click.secho(f"✗ {problem}", fg="red")
        click.echo(f"{len(problems)} problem(s) in {runs} ledgered run(s) under {root}")
        sys.exit(execute.EXIT_TAMPERED)
    click.secho(f"✓ {runs} run(s) under {root}: every hash and the chain verify", fg="green")


def _available_domains() -> list[str]:
    found = []
    for domain in DOMAINS:
        try:
            if importlib.util.find_spec(f"opsbook.{domain}.cli") is not None:
                found.append(domain)
        except ModuleNotFoundError:
            continue
    return found


def main() -> None:
    cli(prog_name="opsbook")
