"""Plan, apply and verify an archive: move candidates into ``archive/<date>-...``, drop
their workspace/config entries, write a README with restore commands, commit once."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from opsbook.actions import recorded
from opsbook.archive import workspaces as ws
from opsbook.archive.classify import Classification
from opsbook.archive.errors import ArchiveConflict, VerifyFailed
from opsbook.archive.gitutil import git, head_sha, tracked_files
from opsbook.archive.inventory import LOCKFILES, disk_usage, name_pattern, path_pattern
from opsbook.archive.paths import contained, is_within
from opsbook.archive.txn import Transaction
from opsbook.errors import ConfigError

MANIFEST = "archive.json"
WORKFLOWS_SUBDIR = "_workflows"
LOCK_COMMANDS = {
    "pnpm-lock.yaml": "pnpm install",
    "package-lock.json": "npm install",
    "yarn.lock": "yarn install",
    "bun.lockb": "bun install",
    "uv.lock": "uv lock",
    "poetry.lock": "poetry lock --no-update",
    "Pipfile.lock": "pipenv lock",
}


@dataclass
class Move:
    """One app to archive and what the README says about it."""

    app: str
    src: str
    dst: str
    package: str | None
    status: str
    reasons: list[str]
    last_commit: str | None
    last_author: str | None
    total_bytes: int
    deps_bytes: int
    deploy_configs: list[str]
    monthly_cost: float
    edits: list[ws.Edit] = field(default_factory=list)
    workflows: list[tuple[str, str]] = field(default_factory=list)
    archived_at: str = ""

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Move:
        """A move read back from an ``archive.json`` entry (unknown keys ignored)."""
        known = {f.name for f in fields(cls)} - {"edits", "workflows"}
        return cls(
            **{k: v for k, v in entry.items() if k in known},
            edits=[ws.Edit(**e) for e in entry.get("edits", [])],
            workflows=[(w[0], w[1]) for w in entry.get("workflows", [])],
        )


@dataclass
class ArchivePlan:
    """Everything :func:`apply_archive` will do, reviewable before anything changes."""

    repo: Path
    archive_dir: str
    moves: list[Move]
    shared_workflows: dict[str, list[str]]
    lockfiles: list[str]
    blocked: dict[str, list[str]]
    apps_dirs: list[str]
    apps_before: int
    bytes_reclaimable: int
    monthly_saving_usd: float
    readme: str = ""
    commit_message: str = ""
    earlier: list[Move] = field(default_factory=list)  # already in archive_dir (earlier batches)

    @property
    def apps_after(self) -> int:
        return self.apps_before - len(self.moves)

    def frame(self) -> pd.DataFrame:
        """One row per app to archive: from, to, and what changes with it."""
        return pd.DataFrame(
            [
                {
                    "app": m.app,
                    "from": m.src,
                    "to": m.dst,
                    "size_mb": round(m.total_bytes / 1e6, 3),
                    "config_edits": ", ".join(sorted({f"{e.file}" for e in m.edits})),
                    "workflows_archived": ", ".join(w for w, _ in m.workflows),
                }
                for m in self.moves
            ],
            columns=["app", "from", "to", "size_mb", "config_edits", "workflows_archived"],
        )


def check_archive_dir(repo: Path, rel: str, apps_dirs: list[str]) -> str:
    """Refuse an archive folder that is the repo root, inside ``.git``, inside an apps dir
    (or holding one), or that leads out of the repository through a symlink."""
    hint = 'use a folder of its own outside the apps dirs, e.g. "archive/{date}-experimental-apps"'
    if rel in ("", "."):
        raise ConfigError(
            "archive_dir is the repository root: the apps would be moved into the repo itself",
            hint=hint,
        )
    contained(repo, rel, "archive_dir")
    for d in apps_dirs:
        if is_within(rel, d):
            raise ConfigError(
                f"archive_dir {rel!r} is inside the apps dir {d!r}, so archived apps would "
                "still count as apps",
                hint=hint,
            )
        if is_within(d, rel):
            raise ConfigError(
                f"archive_dir {rel!r} holds the apps dir {d!r}: the archive would mix with live "
                "apps",
                hint=hint,
            )
    return rel


def _archive_dir(template: str, day: date) -> str:
    rel = ws.norm(template.replace("{date}", day.isoformat()))
    if rel.startswith("/") or ".." in rel.split("/") or os.path.isabs(template):
        raise ConfigError(
            f"archive_dir {template!r} must be a relative folder inside the repository",
            hint='use e.g. "archive/{date}-experimental-apps"',
        )
    return rel


def _earlier_moves(repo: Path, rel: str) -> list[Move]:
    """Apps already archived in ``rel`` by an earlier batch (its ``archive.json``)."""
    path = contained(repo, f"{rel}/{MANIFEST}", "archive manifest")
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Move.from_entry(e) for e in data.get("apps", [])]


def plan_archive(
    classification: Classification,
    archive_dir: str = "archive/{date}-experimental-apps",
    day: date | None = None,
) -> ArchivePlan:
    """Plan the archive of ``classification.candidates`` (blocked apps are left alone).

    ``{date}`` in ``archive_dir`` becomes ``day`` (today by default).
    """
    inv = classification.inventory
    repo = inv.repo
    rel = check_archive_dir(
        repo, _archive_dir(archive_dir, day or datetime.now(UTC).date()), inv.apps_dirs
    )
    earlier = _earlier_moves(repo, rel)
    names = classification.candidates
    apps = {inv.app(n).path: inv.app(n).package for n in names}
    edits = ws.plan_edits(repo, apps)
    for e in edits:
        contained(repo, e.file, "config file")
    folder_names = [inv.app(n).name for n in names] + [m.app for m in earlier]
    moves: list[Move] = []
    archived_paths = set(apps)
    shared = {
        wf: refs
        for wf, refs in inv.workflows.items()
        if refs and set(refs) & archived_paths and not set(refs) <= archived_paths
    }
    for n in names:
        a, v = inv.app(n), classification.verdicts[n]
        # two apps of the same name (apps/web, packages/web) get their path as folder name
        dst = f"{rel}/{a.name if folder_names.count(a.name) == 1 else a.path.replace('/', '__')}"
        if (repo / dst).exists():
            raise ArchiveConflict(
                f"{dst} already exists", hint="pick another archive_dir or restore it first"
            )
        wfs = [
            (wf, f"{rel}/{WORKFLOWS_SUBDIR}/{Path(wf).name}")
            for wf, refs in inv.workflows.items()
            if refs and set(refs) <= archived_paths and refs[0] == a.path
        ]
        moves.append(
            Move(
                a.name,
                a.path,
                dst,
                a.package,
                v.status,
                v.reasons,
                a.last_commit.date().isoformat() if a.last_commit else None,
                a.last_author,
                a.total_bytes,
                a.deps_bytes,
                a.deploy_configs,
                v.monthly_cost,
                [e for e in edits if e.app == a.path],
                wfs,
            )
        )
    plan = ArchivePlan(
        repo,
        rel,
        moves,
        shared,
        inv.lockfiles,
        classification.blocked,
        inv.apps_dirs,
        len(inv.apps),
        classification.bytes_reclaimable,
        classification.monthly_saving_usd,
        earlier=earlier,
    )
    plan.readme = render_readme(plan.archive_dir, earlier + moves, plan.apps_dirs, plan.lockfiles)
    plan.commit_message = _commit_message(plan)
    return plan


def _fmt_bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _restore_cmds(lockfiles: list[str], m: Move) -> list[str]:
    cmds = [f"opsbook archive restore . {m.app}", "# or by hand:", f"git mv {m.dst} {m.src}"]
    for e in m.edits:
        cmds.append(f"# put back in {e.file} ({'.'.join(e.path)}): {e.raw.strip()}")
    for src, dst in m.workflows:
        cmds.append(f"git mv {dst} {src}")
    cmds.extend(LOCK_COMMANDS[lf] for lf in lockfiles if lf in LOCK_COMMANDS)
    return cmds


def render_readme(
    archive_dir: str, moves: list[Move], apps_dirs: list[str], lockfiles: list[str]
) -> str:
    """The archive's README: each app, why, last commit, size, deploys, how to restore.

    ``moves`` are every app in the folder, earlier batches included.
    """
    lines = [
        f"# Archived apps ({Path(archive_dir).name})",
        "",
        f"{len(moves)} apps moved out of {', '.join(apps_dirs)} by the opsbook archive "
        "audit. Their history is intact (`git log --follow`). To undo a whole batch, "
        "`git revert` the commit that archived it; to bring back one app, use the "
        "commands under it. Dependency folders (node_modules, .venv, build output) were not "
        "kept: reinstall after restoring.",
        "",
    ]
    for m in moves:
        lines += [
            f"## {m.app}",
            "",
            f"- was: `{m.src}`" + (f" (package `{m.package}`)" if m.package else ""),
            f"- last commit: {m.last_commit or 'never'}"
            + (f" by {m.last_author}" if m.last_author else ""),
            f"- size: {_fmt_bytes(m.total_bytes)} ({_fmt_bytes(m.deps_bytes)} dependencies/build)",
            f"- deploy configs: {', '.join(m.deploy_configs) or 'none'}"
            + (f" (~${m.monthly_cost:g}/month)" if m.monthly_cost else ""),
            "- why: " + "; ".join(m.reasons),
            "- restore:",
            "",
            "  ```sh",
            *[f"  {c}" for c in _restore_cmds(lockfiles, m)],
            "  ```",
            "",
        ]
    return "\n".join(lines)


def _why(m: Move) -> str:
    """The most telling reason: a marker, else the staleness line."""
    for key in ("marker", "no commits", "named in"):
        for r in m.reasons:
            if r.startswith(key):
                return r
    return m.reasons[0] if m.reasons else ""


def _commit_message(plan: ArchivePlan) -> str:
    names = ", ".join(m.app for m in plan.moves)
    body = [
        f"- {m.app} ({m.status}, last commit {m.last_commit or 'never'}): {_why(m)}"
        for m in plan.moves
    ]
    return (
        f"archive: move {len(plan.moves)} apps to {plan.archive_dir}\n\n"
        f"Archived: {names}.\nApps: {plan.apps_before} -> {plan.apps_after}. "
        f"Roll back with `git revert` of this commit.\n\n" + "\n".join(body) + "\n"
    )


@dataclass
class ApplyResult:
    """What apply did; ``commit_sha`` is None with ``commit=False`` (changes staged)."""

    archived: list[str]
    archive_path: str
    commit_sha: str | None
    bytes_freed: int
    pruned_bytes: int
    edited_files: list[str]
    workflows_archived: list[str]
    apps_before: int
    apps_after: int


def _apps_tree_bytes(repo: Path, apps_dirs: list[str]) -> int:
    return sum(sum(disk_usage(repo / d)) for d in apps_dirs if (repo / d).is_dir())


def _dep_folders(folder: Path) -> list[Path]:
    """Top-most dependency/build folders under ``folder`` (not descending into them)."""
    found: list[Path] = []
    for root, dirs, _files in os.walk(folder):
        keep = []
        for d in dirs:
            if d in ws.DEP_DIRS:
                found.append(Path(root) / d)
            elif d != ".git":
                keep.append(d)
        dirs[:] = keep
    return found


def _manifest_entry(m: Move) -> dict[str, Any]:
    entry = asdict(m)
    entry["edits"] = [e.to_dict() for e in m.edits]
    entry["workflows"] = [list(w) for w in m.workflows]
    return entry


@recorded("archive.apply")
def apply_archive(plan: ArchivePlan, commit: bool = True, prune: bool = True) -> ApplyResult:
    """Carry out ``plan`` all-or-nothing; one commit unless ``commit=False``.

    Refuses a dirty tree, a detached HEAD or a non-repository. With ``prune`` the untracked
    dependency/build folders of archived apps are deleted (they are regenerable).
    """
    repo = plan.repo
    check_archive_dir(repo, plan.archive_dir, plan.apps_dirs)
    before = _apps_tree_bytes(repo, plan.apps_dirs)
    with Transaction(repo, "archive apply") as tx:
        if not plan.moves:
            return ApplyResult(
                [], plan.archive_dir, None, 0, 0, [], [], plan.apps_before, plan.apps_before
            )
        pruned = _move_apps(tx, repo, plan, prune)
        edited: set[str] = set()
        for m in plan.moves:
            for e in m.edits:
                ws.apply_edit(repo, e)
                edited.add(e.file)
        _write_manifest(tx, repo, plan)
        paths = [m.src for m in plan.moves] + [plan.archive_dir] + sorted(edited)
        paths += [w for m in plan.moves for w, _ in m.workflows]
        git(repo, ["add", "-A", "--", *paths])
        sha = None
        if commit:
            git(repo, ["commit", "-q", "-m", plan.commit_message])
            sha = head_sha(repo)
    after = _apps_tree_bytes(repo, plan.apps_dirs)
    return ApplyResult(
        [m.app for m in plan.moves],
        plan.archive_dir,
        sha,
        before - after,
        pruned,
        sorted(edited),
        [w for m in plan.moves for w, _ in m.workflows],
        plan.apps_before,
        plan.apps_after,
    )


def _move_apps(tx: Transaction, repo: Path, plan: ArchivePlan, prune: bool) -> int:
    pruned = 0
    for m in plan.moves:
        if prune:
            for folder in _dep_folders(repo / m.src):
                rel = folder.relative_to(repo).as_posix()
                if tracked_files(repo, [rel]):
                    continue  # committed build output: keep it, it moves with the app
                pruned += sum(disk_usage(folder))
                tx.prune(folder)
        tx.rename(repo / m.src, repo / m.dst)
        for src, dst in m.workflows:
            tx.rename(repo / src, repo / dst)
    return pruned


def _write_manifest(tx: Transaction, repo: Path, plan: ArchivePlan) -> None:
    """Write (or extend) ``archive.json``: a second batch in the same folder adds its apps
    and a ``batches`` line, it never replaces the entries of the first."""
    path = contained(repo, f"{plan.archive_dir}/{MANIFEST}", "archive manifest")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    manifest: dict[str, Any] = (
        json.loads(path.read_text(encoding="utf-8"))
        if path.is_file()
        else {"created": stamp, "archive_dir": plan.archive_dir, "apps": [], "batches": []}
    )
    for m in plan.moves:
        m.archived_at = stamp
    manifest["apps_dirs"] = sorted({*manifest.get("apps_dirs", []), *plan.apps_dirs})
    manifest["lockfiles"] = sorted({*manifest.get("lockfiles", []), *plan.lockfiles})
    manifest["apps"] = [*manifest.get("apps", []), *(_manifest_entry(m) for m in plan.moves)]
    manifest.setdefault("batches", []).append(
        {"archived_at": stamp, "apps": [m.app for m in plan.moves]}
    )
    tx.write(repo / plan.archive_dir / "README.md", plan.readme)
    tx.write(path, json.dumps(manifest, indent=2) + "\n")


# --------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    """Post-apply checks; ``ok`` is False when anything still points at an archived app."""

    archive_path: str
    archived: list[str]
    missing_in_archive: list[str]
    still_in_apps: list[str]
    unresolved_entries: list[str]
    empty_globs: list[str]
    references: list[dict[str, Any]]
    mentions: list[dict[str, Any]]
    lockfiles_to_regenerate: dict[str, str]
    apps_after: int
    apps_bytes_after: int

    @property
    def ok(self) -> bool:
        return not (
            self.missing_in_archive
            or self.still_in_apps
            or self.unresolved_entries
            or self.references
        )

    def raise_if_failed(self) -> None:
        """Raise :class:`VerifyFailed` listing what is wrong (used by the verify step)."""
        if self.ok:
            return
        bad = self.frame()
        detail = "; ".join(f"{r.check}: {r.detail}" for r in bad.itertuples() if not r.ok)
        raise VerifyFailed(
            f"archive {self.archive_path} failed verification: {detail}",
            hint="fix the listed references/entries and commit, or git revert the archive commit",
        )

    def frame(self) -> pd.DataFrame:
        """One row per check with its detail."""
        rows = [
            {
                "check": "archived apps present",
                "ok": not self.missing_in_archive,
                "detail": ", ".join(self.missing_in_archive),
            },
            {
                "check": "originals gone",
                "ok": not self.still_in_apps,
                "detail": ", ".join(self.still_in_apps),
            },
            {
                "check": "workspace entries resolve",
                "ok": not self.unresolved_entries,
                "detail": ", ".join(self.unresolved_entries)
                + (
                    f" (globs matching nothing: {', '.join(self.empty_globs)})"
                    if self.empty_globs
                    else ""
                ),
            },
            {
                "check": "no references to archived paths",
                "ok": not self.references,
                "detail": "; ".join(
                    f"{r['file']}:{r['line']} -> {r['target']}" for r in self.references[:10]
                ),
            },
            {
                "check": "mentions in docs (informational)",
                "ok": True,
                "detail": "; ".join(
                    f"{r['file']}:{r['line']} -> {r['target']}" for r in self.mentions[:10]
                ),
            },
            {
                "check": "lockfiles",
                "ok": True,
                "detail": "; ".join(
                    f"{k}: run `{v}`" for k, v in self.lockfiles_to_regenerate.items()
                )
                or "nothing to regenerate",
            },
        ]
        return pd.DataFrame(rows)


def load_manifest(repo: Path, archive_path: str) -> dict[str, Any]:
    """Read ``<archive_path>/archive.json`` written by apply."""
    path = contained(repo, f"{ws.norm(archive_path)}/{MANIFEST}", "archive manifest")
    if not path.is_file():
        raise ConfigError(
            f"no archive manifest at {path}",
            hint="pass the archive folder an apply created (ApplyResult.archive_path)",
        )
    return json.loads(path.read_text(encoding="utf-8"))


DOC_SUFFIXES = (".md", ".mdx", ".rst", ".txt", ".adoc")


def _is_doc(path: str) -> bool:
    """Prose mentions (READMEs, changelogs) are reported but do not fail verification."""
    return path.lower().endswith(DOC_SUFFIXES)


def _references(
    repo: Path, archive_path: str, entries: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    pats: list[tuple[str, re.Pattern[str]]] = []
    for e in entries:
        pats.append((e["src"], path_pattern(e["src"])))
        if e.get("package"):
            pats.append((e["package"], name_pattern(e["package"])))
    if not pats:
        return []
    args = ["grep", "-n", "-I", "-F", "--no-color"]
    for needle, _ in pats:
        args += ["-e", needle]
    excludes = [f":(exclude){archive_path}"] + [f":(exclude,glob)**/{lf}" for lf in LOCKFILES]
    proc = git(repo, [*args, "--", ".", *excludes], check=False)
    found: list[dict[str, Any]] = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        file, _, rest = line.partition(":")
        num, _, text = rest.partition(":")
        for needle, rx in pats:
            if rx.search(text):
                found.append(
                    {"file": file, "line": int(num), "target": needle, "text": text.strip()[:200]}
                )
                break
    return found


def _lockfiles(repo: Path, entries: list[dict[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for lf, cmd in LOCK_COMMANDS.items():
        path = repo / lf
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if any(e["src"] in text or (e.get("package") and e["package"] in text) for e in entries):
            out[lf] = cmd
    return out


def verify_archive(repo_path: str | Path, archive_path: str) -> VerifyReport:
    """Check an applied archive: apps moved, entries resolve, nothing references them."""
    from opsbook.archive.gitutil import repo_root

    repo = repo_root(repo_path)
    manifest = load_manifest(repo, archive_path)
    entries = manifest["apps"]
    apps_dirs = manifest.get("apps_dirs", ["apps"])
    broken, empty = ws.unresolved_entries(repo)
    refs = _references(repo, archive_path, entries)
    apps_after = sum(
        1
        for d in apps_dirs
        if (repo / d).is_dir()
        for e in os.scandir(repo / d)
        if e.is_dir() and not e.name.startswith(".")
    )
    return VerifyReport(
        archive_path=archive_path,
        archived=[e["app"] for e in entries],
        missing_in_archive=[e["dst"] for e in entries if not (repo / e["dst"]).is_dir()],
        still_in_apps=[e["src"] for e in entries if (repo / e["src"]).exists()],
        unresolved_entries=broken,
        empty_globs=empty,
        references=[r for r in refs if not _is_doc(r["file"])],
        mentions=[r for r in refs if _is_doc(r["file"])],
        lockfiles_to_regenerate=_lockfiles(repo, entries),
        apps_after=apps_after,
        apps_bytes_after=_apps_tree_bytes(repo, apps_dirs),
    )
