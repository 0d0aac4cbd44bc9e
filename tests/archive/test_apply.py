"""Apply -> verify -> restore on real git repositories, refusals and rollback."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from opsbook.archive import (
    DEMO_NOW,
    ApplyFailed,
    DetachedHead,
    DirtyWorkingTree,
    NotAGitRepo,
    apply_archive,
    classify,
    inventory,
    plan_archive,
    restore,
    verify_archive,
)
from opsbook.archive import workspaces as ws
from opsbook.archive.apply import ArchivePlan
from opsbook.archive.errors import ArchiveConflict, NotArchived, VerifyFailed
from opsbook.errors import ConfigError

from .helpers import MakeRepo, git_out, snapshot

DAY = date(2026, 11, 28)
ARCHIVE = "archive/2026-11-28-experimental-apps"
CONFIGS = ["package.json", "pnpm-workspace.yaml", "turbo.json", "tsconfig.json"]


def _plan(repo: Path, **kw: object) -> ArchivePlan:
    return plan_archive(classify(inventory(repo, now=DEMO_NOW), **kw), day=DAY)  # type: ignore[arg-type]


def _unchanged(repo: Path, head: str, files: dict[str, bytes]) -> None:
    assert git_out(repo, "rev-parse", "HEAD").strip() == head
    assert git_out(repo, "status", "--porcelain") == ""
    assert snapshot(repo) == files
    assert not (repo / "archive").exists()
    assert not [p for p in (repo / ".git").iterdir() if p.name.startswith("opsbook-trash")]


def test_apply_moves_candidates_edits_configs_and_commits_once(demo: Path) -> None:
    head = git_out(demo, "rev-parse", "HEAD").strip()
    before = {f: (demo / f).read_bytes() for f in CONFIGS}
    plan = _plan(demo)
    result = apply_archive(plan)
    assert result.archived == [m.app for m in plan.moves]
    assert set(result.archived) == {
        "orchestrator",
        "unified-backend",
        "flan-router",
        "ibu-nuzantara",
        "marketing-v1",
        "status-page",
    }
    assert git_out(demo, "rev-parse", "HEAD~1").strip() == head
    assert git_out(demo, "status", "--porcelain") == ""
    assert result.commit_sha == git_out(demo, "rev-parse", "HEAD").strip()
    assert git_out(demo, "log", "-1", "--format=%s") == f"archive: move 6 apps to {ARCHIVE}\n"
    for m in plan.moves:
        assert not (demo / m.src).exists()
        assert (demo / m.dst / "package.json").exists() or (
            demo / m.dst / "pyproject.toml"
        ).exists()
        assert (
            not (demo / m.dst / "node_modules").exists() and not (demo / m.dst / ".venv").exists()
        )
    assert sorted(p.name for p in (demo / "apps").iterdir()) == sorted(
        ["web", "admin", "api", "worker", "docs", "billing", "notifications", "legacy-auth"]
    )
    # workspace list lost exactly the archived entries, byte for byte otherwise
    data = json.loads(before["package.json"])
    data["workspaces"] = [w for w in data["workspaces"] if w not in {m.src for m in plan.moves}]
    assert (demo / "package.json").read_text() == json.dumps(data, indent=2) + "\n"
    assert (demo / "pnpm-workspace.yaml").read_bytes() == before["pnpm-workspace.yaml"]  # globs
    turbo = json.loads((demo / "turbo.json").read_text())
    assert sorted(turbo["tasks"]) == ["@acme/web#deploy", "build", "test"]
    tsconfig = before["tsconfig.json"].decode()
    assert (demo / "tsconfig.json").read_text() == tsconfig.replace(
        '    {"path": "apps/admin"},\n    {"path": "apps/orchestrator"},\n'
        '    {"path": "apps/unified-backend"}\n',
        '    {"path": "apps/admin"}\n',
    )
    # workflows only for archived apps went into the archive
    assert (demo / ARCHIVE / "_workflows/deploy-orchestrator.yml").is_file()
    assert not (demo / ".github/workflows/deploy-orchestrator.yml").exists()
    assert (demo / ".github/workflows/ci.yml").is_file()


def test_readme_lists_why_last_commit_size_deploys_and_restore_commands(demo: Path) -> None:
    plan = _plan(demo)
    apply_archive(plan)
    readme = (demo / ARCHIVE / "README.md").read_text()
    for m in plan.moves:
        assert f"## {m.app}" in readme
        assert f"git mv {m.dst} {m.src}" in readme
        assert f"last commit: {m.last_commit}" in readme
    assert "fly.toml" in readme and "marker 'experimental'" in readme
    manifest = json.loads((demo / ARCHIVE / "archive.json").read_text())
    assert [a["app"] for a in manifest["apps"]] == [m.app for m in plan.moves]


def test_bytes_freed_is_the_apps_tree_shrinkage(demo: Path) -> None:
    plan = _plan(demo)
    result = apply_archive(plan)
    assert result.bytes_freed == plan.bytes_reclaimable
    assert result.pruned_bytes == sum(m.deps_bytes for m in plan.moves)


def test_verify_after_apply_is_clean_and_reports_the_lockfile(demo: Path) -> None:
    result = apply_archive(_plan(demo))
    report = verify_archive(demo, result.archive_path)
    assert report.ok, report.frame()
    assert report.lockfiles_to_regenerate == {"pnpm-lock.yaml": "pnpm install"}
    assert report.apps_after == 8
    report.raise_if_failed()


def test_verify_lists_a_shared_workflow_still_naming_an_archived_app(demo: Path) -> None:
    wf = demo / ".github/workflows/e2e.yml"
    wf.write_text("jobs:\n  e2e:\n    steps:\n      - run: test apps/web apps/orchestrator\n")
    git_out(demo, "add", ".")
    git_out(demo, "commit", "-qm", "e2e")
    plan = _plan(demo)
    assert plan.shared_workflows == {".github/workflows/e2e.yml": ["apps/orchestrator", "apps/web"]}
    result = apply_archive(plan)
    report = verify_archive(demo, result.archive_path)
    assert not report.ok
    assert [(r["file"], r["line"], r["target"]) for r in report.references] == [
        (".github/workflows/e2e.yml", 4, "apps/orchestrator")
    ]
    with pytest.raises(VerifyFailed, match="e2e.yml:4"):
        report.raise_if_failed()


def test_restore_round_trip_gives_back_identical_configs(demo: Path) -> None:
    before = {f: (demo / f).read_bytes() for f in CONFIGS}
    tracked_before = git_out(demo, "ls-files")
    result = apply_archive(_plan(demo))
    for app in reversed(result.archived):
        restore(demo, app)
    assert {f: (demo / f).read_bytes() for f in CONFIGS} == before
    assert git_out(demo, "ls-files") == tracked_before
    assert git_out(demo, "status", "--porcelain") == ""
    assert not (demo / "archive").exists()
    assert len(inventory(demo, now=DEMO_NOW).apps) == 14


def test_restore_one_app_re_adds_its_entry_in_place(demo: Path) -> None:
    original = json.loads((demo / "package.json").read_text())["workspaces"]
    apply_archive(_plan(demo))
    out = restore(demo, "orchestrator")
    assert out.path == "apps/orchestrator" and out.commit_sha
    assert (demo / "apps/orchestrator/fly.toml").is_file()
    assert (demo / ".github/workflows/deploy-orchestrator.yml").is_file()
    now = json.loads((demo / "package.json").read_text())["workspaces"]
    assert now == [
        w
        for w in original
        if w == "apps/orchestrator"
        or w
        not in {
            "apps/flan-router",
            "apps/ibu-nuzantara",
            "apps/marketing-v1",
            "apps/status-page",
            "apps/unified-backend",
        }
    ]
    assert "turbo.json: @acme/orchestrator#deploy" in out.entries_restored
    manifest = json.loads((demo / ARCHIVE / "archive.json").read_text())
    assert "orchestrator" not in [a["app"] for a in manifest["apps"]]
    assert "## orchestrator" not in (demo / ARCHIVE / "README.md").read_text()
    assert verify_archive(demo, ARCHIVE).ok


def test_restore_unknown_app_and_occupied_target(demo: Path) -> None:
    apply_archive(_plan(demo))
    with pytest.raises(NotArchived, match="'web'"):
        restore(demo, "web")
    (demo / "apps/orchestrator").mkdir()
    (demo / "apps/orchestrator/x").write_text("new")
    git_out(demo, "add", ".")
    git_out(demo, "commit", "-qm", "new orchestrator")
    with pytest.raises(ArchiveConflict, match="already exists"):
        restore(demo, "orchestrator")


def test_commit_false_leaves_everything_staged(demo: Path) -> None:
    head = git_out(demo, "rev-parse", "HEAD").strip()
    result = apply_archive(_plan(demo), commit=False)
    assert result.commit_sha is None
    assert git_out(demo, "rev-parse", "HEAD").strip() == head
    staged = git_out(demo, "diff", "--cached", "--name-status", "-M").splitlines()
    assert any(line.startswith("R") and "apps/orchestrator/fly.toml" in line for line in staged)
    assert git_out(demo, "diff", "--name-only") == ""  # nothing unstaged


def test_dirty_tree_is_refused_and_nothing_changes(demo: Path) -> None:
    (demo / "apps/web/src/index.ts").write_text("// wip\n")
    head = git_out(demo, "rev-parse", "HEAD").strip()
    files = snapshot(demo)
    plan = _plan(demo)
    with pytest.raises(DirtyWorkingTree, match="apps/web/src/index.ts") as err:
        apply_archive(plan)
    assert "stash" in (err.value.hint or "")
    assert git_out(demo, "rev-parse", "HEAD").strip() == head
    assert snapshot(demo) == files


def test_untracked_file_also_counts_as_dirty(demo: Path) -> None:
    (demo / "notes.txt").write_text("todo\n")
    with pytest.raises(DirtyWorkingTree, match="notes.txt"):
        apply_archive(_plan(demo))


def test_detached_head_is_refused(demo: Path) -> None:
    git_out(demo, "checkout", "-q", "--detach")
    with pytest.raises(DetachedHead, match="detached"):
        apply_archive(_plan(demo))


def test_failing_commit_hook_rolls_everything_back(demo: Path) -> None:
    hook = demo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint failed' >&2\nexit 1\n")
    hook.chmod(0o755)
    head = git_out(demo, "rev-parse", "HEAD").strip()
    files = snapshot(demo)
    with pytest.raises(ApplyFailed, match="lint failed"):
        apply_archive(_plan(demo))
    _unchanged(demo, head, files)


def test_failure_in_the_middle_rolls_back(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: the third config edit raises after apps were moved and pruned."""
    calls = []
    real = ws.apply_edit

    def flaky(repo: Path, edit: ws.Edit) -> None:
        calls.append(edit)
        if len(calls) == 3:
            raise OSError("disk full")
        real(repo, edit)

    monkeypatch.setattr(ws, "apply_edit", flaky)
    head = git_out(demo, "rev-parse", "HEAD").strip()
    files = snapshot(demo)
    with pytest.raises(ApplyFailed, match="disk full"):
        apply_archive(_plan(demo))
    _unchanged(demo, head, files)


