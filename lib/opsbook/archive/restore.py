"""Bring an archived app back: move it home, re-add its workspace/config entries and
workflows, update the archive's manifest and README, one commit."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from opsbook.actions import recorded
from opsbook.archive import workspaces as ws
from opsbook.archive.apply import LOCK_COMMANDS, MANIFEST, Move, render_readme
from opsbook.archive.errors import ArchiveConflict, NotArchived, UnsafePath
from opsbook.archive.gitutil import git, head_sha, repo_root
from opsbook.archive.paths import contained, is_within
from opsbook.archive.txn import Transaction
from opsbook.errors import ConfigError


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


EDIT_KEYS = {f.name for f in fields(ws.Edit)}


def _manifests(repo: Path, archive_root: str) -> list[tuple[str, Path]]:
    """(relative path, path) of every ``archive.json`` one folder below ``archive_root``."""
    root = contained(repo, ws.norm(archive_root), "archive_root")
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(os.scandir(root), key=lambda e: e.name):
        rel = f"{ws.norm(archive_root)}/{folder.name}/{MANIFEST}"
        if folder.is_dir(follow_symlinks=True) and (root / folder.name / MANIFEST).exists():
            found.append((rel, contained(repo, rel, "archive manifest")))
    return found


def _check_entry(repo: Path, manifest_rel: str, index: int, entry: object) -> dict[str, Any]:
    """Every path of one manifest entry, contained in the repository, before anything runs.

    ``dst`` must lie in the manifest's own folder and ``src`` outside it; config edits must
    be of a kind restore knows. Raises :class:`UnsafePath` or :class:`ConfigError`.
    """
    where = f"{manifest_rel} apps[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("app"), str):
        raise ConfigError(f"{where} is not an archived-app entry", hint="restore it by hand")
    folder = manifest_rel.rsplit("/", 1)[0]
    for key in ("src", "dst"):
        contained(repo, entry.get(key), f"{where}.{key}")
    src, dst = ws.norm(entry["src"]), ws.norm(entry["dst"])
    if not is_within(dst, folder) or dst == folder or is_within(src, folder) or src in ("", "."):
        raise UnsafePath(
            f"{where} moves {dst!r} -> {src!r}: an archived app must come from {folder}/ and go "
            "back outside it; refused, nothing was touched",
            hint="the manifest was edited by hand: check it against git log",
        )
    for i, pair in enumerate(entry.get("workflows", [])):
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise ConfigError(f"{where}.workflows[{i}] is not a [from, to] pair")
        contained(repo, pair[0], f"{where}.workflows[{i}][0]")
        contained(repo, pair[1], f"{where}.workflows[{i}][1]")
    for i, edit in enumerate(entry.get("edits", [])):
        if (
            not isinstance(edit, dict)
            or set(edit) != EDIT_KEYS
            or edit.get("kind") not in ws.EDIT_KINDS
            or not all(isinstance(p, str) for p in edit.get("path") or [None])
        ):
            raise ConfigError(
                f"{where}.edits[{i}] is not an edit restore knows; nothing was touched",
                hint="the manifest was edited by hand: check it against git log",
            )
        contained(repo, edit.get("file"), f"{where}.edits[{i}].file")
    return entry


def find_archived(
    repo: Path, app: str, archive_root: str = "archive"
) -> tuple[Path, dict[str, Any]]:
    """(manifest path, entry) of the most recent archive holding ``app``.

    Every manifest under ``archive_root`` is read (an archive folder may hold several
    batches); the entry found is checked with :func:`_check_entry` before it is returned.
    """
    hits: list[tuple[str, Path, str, int, dict[str, Any]]] = []
    known: list[str] = []
    for rel, manifest in _manifests(repo, archive_root):
        data = json.loads(manifest.read_text(encoding="utf-8"))
        for i, entry in enumerate(data.get("apps", []) if isinstance(data, dict) else []):
            if not isinstance(entry, dict):
                continue
            known.append(str(entry.get("app")))
            names = (entry.get("app"), entry.get("src"), entry.get("package"), entry.get("dst"))
            if ws.norm(app) in names:
                when = entry.get("archived_at") or data.get("created", "")
                hits.append((str(when), manifest, rel, i, entry))
    if not hits:
        raise NotArchived(
            f"no archived app named {app!r} under {archive_root}/",
            hint=f"archived apps: {', '.join(sorted(known)) or 'none'}",
        )
    _, manifest, rel, index, entry = max(hits, key=lambda h: h[0])
    return manifest, _check_entry(repo, rel, index, entry)


def _rewrite_archive(tx: Transaction, repo: Path, manifest: Path, app: str) -> list[str]:
    """Drop ``app`` from the manifest/README; remove both when the archive is empty."""
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["apps"] = [e for e in data["apps"] if e["app"] != app]
    folder = manifest.parent
    if not data["apps"]:
        for name in (MANIFEST, "README.md"):
            if (folder / name).exists():
                rel = (folder / name).relative_to(repo).as_posix()
                git(repo, ["rm", "-q", "--cached", "--ignore-unmatch", "--", rel])
                (folder / name).unlink()
        return [folder.relative_to(repo).as_posix()]
    moves = [Move.from_entry(e) for e in data["apps"]]
    readme = render_readme(
        folder.relative_to(repo).as_posix(),
        moves,
        data.get("apps_dirs", ["apps"]),
        data.get("lockfiles", []),
    )
    tx.write(folder / "README.md", readme)
    tx.write(manifest, json.dumps(data, indent=2) + "\n")
    return [folder.relative_to(repo).as_posix()]


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


@recorded("archive.restore")
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
            if ws.revert_edit(repo, ws.Edit(**e)):
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
    _drop_empty_dirs(manifest.parent, repo / ws.norm(archive_root))
    return RestoreResult(
        entry["app"],
        src,
        dst,
        sha,
        restored,
        workflows,
        steps or ["reinstall the app's dependencies"],
    )
