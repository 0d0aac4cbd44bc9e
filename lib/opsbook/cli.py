"""The ``opsbook`` command line: thin wrappers over the library.

Every command turns an :class:`~opsbook.errors.OpsbookError` into a clean message and
the documented exit code (:class:`opsbook.errors.ExitCode`).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import click

from opsbook import audit, execute
from opsbook import runbook as rbmod
from opsbook.clikit import OpsbookGroup
from opsbook.errors import ConfigError, ExitCode, OpsbookError
from opsbook.ledger_cli import cli as ledger_cli
from opsbook.runrecord import ActionRecord, AnyRecord, AttachmentRecord, RunRecord, jsonable
from opsbook.settings import audit_root

#: Entry-point group through which a package adds a command group (``opsbook loki ...``);
#: opsbook's own domains register in pyproject.toml ``[project.entry-points."opsbook.cli"]``.
PLUGIN_GROUP = "opsbook.cli"


class _Group(OpsbookGroup):
    """Turns OpsbookError into a message and exit code instead of a traceback.

    Command groups registered under :data:`PLUGIN_GROUP` load on first use, so
    ``opsbook --help`` and the runner do not pay for importing Chroma or Redis clients.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        plugin = _plugins().get(cmd_name)
        if command is None and plugin is not None:
            group = plugin.load()
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
      opsbook keygen && opsbook verify --require-signed --checkpoint witness.log
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
            codes.add(ExitCode.INVALID_RUNBOOK)
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

    Example: opsbook resume 20261128T101500Z-p0 --approve migration.approve
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
    runs = audit.team_records(audit_root())[-limit:]
    if as_json:
        click.echo(json.dumps([_history_row(r) for r in runs], indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"opsbook runs and actions ({audit_root()})")
    for column in ("record", "kind", "runbook / action", "status", "by", "duration", "results"):
        table.add_column(column)
    for record in runs:
        results = ", ".join(f"{k}={v}" for k, v in list(_results(record).items())[:4])
        if record.remote:
            results = f"(on {record.remote}) " + results
        duration = record.duration_s
        table.add_row(
            record.run_id,
            record.kind.value,
            record.title,
            record.status.value,
            record.user,
            "" if duration is None else f"{duration:.1f}s",
            results,
        )
    Console(width=220).print(table)


def _results(record: AnyRecord) -> dict[str, Any]:
    """What `opsbook history` shows of a record's results."""
    if isinstance(record, ActionRecord):
        results: dict[str, Any] = {
            k: v for k, v in record.summary.items() if isinstance(v, bool | int | float | str)
        }
        results["origin"] = record.origin.kind
        return results
    if isinstance(record, AttachmentRecord):
        return {"actions": len(record.actions)}
    return record.key_results()  # a remote record: what its entry says


def _history_row(record: AnyRecord) -> dict[str, Any]:
    """One record for `opsbook history --json`: a runbook run, an action or an attachment."""
    return {
        "run_id": record.run_id,
        "kind": record.kind.value,
        "name": record.title,
        "runbook": record.runbook_name,
        "action": record.action if isinstance(record, ActionRecord) else None,
        "status": record.status.value,
        "user": record.user,
        "duration_s": record.duration_s,
        "key_results": _results(record),
    }


@cli.command()
@click.argument("run_id")
def show(run_id: str) -> None:
    """Show one run: steps, statuses, outputs, approvals, where its files are.

    Example: opsbook show 20261128T101500Z   (a unique prefix is enough)
    """
    try:
        folder, record = audit.load_record(audit_root(), run_id)
    except ConfigError:
        remote = [
            r for r in audit.team_records(audit_root()) if r.remote and r.run_id.startswith(run_id)
        ]
        if len(remote) != 1:
            raise
        (found,) = remote
        click.echo(
            f"{found.run_id}  {found.title}  {found.status.value}  "
            f"{found.duration_s}s  by {found.user}  (sealed on {found.remote})"
        )
        for key, value in found.key_results().items():
            click.echo(f"      {key} = {value}")
        click.echo(f"  record: on {found.remote} (its artifact hashes are in the ledger)")
        return
    if not isinstance(record, RunRecord):
        _show_record(folder, record)
        return
    click.echo(
        f"{record.run_id}  {record.title}  {record.status.value}  "
        f"{record.duration_s}s  by {record.user}"
    )
    if record.resumed_from:
        click.echo(f"  resumed from {record.resumed_from}")
    for step in record.steps:
        click.echo(
            f"  - {step.id}: {step.status.value if step.status else None}"
            + (f" ({step.error.ename}: {step.error.evalue})" if step.error else "")
        )
        for key, value in step.outputs.items():
            text = json.dumps(value, default=str)
            click.echo(f"      {key} = {text[:120] + ('…' if len(text) > 120 else '')}")
    for approval in record.approvals:
        click.echo(f"  approved {approval.step} by {approval.by} at {approval.at} ({approval.via})")
    click.echo(f"  record: {folder}")
    click.echo(f"  ledger: {_seal_state(folder.parent, record.run_id)}")


def _seal_state(root: Path, run_id: str) -> str:
    """Where the run stands in the ledger: signed by whom, unsigned, or not sealed."""
    from opsbook import runlock

    for index, entry in enumerate(audit.read_ledger(root), start=1):
        if entry.get("run_id") == run_id:
            key = entry.get("key") or audit.UNSIGNED
            signed = "unsigned" if key == audit.UNSIGNED else f"signed by {key}"
            problems = audit.verify_one(root, run_id)
            state = "verifies" if not problems else f"{len(problems)} problem(s): opsbook verify"
            return f"entry {index}, {signed}, {state}"
    lock = runlock.state(root, run_id)
    return f"not sealed: {lock.state} ({lock.detail})"


def _show_record(folder: Path, record: AnyRecord) -> None:
    from opsbook.attach import attachments_of

    click.echo(
        f"{record.run_id}  {record.title}  {record.status.value}  by {record.user} "
        f"at {record.started_at}"
    )
    for key in ("target", "origin", "approval", "error", "parameters", "summary", "actions"):
        value = getattr(record, key, None)
        if value is not None:
            text = json.dumps(jsonable(value), default=str)
            click.echo(f"  {key}: {text[:400] + ('…' if len(text) > 400 else '')}")
    if isinstance(record, ActionRecord):
        for attached in attachments_of(audit_root(), record.run_id):
            click.echo(f"  notebook attached: {attached}")
    click.echo(f"  record: {folder}")


@cli.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option(
    "--action",
    "action_ids",
    multiple=True,
    metavar="ACTION_ID",
    help="Attach to this action record (default: the actions the notebook's outputs name).",
)
def attach(notebook: str, action_ids: tuple[str, ...]) -> None:
    """Seal a saved NOTEBOOK (with its outputs) into the audit trail beside its actions.

    Example: opsbook attach notebooks/chroma_to_qdrant.ipynb
    """
    from opsbook.attach import attach as attach_notebook
    from opsbook.report import audit_index

    record_id = attach_notebook(notebook, list(action_ids) or None)
    audit_index(audit_root())
    click.echo(f"attached {notebook} as {record_id} under {audit_root()}")


@cli.command()
def report() -> None:
    """Write audit/index.html listing every run with links to its reports.

    Example: opsbook report && xdg-open audit/index.html
    """
    from opsbook.report import audit_index

    click.echo(str(audit_index(audit_root())))


@cli.command()
@click.option(
    "--require-signed", is_flag=True, help="Fail on any unsigned entry (for CI and auditors)."
)
@click.option("--strict", is_flag=True, help="Fail on records still running, too.")
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    metavar="LINE|FILE",
    help="A checkpoint line or a file of them (repeatable); $OPSBOOK_WITNESS is read too.",
)
@click.option(
    "--require-artifacts",
    is_flag=True,
    help="With a shared ledger: fail on records whose files are on another machine.",
)
def verify(
    require_signed: bool, strict: bool, checkpoints: tuple[str, ...], require_artifacts: bool
) -> None:
    """Check every hash, the ledger chain, every signature and the given checkpoints.

    Names every tampered, missing, unsigned, unledgered (running, interrupted, unknown)
    or rolled-back record. Exit 5 on any problem, 2 on bad input (malformed checkpoint,
    unreadable trusted-keys file).

    Example: opsbook verify --require-signed --checkpoint witness.log
    """
    from opsbook import checkpoint as cpmod

    root = audit_root()
    held = [cp for value in checkpoints for cp in cpmod.load(value)]
    witness = cpmod.witness_path(root)
    if witness is not None and witness.is_file() and witness.stat().st_size:
        held += cpmod.load(str(witness))
    result = audit.verify_trail(
        root,
        require_signed=require_signed,
        strict=strict,
        checkpoints=held,
        require_artifacts=require_artifacts,
    )
    for note in result.notes:
        click.echo(f"· {note}")
    signed = f"{result.signed} signed, {len(result.unsigned)} unsigned"
    if result.remote:
        signed += f", {len(result.remote)} with files on other machines"
    held_text = f", {result.checkpoints} checkpoint(s)" if result.checkpoints else ""
    if result.problems:
        for problem in result.problems:
            click.secho(f"✗ {problem}", fg="red")
        click.echo(
            f"{len(result.problems)} problem(s) in {result.entries} ledgered run(s) "
            f"({signed}{held_text}) under {root}"
        )
        sys.exit(ExitCode.TAMPERED)
    click.secho(
        f"✓ {result.entries} run(s) under {root} ({signed}{held_text}): every hash, "
        "signature and the chain verify",
        fg="green",
    )