def test_existing_archive_destination_is_refused(demo: Path) -> None:
    (demo / ARCHIVE / "orchestrator").mkdir(parents=True)
    with pytest.raises(ArchiveConflict, match="orchestrator already exists"):
        _plan(demo)


@pytest.mark.parametrize("bad", ["/abs/archive", "../outside", "apps/old"])
def test_archive_dir_must_be_inside_and_outside_apps(demo: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="archive_dir"):
        plan_archive(classify(inventory(demo, now=DEMO_NOW)), archive_dir=bad, day=DAY)


def test_not_a_repo_refused_before_anything(tmp_path: Path) -> None:
    (tmp_path / "apps/a").mkdir(parents=True)
    with pytest.raises(NotAGitRepo):
        verify_archive(tmp_path, "archive/x")
    with pytest.raises(NotAGitRepo):
        restore(tmp_path, "a")


def test_npm_object_workspaces_and_explicit_pnpm_entries(make_repo: MakeRepo) -> None:
    pkg = '{\n    "name": "r",\n    "workspaces": {\n        "packages": [\n            "apps/keep",\n            "apps/old"\n        ]\n    }\n}'
    pnpm = "packages:\n  - apps/keep\n  - apps/old\n  - libs/*\n"
    repo = make_repo(
        {
            "package.json": pkg,
            "pnpm-workspace.yaml": pnpm,
            "apps/keep/package.json": '{"name": "keep"}',
            "apps/old/package.json": '{"name": "old", "description": "a POC"}',
        },
        ages={"apps/old/package.json": 10},
    )
    result = apply_archive(_plan(repo))
    assert result.archived == ["old"]
    assert (repo / "package.json").read_text() == pkg.replace(',\n            "apps/old"', "")
    assert (repo / "pnpm-workspace.yaml").read_text() == pnpm.replace("  - apps/old\n", "")
    report = verify_archive(repo, result.archive_path)
    assert report.ok and report.empty_globs == ["pnpm-workspace.yaml: libs/*"]
    restore(repo, "old")
    assert (repo / "package.json").read_text() == pkg
    assert (repo / "pnpm-workspace.yaml").read_text() == pnpm


