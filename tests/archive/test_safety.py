"""Paths from manifests, configs and parameters never lead outside the repository; archive
folders never land in .git, the root or an apps dir; batches in one folder accumulate."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from datetime import date
from pathlib import Path

import pytest

from opsbook.archive import DEMO_NOW, apply_archive, classify, inventory, plan_archive, restore
from opsbook.archive.apply import ArchivePlan, check_archive_dir, verify_archive
from opsbook.archive.errors import UnsafePath
from opsbook.archive.paths import contained
from opsbook.errors import ConfigError

from .helpers import git_out, snapshot

DAY = date(2026, 11, 28)
ARCHIVE = "archive/2026-11-28-experimental-apps"
OUTSIDE_YAML = "packages:\n  - keep/me\n"


def _plan(repo: Path, candidates: list[str] | None = None, **kw: object) -> ArchivePlan:
    classification = classify(inventory(repo, now=DEMO_NOW), candidates=candidates)
    return plan_archive(classification, day=DAY, **kw)  # type: ignore[arg-type]


def _commit_all(repo: Path, message: str) -> None:
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", message], check=True)


def _tamper(repo: Path, change: dict[str, object], edit_index: int | None = None) -> None:
    """Rewrite the flan-router entry (or one of its edits) of the archive manifest."""
    path = repo / ARCHIVE / "archive.json"
    data = json.loads(path.read_text())
    entry = next(e for e in data["apps"] if e["app"] == "flan-router")
    (entry["edits"][edit_index] if edit_index is not None else entry).update(change)
    path.write_text(json.dumps(data, indent=2) + "\n")
    _commit_all(repo, "tamper")


@pytest.fixture
def archived(demo: Path) -> Path:
    apply_archive(_plan(demo, ["flan-router"]))
    return demo


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    target = tmp_path / "outside" / "pnpm-workspace.yaml"
    target.parent.mkdir()
    target.write_text(OUTSIDE_YAML)
    return target


def _refused_untouched(repo: Path, outside: Path, match: str) -> None:
    head = git_out(repo, "rev-parse", "HEAD")
    files = snapshot(repo)
    with pytest.raises(UnsafePath, match=match):
        restore(repo, "flan-router")
    assert outside.read_text() == OUTSIDE_YAML
    assert sorted(p.name for p in outside.parent.iterdir()) == ["pnpm-workspace.yaml"]
    assert git_out(repo, "rev-parse", "HEAD") == head
    assert git_out(repo, "status", "--porcelain") == ""
    assert snapshot(repo) == files


def test_edit_file_given_as_absolute_path_is_refused(archived: Path, outside: Path) -> None:
    _tamper(archived, {"file": str(outside), "kind": "yaml-list", "value": "evil"}, 0)
    _refused_untouched(archived, outside, "is an absolute path")


def test_edit_file_climbing_out_with_dotdot_is_refused(archived: Path, outside: Path) -> None:
    rel = os.path.relpath(outside, archived)
    assert rel.startswith("..")
    _tamper(archived, {"file": rel, "kind": "yaml-list", "value": "evil"}, 0)
    _refused_untouched(archived, outside, "climbs out with '..'")


def test_edit_file_through_a_symlink_leading_out_is_refused(archived: Path, outside: Path) -> None:
    (archived / "cfg").symlink_to(outside.parent, target_is_directory=True)
    _tamper(archived, {"file": "cfg/pnpm-workspace.yaml", "kind": "yaml-list", "value": "x"}, 0)
    _refused_untouched(archived, outside, "through a symlink")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("src", "/tmp/opsbook-escape", "absolute path"),
        ("src", "../escape", "'..'"),
        ("src", ".git/hooks", "into .git"),
        ("dst", "apps/web", "must come from"),
        ("src", ARCHIVE + "/elsewhere", "must come from"),
    ],
)
def test_move_paths_outside_or_sideways_are_refused(
    archived: Path, outside: Path, key: str, value: str, match: str
) -> None:
    _tamper(archived, {key: value})
    _refused_untouched(archived, outside, match)


def test_workflow_pair_leading_out_is_refused(archived: Path, outside: Path) -> None:
    _tamper(archived, {"workflows": [[str(outside), f"{ARCHIVE}/_workflows/x.yml"]]})
    _refused_untouched(archived, outside, "absolute path")


def test_archive_root_parameter_leading_out_is_refused(archived: Path) -> None:
    with pytest.raises(UnsafePath, match="archive_root"):
        restore(archived, "flan-router", archive_root="../")


def test_contained_accepts_plain_relative_paths(tmp_path: Path) -> None:
    repo = tmp_path.resolve()
    (repo / "apps").mkdir()
    (repo / "alias").symlink_to(repo / "apps", target_is_directory=True)
    assert contained(repo, "apps/web") == repo / "apps/web"
    assert contained(repo, "./alias/x") == repo / "alias/x"


# --------------------------------------------------------------------------- archive_dir


@pytest.mark.parametrize(
    ("archive_dir", "match"),
    [
        (".git/arch", "into .git"),
        (".git", "into .git"),
        (".", "repository root"),
        ("", "repository root"),
        ("apps/old", "inside the apps dir"),
        ("apps", "inside the apps dir"),
        ("/abs/archive", "relative folder"),
        ("../outside", "relative folder"),
    ],
)
def test_bad_archive_dir_refused_at_planning_repo_untouched(
    demo: Path, archive_dir: str, match: str
) -> None:
    head, files = git_out(demo, "rev-parse", "HEAD"), snapshot(demo)
    with pytest.raises(ConfigError, match=match):
        _plan(demo, archive_dir=archive_dir)
    assert git_out(demo, "rev-parse", "HEAD") == head and snapshot(demo) == files
    assert not (demo / ".git/arch").exists()


def test_archive_dir_holding_an_apps_dir_is_refused(demo: Path) -> None:
    with pytest.raises(ConfigError, match="holds the apps dir 'src/apps'"):
        check_archive_dir(demo, "src", ["src/apps"])


def test_archive_dir_symlinked_out_of_the_repo_is_refused(demo: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (demo / "archive").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _commit_all(demo, "archive link")
    with pytest.raises(UnsafePath, match="outside"):
        _plan(demo)
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("archive_dir", [".git/arch", ".", "apps/junk"])
def test_bad_archive_dir_refused_at_apply_repo_untouched(demo: Path, archive_dir: str) -> None:
    plan = dataclasses.replace(_plan(demo), archive_dir=archive_dir)
    head, files = git_out(demo, "rev-parse", "HEAD"), snapshot(demo)
    tracked = git_out(demo, "ls-files")
    with pytest.raises(ConfigError, match="archive_dir"):
        apply_archive(plan)
    assert git_out(demo, "rev-parse", "HEAD") == head and snapshot(demo) == files
    assert git_out(demo, "ls-files") == tracked and not (demo / ".git/arch").exists()


def test_verify_archive_path_outside_is_refused(demo: Path) -> None:
    with pytest.raises(UnsafePath):
        verify_archive(demo, "../../etc")


# --------------------------------------------------------------------------- batches


def test_two_batches_same_day_same_folder_both_restorable(demo: Path) -> None:
    first = apply_archive(_plan(demo, ["flan-router", "marketing-v1"]))
    second_plan = _plan(demo, ["ibu-nuzantara"])
    assert [m.app for m in second_plan.earlier] == ["flan-router", "marketing-v1"]
    second = apply_archive(second_plan)
    assert first.archive_path == second.archive_path == ARCHIVE
    manifest = json.loads((demo / ARCHIVE / "archive.json").read_text())
    apps = ["flan-router", "marketing-v1", "ibu-nuzantara"]
    assert [a["app"] for a in manifest["apps"]] == apps
    assert [b["apps"] for b in manifest["batches"]] == [apps[:2], apps[2:]]
    readme = (demo / ARCHIVE / "README.md").read_text()
    assert all(f"## {a}" in readme for a in apps)
    assert verify_archive(demo, ARCHIVE).ok
    assert restore(demo, "flan-router").path == "apps/flan-router"
    assert restore(demo, "ibu-nuzantara").path == "apps/ibu-nuzantara"
    manifest = json.loads((demo / ARCHIVE / "archive.json").read_text())
    assert [a["app"] for a in manifest["apps"]] == ["marketing-v1"]
    assert restore(demo, "marketing-v1").path == "apps/marketing-v1"
    assert not (demo / "archive").exists()
    assert git_out(demo, "status", "--porcelain") == ""
