"""``opsbook archive ...``: demo fixtures, a quick audit table, and restore."""

from __future__ import annotations

import json
from pathlib import Path

import click

from opsbook.clikit import OpsbookGroup

cli = OpsbookGroup(
    name="archive",
    help="Archive audit: find experimental and dead apps in a monorepo, archive, restore.",
)


@cli.command("fixture")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, help="random seed for file contents")
@click.option("--large", is_flag=True, help="generate the big benchmark monorepo instead")
@click.option("--apps", default=200, show_default=True, help="apps in the --large repo")
@click.option("--files", default=50_000, show_default=True, help="tracked files (--large)")
def fixture_cmd(path: Path, seed: int, large: bool, apps: int, files: int) -> None:
    """Generate the 14-app demo monorepo (or --large) at PATH, a new or empty folder.

    Example: opsbook archive fixture /tmp/acme && opsbook archive audit /tmp/acme --now 2026-11-20
    """
    from opsbook.archive.fixture import DEMO_NOW, make_demo_monorepo, make_large_monorepo

    if large:
        repo = make_large_monorepo(path, apps=apps, files=files, seed=seed)
    else:
        repo = make_demo_monorepo(path, seed=seed)
    click.echo(f"{repo}  (audit it with now={DEMO_NOW.date()} for stable results)")


@cli.command("audit")
@click.argument("repo", type=click.Path(path_type=Path))
@click.option(
    "--apps-dir",
    "apps_dirs",
    multiple=True,
    default=["apps"],
    show_default=True,
    help="folder whose sub-folders are apps (repeatable)",
)
@click.option("--staleness-days", default=90, show_default=True)
@click.option("--now", default="", help="ISO date for the staleness clock (default today)")
@click.option("--as-json", is_flag=True, help="print the summary as JSON")
def audit_cmd(
    repo: Path, apps_dirs: tuple[str, ...], staleness_days: int, now: str, as_json: bool
) -> None:
    """Read-only audit: one row per app with its decision and reasons.

    Example: opsbook archive audit ../monorepo --staleness-days 120
    """
    from opsbook.archive.classify import classify
    from opsbook.archive.inventory import inventory
    from opsbook.archive.session import parse_now

    classification = classify(inventory(repo, list(apps_dirs), staleness_days, now=parse_now(now)))
    if as_json:
        click.echo(json.dumps(classification.summary(), indent=2))
        return
    click.echo(classification.statement + "\n")
    table = classification.frame()
    table["rule"] = table["rule"].str.split(":").str[0]
    columns = ["app", "status", "decision", "confidence", "rule", "monthly_usd", "size_mb"]
    click.echo(table[columns].to_string(index=False))
    s = classification.summary()
    click.echo(
        f"\napps {s['apps_before']} -> {s['apps_after']}; archive {s['candidates']}; "
        f"blocked {s['blocked']}; ~${s['monthly_saving_usd']}/month"
    )


@cli.command("restore")
@click.argument("repo", type=click.Path(path_type=Path))
@click.argument("app")
@click.option(
    "--archive-root",
    default="archive",
    show_default=True,
    help="folder holding the dated archive folders",
)
@click.option("--no-commit", is_flag=True, help="leave the restore staged, do not commit")
def restore_cmd(repo: Path, app: str, archive_root: str, no_commit: bool) -> None:
    """Bring the archived APP back to where it was and re-add its workspace entries.

    Example: opsbook archive restore ../monorepo flan-router
    """
    from opsbook.archive.restore import restore

    result = restore(repo, app, archive_root=archive_root, commit=not no_commit)
    click.echo(
        f"restored {result.app}: {result.from_path} -> {result.path}"
        + (f" in {result.commit_sha[:10]}" if result.commit_sha else " (staged)")
    )
    for entry in result.entries_restored:
        click.echo(f"  re-added {entry}")
    click.echo(f"next: {'; '.join(result.next_steps)}")