def test_nothing_to_archive_is_a_no_op(make_repo: MakeRepo) -> None:
    repo = make_repo({"apps/a/package.json": '{"name": "a"}'})
    head = git_out(repo, "rev-parse", "HEAD")
    result = apply_archive(_plan(repo))
    assert result.archived == [] and result.commit_sha is None
    assert git_out(repo, "rev-parse", "HEAD") == head
    assert not (repo / "archive").exists()


def test_turbo_pipeline_lerna_and_nx_entries_are_removed_and_restored(make_repo: MakeRepo) -> None:
    turbo = '{\n  "pipeline": {\n    "build": {},\n    "old#deploy": {"cache": false},\n    "keep#deploy": {}\n  }\n}\n'
    lerna = '{\n  "version": "independent",\n  "packages": ["apps/keep", "apps/old"]\n}\n'
    nx = '{\n  "version": 2,\n  "projects": {\n    "keep": "apps/keep",\n    "old": {"root": "apps/old"}\n  }\n}\n'
    repo = make_repo(
        {
            "turbo.json": turbo,
            "lerna.json": lerna,
            "workspace.json": nx,
            "apps/keep/package.json": '{"name": "keep"}',
            "apps/old/package.json": '{"name": "old"}',
        },
        ages={"apps/old/package.json": 500},
    )
    result = apply_archive(_plan(repo))
    assert result.edited_files == ["lerna.json", "turbo.json", "workspace.json"]
    assert json.loads((repo / "turbo.json").read_text())["pipeline"] == {
        "build": {},
        "keep#deploy": {},
    }
    assert (repo / "lerna.json").read_text() == lerna.replace(', "apps/old"', "")
    assert json.loads((repo / "workspace.json").read_text())["projects"] == {"keep": "apps/keep"}
    assert verify_archive(repo, result.archive_path).ok
    restore(repo, "old")
    assert [(repo / f).read_text() for f in ("turbo.json", "lerna.json", "workspace.json")] == [
        turbo,
        lerna,
        nx,
    ]


def test_doc_mentions_are_reported_but_do_not_fail_verify(demo: Path) -> None:
    result = apply_archive(_plan(demo))  # an import written before would block it (see below)
    (demo / "apps/docs/HISTORY.md").write_text("We tried apps/orchestrator in 2026.\n")
    (demo / "apps/worker/src/legacy.ts").write_text("import x from '@acme/orchestrator';\n")
    git_out(demo, "add", ".")
    git_out(demo, "commit", "-qm", "mentions")
    report = verify_archive(demo, result.archive_path)
    assert [(r["file"], r["target"]) for r in report.mentions] == [
        ("apps/docs/HISTORY.md", "apps/orchestrator")
    ]
    assert [(r["file"], r["target"]) for r in report.references] == [
        ("apps/worker/src/legacy.ts", "@acme/orchestrator")
    ]
    assert not report.ok
