"""Bring an archived app back: move it home, re-add its workspace/config entries and
workflows, update the archive's manifest and README, one commit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsbook.archive import workspaces as ws
from opsbook.archive.apply import LOCK_COMMANDS, MANIFEST, ArchivePlan, Move, render_readme
from opsbook.archive.errors import ArchiveConflict, NotArchived
from opsbook.archive.gitutil import git, head_sha, repo_root
from opsbook.archive.txn import Transaction


@dataclass
class RestoreResult:
    """What restore did; reinstall dependencies with ``next_steps``."""

    app: str
    path: str
    from_path: str
    commit_sha: str | None
    entries_restored: list[str]
    workflows_restored: list[str]
    next_steps: list[str]


def find_archived(
    repo: Path, app: str, archive_root: str = "archive"
) -> tuple[Path, dict[str, Any]]:
    """(manifest path, entry) of the most recent archive holding ``app``."""
    hits: list[tuple[str, Path, dict[str, Any]]] = []
    known: list[str] = []
    root = repo / archive_root
    for manifest in sorted(root.glob(f"*/{MANIFEST}")) if root.is_dir() else []:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        for entry in data.get("apps", []):
            known.append(entry["app"])
            if ws.norm(app) in (entry["app"], entry["src"], entry.get("package"), entry["dst"]):
                hits.append((data.get("created", ""), manifest, entry))
    if not hits:
        raise NotArchived(
            f"no archived app named {app!r} under {archive_root}/",
            hint=f"archived apps: {', '.join(sorted(known)) or 'none'}",
        )
    _, manifest, entry = max(hits, key=lambda h: h[0])
    return manifest, entry


def _edit(d: dict[str, Any]) -> ws.Edit:
    return ws.Edit(**d)


def _rewrite_archive(tx: Transaction, repo: Path, manifest: Path, app: str) -> list[str]:
    """Drop ``app`` from the manifest/README; remove both when the archive is empty."""
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["apps"] = [e for e in data["apps"] if e["app"] != app]
    folder = manifest.parent
    if not data["apps"]:
        for name in (MANIFEST, "README.md"):
            if (folder / name).exists():
                git(
                    repo,
                    [
                        "rm",
                        "-q",
                        "--cached",
                        "--ignore-unmatch",
                        "--",
                        str((folder / name).relative_to(repo)),
                    ],
                )
                (folder / name).unlink()
        return [str(folder.relative_to(repo))]
    moves = []
    for e in data["apps"]:
        e2 = {k: v for k, v in e.items() if k not in ("edits", "workflows")}
        moves.append(
            Move(
                **e2,
                edits=[_edit(x) for x in e["edits"]],
                workflows=[tuple(w) for w in e["workflows"]],
            )
        )  # type: ignore[misc]
    plan = ArchivePlan(
        repo,
        data["archive_dir"],
        moves,
        {},
        data.get("lockfiles", []),
        {},
        data.get("apps_dirs", ["apps"]),
        0,
        0,
        0.0,
    )
    tx.write(folder / "README.md", render_readme(plan))
    tx.write(manifest, json.dumps(data, indent=2) + "\n")
    return [str(folder.relative_to(repo))]


def _drop_empty_dirs(folder: Path, stop: Path) -> None:
    """Remove empty folders left in the archive (bottom-up), up to ``stop`` included."""
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
    while folder.is_dir() and not any(folder.iterdir()) and stop in (folder, *folder.parents):
        folder.rmdir()
        folder = folder.parent


def restore(
    repo_path: str | Path,
    app: str,
    archive_root: str = "archive",
    commit: bool = True,
) -> RestoreResult:
    """Move the archived ``app`` back to where it was and re-add its entries.

    All or nothing, like apply. Dependencies are not reinstalled: see ``next_steps``.

    >>> restore("/path/to/monorepo", "flan-router")  # doctest: +SKIP
    """
    repo = repo_root(repo_path)
    manifest, entry = find_archived(repo, app, archive_root)
    src, dst = entry["src"], entry["dst"]
    if (repo / src).exists():
        raise ArchiveConflict(
            f"{src} already exists, cannot restore {entry['app']} over it",
            hint=f"move or remove {src} first",
        )
    if not (repo / dst).is_dir():
        raise NotArchived(
            f"{dst} is listed in {manifest.name} but missing", hint="check git log for who moved it"
        )
    lockfiles = json.loads(manifest.read_text(encoding="utf-8")).get("lockfiles", [])
    steps = [LOCK_COMMANDS[lf] for lf in lockfiles if lf in LOCK_COMMANDS]
    restored: list[str] = []
    workflows: list[str] = []
    with Transaction(repo, f"restore of {entry['app']}") as tx:
        tx.rename(repo / dst, repo / src)
        for w_src, w_dst in entry.get("workflows", []):
            if (repo / w_dst).exists() and not (repo / w_src).exists():
                tx.rename(repo / w_dst, repo / w_src)
                workflows.append(w_src)
        for e in reversed(entry.get("edits", [])):
            if ws.revert_edit(repo, _edit(e)):
                restored.append(f"{e['file']}: {e['value']}")
        paths = [src, dst, *workflows, *(w for _, w in entry.get("workflows", []))]
        paths += sorted({e["file"] for e in entry.get("edits", [])})
        paths += _rewrite_archive(tx, repo, manifest, entry["app"])
        git(repo, ["add", "-A", "--", *paths])
        sha = None
        if commit:
            git(
                repo,
                [
                    "commit",
                    "-q",
                    "-m",
                    f"archive: restore {entry['app']} to {src}\n\n"
                    f"Moved back from {dst}; workspace entries and workflows re-added.\n",
                ],
            )
            sha = head_sha(repo)
    _drop_empty_dirs(manifest.parent, repo / archive_root)
    return RestoreResult(
        entry["app"],
        src,
        dst,
        sha,
        restored,
        workflows,
        steps or ["reinstall the app's dependencies"],
    )
