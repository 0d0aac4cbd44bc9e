"""``opsbook migrate ...``: demo store, dry run, live run, rollback, cleanup, restore."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from opsbook.clikit import OpsbookGroup
from opsbook.errors import ExitCode

cli = OpsbookGroup(
    name="migrate",
    help="Chroma → Qdrant migration with backup, verification and an atomic alias cutover.",
)


def _target_options(f: Any) -> Any:
    for opt in reversed(
        [
            click.option(
                "--target",
                default="",
                help="local | edge | server (default: server if --qdrant-url, else local)",
            ),
            click.option(
                "--qdrant-path", default="", help="embedded target folder (default WORK_DIR/qdrant)"
            ),
            click.option("--qdrant-url", default="", help="Qdrant server URL"),
            click.option(
                "--api-key-env",
                "qdrant_api_key_env",
                default="QDRANT_API_KEY",
                show_default=True,
                help="NAME of the env var holding the API key",
            ),
            click.option("--work-dir", required=True, help="scratch folder (checkpoints, journal)"),
        ]
    ):
        f = opt(f)
    return f


def _source_options(f: Any) -> Any:
    for opt in reversed(
        [
            click.option(
                "--chroma-path", default="", help="Chroma directory (opened through a copy)"
            ),
            click.option("--chroma-url", default="", help="Chroma server URL"),
            click.option("--collection", "collections", multiple=True, help="repeat; default all"),
            click.option("--batch-size", default=100, show_default=True),
        ]
    ):
        f = opt(f)
    return f


def _config(**kw: Any) -> dict:
    kw["collections"] = list(kw.get("collections") or []) or None
    return kw


@cli.command("fixture")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--docs", default=14365, show_default=True, help="documents over 3 collections")
@click.option("--dim", default=384, show_default=True)
@click.option("--seed", default=0, show_default=True)
def fixture_cmd(path: Path, docs: int, dim: int, seed: int) -> None:
    """Generate the demo Chroma store at PATH (a new or empty folder).

    Example: opsbook migrate fixture /tmp/chroma --docs 1500
    """
    from opsbook.migrate import make_demo_chroma

    click.echo(str(make_demo_chroma(path, n_docs=docs, dim=dim, seed=seed)))


@cli.command("plan")
@_source_options
@_target_options
def plan_cmd(**kw: Any) -> None:
    """Dry run: read and validate everything, write nothing to Qdrant.

    Example: opsbook migrate plan --chroma-path /tmp/chroma --work-dir /tmp/work
    """
    from opsbook.migrate import plan

    p = plan(**_config(**kw))
    click.echo(p.table().drop(columns=["findings"]).to_string(index=False))
    click.echo(
        f"{p.total_records} records, estimated {p.estimated_s:.0f}s, "
        f"{'valid' if p.ok else 'INVALID: see the findings'}"
    )
    click.echo(f"estimate: {p.estimate_basis}")
    raise SystemExit(ExitCode.OK if p.ok else ExitCode.FAILED)


@cli.command("run")
@_source_options
@_target_options
@click.option("--resume", is_flag=True, help="continue from the checkpoints in WORK_DIR")
@click.option("--no-cutover", is_flag=True, help="verify but leave the aliases alone")
@click.option("--no-backup", is_flag=True, help="skip the source backup")
@click.option(
    "--recall-threshold",
    default=0.99,
    show_default=True,
    help="ANN recall@10 below this is reported as a warning (never blocks)",
)
@click.option(
    "--sample-queries",
    default=1000,
    show_default=True,
    help="queries checked against exact search per collection (0 = not measured)",
)
@click.option(
    "--upload-workers",
    default=1,
    show_default=True,
    help="parallel upserts for a server target (embedded targets write serially)",
)
@click.option(
    "--read-page",
    default=2000,
    show_default=True,
    help="records per source read (independent of the write batch)",
)
@click.option(
    "--allow-unverified-search",
    is_flag=True,
    help="cut over even with --sample-queries 0",
)
def run_cmd(resume: bool, no_cutover: bool, no_backup: bool, **kw: Any) -> None:
    """Back up, migrate into staging collections, verify every record, switch aliases.

    Example: opsbook migrate run --chroma-path /tmp/chroma --work-dir /tmp/work
    """
    from opsbook.migrate import migrate

    r = migrate(
        dry_run=False,
        resume=resume,
        cutover=not no_cutover,
        backup=not no_backup,
        progress=True,
        **_config(**kw),
    )
    click.echo(r.table().to_string(index=False))
    click.echo(
        f"{r.total_records} records in {r.duration_s:.1f}s ({r.records_per_s:,.0f} rec/s "
        f"written); integrity {'OK' if r.integrity_ok else 'FAILED'}; "
        f"cutover {'done' if r.cutover_done else 'not done'}"
        + ("" if r.search_verified else "; search NOT verified (sample_queries=0)")
    )
    refused = not no_cutover and not r.cutover_allowed  # e.g. search not verified
    raise SystemExit(ExitCode.FAILED if not r.integrity_ok or refused else ExitCode.OK)


@cli.command("rollback")
@_target_options
def rollback_cmd(**kw: Any) -> None:
    """Switch the aliases of the last cutover back (collections are kept).

    Example: opsbook migrate rollback --work-dir /tmp/work
    """
    from opsbook.migrate import rollback

    click.echo(json.dumps(rollback(**kw), indent=1))


@cli.command("cleanup")
@_target_options
def cleanup_cmd(**kw: Any) -> None:
    """Delete the collections a cutover replaced and no alias uses any more.

    Example: opsbook migrate cleanup --work-dir /tmp/work
    """
    from opsbook.migrate import cleanup

    click.echo(json.dumps(cleanup(**kw), indent=1))


@cli.command("restore")
@click.argument("backup", type=click.Path(path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
def restore_cmd(backup: Path, dest: Path) -> None:
    """Restore a backup folder (directory copy or Parquet export) into a new Chroma folder.

    Example: opsbook migrate restore /tmp/work/backup/chroma-dir-20261128T120000 /tmp/restored
    """
    from opsbook.migrate import restore

    click.echo(str(restore(backup, dest)))