@cli.command()
@click.argument("run_id")
def recover(run_id: str) -> None:
    """Seal an interrupted run (its runner was killed) as failed, redacting it first.

    Example: opsbook verify   # names interrupted runs;  opsbook recover 20261130T0400
    """
    folder, record = execute.recover(run_id)
    click.echo(f"sealed {record.run_id} as failed (interrupted); record: {folder}")


@cli.command()
@click.option("--witness", type=click.Path(dir_okay=False), help="Also append it to FILE.")
def checkpoint(witness: str | None) -> None:
    """Print a signed checkpoint of the ledger head (one line) to keep outside the folder.

    Keep it in a CI log, a git commit or a witness file; `opsbook verify --checkpoint`
    then detects a truncated or rewritten ledger. $OPSBOOK_WITNESS is appended too.

    Example: opsbook checkpoint >> ~/opsbook-witness.log
    """
    from opsbook import checkpoint as cpmod
    from opsbook.signing import signer_from_env

    root = audit_root()
    signer = signer_from_env(root)
    targets = [p for p in (cpmod.witness_path(root),) if p is not None]
    if witness:
        path = Path(witness).expanduser().resolve()
        from opsbook.signing import refuse_inside_root

        refuse_inside_root(path, root, "witness file")
        targets.append(path)
    cp = cpmod.current(root, signer)
    for path in dict.fromkeys(targets):
        cpmod.append(path, cp)
    click.echo(cp.line)


@cli.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Private key file (default: $OPSBOOK_SIGNING_KEY or ~/.config/opsbook/signing-key.pem).",
)
@click.option("--name", default="", help="A label for the key in the trusted-keys file.")
@click.option(
    "--trusted",
    type=click.Path(dir_okay=False),
    default=None,
    help="Trusted-keys file (default: $OPSBOOK_TRUSTED_KEYS or audit-keys/trusted.json).",
)
def keygen(out: str | None, name: str, trusted: str | None) -> None:
    """Create an Ed25519 signing key and add its public key to the trusted keys.

    The private key must stay outside the audit folder; commit the trusted-keys file
    (or keep it where only operators write). Rotation: make a new key, point
    OPSBOOK_SIGNING_KEY at it, then `opsbook keys retire OLD_FINGERPRINT`.

    Example: opsbook keygen --out ~/.config/opsbook/ci.pem --name ci
    """
    import os

    from opsbook import signing

    default = os.environ.get(signing.KEY_ENV) or "~/.config/opsbook/signing-key.pem"
    path = Path(out or default).expanduser().resolve()
    signing.refuse_inside_root(path, audit_root(), "signing key")
    trusted_path = Path(trusted).expanduser().resolve() if trusted else None
    if trusted_path:
        signing.refuse_inside_root(trusted_path, audit_root(), "trusted-keys file")
    signer, trust = signing.keygen(path, trusted_path, name=name)
    click.echo(f"{signer.fingerprint}\n  private key: {path} (keep it secret, outside the audit)")
    click.echo(f"  trusted-keys file: {trust.path}")
    click.echo(f"  sign records with: export {signing.KEY_ENV}={path}")


@cli.group()
def keys() -> None:
    """List, retire (rotation) or revoke trusted signing keys.

    Example: opsbook keys retire ed25519:3f2a...   (old signatures stay valid)
    """


@keys.command("list")
def keys_list() -> None:
    """Every trusted key with its state."""
    from opsbook import signing

    trust = signing.TrustStore.load()
    click.echo(f"trusted-keys file: {trust.path}")
    for key in trust.keys.values():
        state = (
            f"revoked {key.revoked_at}"
            if key.revoked_at
            else f"expires {key.expires_at}"
            if key.expires_at
            else "active"
        )
        click.echo(f"  {key.fingerprint}  {key.name or '-'}  added {key.added_at}  {state}")


@keys.command("retire")
@click.argument("fingerprint")
def keys_retire(fingerprint: str) -> None:
    """Expire a key now: signatures it made before stay valid, later ones fail."""
    from opsbook import signing

    key = signing.retire(fingerprint)
    click.echo(f"{key.fingerprint} expires at {key.expires_at}")


@keys.command("revoke")
@click.argument("fingerprint")
@click.option("--reason", default="", help="Why (recorded in the trusted-keys file).")
def keys_revoke(fingerprint: str, reason: str) -> None:
    """Revoke a compromised key: every signature it ever made fails verification."""
    from opsbook import signing

    key = signing.retire(fingerprint, revoke=True, reason=reason)
    click.echo(f"{key.fingerprint} revoked at {key.revoked_at}")


@cli.group()
def schema() -> None:
    """JSON Schemas of opsbook's files, for tools that read them.

    Example: opsbook schema run-record > run-record.schema.json
    """


@schema.command("run-record")
def schema_run_record() -> None:
    """The JSON Schema of run.json (runs, action records, attachments).

    The same file is committed as docs/run-record.schema.json.
    """
    from opsbook import runrecord

    click.echo(runrecord.json_schema_text(), nl=False)


cli.add_command(ledger_cli)


def _plugins() -> dict[str, EntryPoint]:
    """Command groups registered under :data:`PLUGIN_GROUP`, by name (nothing imported)."""
    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}


def main() -> None:
    from opsbook import actions

    actions.mark_cli(["opsbook", *sys.argv[1:]])  # changes made by commands are `cli` actions
    cli(prog_name="opsbook")
