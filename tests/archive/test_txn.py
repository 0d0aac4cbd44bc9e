"""The archive transaction, path containment and archive-folder checks on a tiny repository.

Unit-level (a three-file git repo, no demo monorepo): each test states the exact tree,
index and HEAD a commit or a rollback leaves, and the exact refusal of a path outside the
repository. ``make mutate`` runs these against ``archive/txn.py``, ``paths.py`` and the
containment parts of ``apply.py``.
"""

from __future__ import annotations

import os
import subprocess
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from opsbook.archive import apply
from opsbook.archive.errors import ApplyFailed, UnsafePath
from opsbook.archive.paths import contained, is_within
from opsbook.archive.txn import Transaction
from opsbook.errors import ConfigError

from .helpers import git_out, snapshot

_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={**os.environ, **_ENV},
    )


@pytest.fixture(autouse=True)
def _cwd_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths are the repo's: a broken join must not land in the checkout."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """apps/web/{index.js,dist/app.js (committed build output)}, README.md; one commit."""
    root = (tmp_path / "repo").resolve()
    (root / "apps/web/dist").mkdir(parents=True)
    (root / "apps/web/index.js").write_text("web\n")
    (root / "apps/web/dist/app.js").write_text("built\n")
    (root / "README.md").write_text("readme\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "init")
    return root


def _head(repo: Path) -> str:
    return git_out(repo, "rev-parse", "HEAD").strip()


def _status(repo: Path) -> str:
    return git_out(repo, "status", "--porcelain=v1", "--untracked-files=all")


# --------------------------------------------------------------------------- containment


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",  # absolute, elsewhere
        "../sibling/x.txt",  # climbs out
        ".git/config",  # inside the git dir
        ".git/hooks/pre-commit",
    ],
)
def test_transaction_refuses_a_path_outside_the_working_tree(repo: Path, path: str) -> None:
    before = snapshot(repo)
    tx = Transaction(repo, "t")
    with pytest.raises(ApplyFailed, match="refusing to touch .*outside the working tree"):
        tx.write(Path(path), "x")
    with pytest.raises(ApplyFailed, match="refusing to touch"):
        tx.rename(repo / "README.md", Path(path))
    assert tx.created == [] and tx.renames == [] and tx.created_dirs == []
    assert snapshot(repo) == before and not (repo.parent / "sibling").exists()


def test_makedirs_and_rename_refuse_a_source_or_folder_outside(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("mine")
    tx = Transaction(repo, "t")
    with pytest.raises(ApplyFailed, match="refusing to touch"):
        tx.makedirs(outside / "new" / "deeper")
    with pytest.raises(ApplyFailed, match="refusing to touch"):
        tx.rename(outside / "f.txt", repo / "f.txt")
    (outside / "node_modules").mkdir()
    with pytest.raises(ApplyFailed, match="refusing to touch"):
        tx.prune(outside / "node_modules")
    assert sorted(p.name for p in outside.iterdir()) == ["f.txt", "node_modules"]
    assert tx.pruned == []
    assert not (repo / "f.txt").exists() and tx.renames == [] and tx.created_dirs == []


def test_transaction_refuses_a_symlinked_folder_leading_out(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "link").symlink_to(outside, target_is_directory=True)
    tx = Transaction.__new__(Transaction)  # the tree is dirty now (link): no require_writable
    tx.repo = repo
    with pytest.raises(ApplyFailed, match="refusing to touch"):
        tx._inside(Path("link/x.txt"))
    assert list(outside.iterdir()) == []


def test_transaction_refuses_the_repository_root_itself(repo: Path) -> None:
    tx = Transaction(repo, "t")
    with pytest.raises(ApplyFailed, match="refusing to touch"):
        tx._inside(repo)


def test_inside_resolves_relative_paths_against_the_repo(repo: Path) -> None:
    tx = Transaction(repo, "t")
    assert tx._inside(Path("apps/web/x")) == repo / "apps/web/x"
    assert tx._inside(repo / "apps" / ".." / "README.md") == repo / "README.md"
    assert tx._inside(repo / "a.git" / "x") == repo / "a.git/x"  # only the .git part counts


@pytest.mark.parametrize(
    ("rel", "why"),
    [
        (None, "is not a non-empty relative path"),
        (3, "is not a non-empty relative path"),
        ("", "is not a non-empty relative path"),
        ("   ", "is not a non-empty relative path"),
        ("/etc/passwd", "is an absolute path"),
        ("C:/Windows", "is an absolute path"),
        ("C:x", "is an absolute path"),
        ("C:", "is an absolute path"),
        ("..", "climbs out with '..'"),
        ("apps/../../x", "climbs out with '..'"),
        ("apps\\..\\..\\x", "climbs out with '..'"),
        (".git", "points into .git"),
        ("apps/.git/x", "points into .git"),
    ],
)
def test_contained_refuses_each_kind(repo: Path, rel: object, why: str) -> None:
    with pytest.raises(UnsafePath) as info:
        contained(repo, rel, "edits[0].file")
    assert info.value.message.startswith(f"edits[0].file {rel!r} {why}; refused")


def test_contained_refuses_symlinks_out_and_into_git(repo: Path, tmp_path: Path) -> None:
    (repo / "out").symlink_to(tmp_path, target_is_directory=True)
    (repo / "g").symlink_to(repo / ".git", target_is_directory=True)
    with pytest.raises(UnsafePath, match=f"resolves \\(through a symlink\\) to {tmp_path}/x"):
        contained(repo, "out/x")
    with pytest.raises(UnsafePath, match="resolves \\(through a symlink\\) into .git"):
        contained(repo, "g/config")


def test_contained_accepts_the_root_a_one_letter_name_and_names_with_dots(repo: Path) -> None:
    assert contained(repo, ".") == repo
    assert contained(repo, "a") == repo / "a"
    assert contained(repo, "apps/..web/x.git") == repo / "apps/..web/x.git"


@pytest.mark.parametrize(
    ("path", "folder", "inside"),
    [
        ("apps", "apps", True),
        ("apps/web", "apps", True),
        ("apps/web", "apps/", True),
        ("apps2/web", "apps", False),
        ("app", "apps", False),
        ("apps", "apps/web", False),
    ],
)
def test_is_within(path: str, folder: str, inside: bool) -> None:
    assert is_within(path, folder) is inside


# --------------------------------------------------------------------------- transaction


def test_makedirs_records_only_the_folders_it_created_parents_first(repo: Path) -> None:
    tx = Transaction(repo, "t")
    tx.makedirs(repo / "archive/2026/x")
    tx.makedirs(repo / "archive/2026/y")
    assert tx.created_dirs == [
        repo / "archive",
        repo / "archive/2026",
        repo / "archive/2026/x",
        repo / "archive/2026/y",
    ]
    tx.makedirs(repo / "apps/web")  # exists: nothing recorded
    assert len(tx.created_dirs) == 4


def test_write_records_new_files_only(repo: Path) -> None:
    tx = Transaction(repo, "t")
    tx.write(Path("archive/README.md"), "new")
    tx.write(repo / "README.md", "changed")  # tracked: reset on rollback, never deleted
    tx.write(Path("archive/README.md"), "again")
    assert tx.created == [repo / "archive/README.md"]
    assert (repo / "archive/README.md").read_text() == "again"
    assert (repo / "README.md").read_text() == "changed"


def test_commit_keeps_every_change_and_empties_the_trash(repo: Path) -> None:
    (repo / "apps/web/node_modules/x").mkdir(parents=True)
    (repo / "apps/web/node_modules/x/i.js").write_text("dep")
    (repo / ".git/info/exclude").write_text("node_modules\n")
    with Transaction(repo, "t") as tx:
        tx.prune(repo / "apps/web/node_modules")
        tx.rename(repo / "apps/web", repo / "archive/web")
        tx.write(repo / "archive/archive.json", "{}\n")
        trash = tx.trash
        assert trash.is_dir() and (trash / "0/x/i.js").read_text() == "dep"
    assert not trash.exists()
    assert sorted(snapshot(repo)) == [
        "README.md",
        "archive/archive.json",
        "archive/web/dist/app.js",
        "archive/web/index.js",
    ]
    assert tx.renames == [(repo / "apps/web", repo / "archive/web")]
    assert tx.pruned == [(repo / "apps/web/node_modules", trash / "0")]


def test_failure_after_files_were_created_rolls_everything_back(repo: Path) -> None:
    """Renames, created files and folders, an edited tracked file, a pruned folder and a
    commit made inside: after the failure the tree, index and HEAD are as before."""
    (repo / "apps/web/node_modules").mkdir()
    (repo / "apps/web/node_modules/dep.js").write_text("dep")
    (repo / ".git/info/exclude").write_text("node_modules\n")
    before, head = snapshot(repo), _head(repo)
    deps = (repo / "apps/web/node_modules/dep.js").read_text()
    with pytest.raises(ApplyFailed) as info, Transaction(repo, "archive apply") as tx:
        tx.prune(repo / "apps/web/node_modules")
        tx.rename(repo / "apps/web", repo / "archive/2026/web")
        tx.write(repo / "archive/2026/README.md", "readme")
        tx.write(repo / "archive/2026/sub/archive.json", "{}")
        (repo / "README.md").write_text("edited in place")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "half done")
        trash = tx.trash
        raise OSError("disk full")
    assert info.value.message == (
        "archive apply failed and was rolled back, the tree is as before: disk full"
    )
    assert isinstance(info.value.__cause__, OSError)
    assert _head(repo) == head and _status(repo) == ""
    assert snapshot(repo) == before
    assert not (repo / "archive").exists()
    assert (repo / "apps/web/node_modules/dep.js").read_text() == deps
    assert not trash.exists()


def test_rollback_keeps_a_created_folder_holding_a_file_it_did_not_create(repo: Path) -> None:
    tx = Transaction(repo, "t")
    tx.write(repo / "archive/a/README.md", "x")
    (repo / "archive/a/foreign.txt").write_text("not ours")
    tx.rollback()
    assert not (repo / "archive/a/README.md").exists()
    assert (repo / "archive/a/foreign.txt").read_text() == "not ours"
    assert sorted(p.name for p in (repo / "archive").iterdir()) == ["a"]


def test_rollback_never_overwrites_a_path_that_exists_again(repo: Path) -> None:
    (repo / "apps/web/node_modules").mkdir()
    (repo / "apps/web/node_modules/old.js").write_text("old")
    (repo / ".git/info/exclude").write_text("node_modules\n")
    tx = Transaction(repo, "t")
    tx.rename(repo / "README.md", repo / "docs/README.md")
    (repo / "README.md").write_text("recreated")  # the source exists again: keep both
    tx.prune(repo / "apps/web/node_modules")
    (repo / "apps/web/node_modules").mkdir()
    (repo / "apps/web/node_modules/new.js").write_text("new")  # reinstalled meanwhile
    tx.rollback()
    assert [p.name for p in (repo / "apps/web/node_modules").iterdir()] == ["new.js"]
    assert (repo / "docs/README.md").read_text() == "readme\n"
    assert (repo / "README.md").read_text() == "readme\n"  # reset --hard restores tracked


def test_rollback_undoes_renames_in_reverse_order(repo: Path) -> None:
    tx = Transaction(repo, "t")
    tx.rename(repo / "apps/web", repo / "tmp/web")
    tx.rename(repo / "tmp/web", repo / "archive/web")
    tx.rollback()
    assert sorted(snapshot(repo)) == ["README.md", "apps/web/dist/app.js", "apps/web/index.js"]
    assert not (repo / "tmp").exists() and not (repo / "archive").exists()


def test_rollback_recreates_the_folders_of_what_it_puts_back(repo: Path) -> None:
    """A moved file whose folder is gone, a pruned folder whose parent is gone: both come
    back where they were, and two prunes park under different names."""
    (repo / "cache/x/node_modules").mkdir(parents=True)
    (repo / "cache/x/node_modules/a.js").write_text("a")
    (repo / "apps/web/node_modules").mkdir()
    (repo / "apps/web/node_modules/b.js").write_text("b")
    (repo / ".git/info/exclude").write_text("node_modules\n")
    tx = Transaction(repo, "t")
    tx.prune(repo / "cache/x/node_modules")
    tx.prune(repo / "apps/web/node_modules")
    assert [parked.name for _, parked in tx.pruned] == ["0", "1"]
    (repo / "cache/x").rmdir()
    (repo / "cache").rmdir()
    tx.rename(repo / "apps/web/index.js", repo / "out/index.js")
    tx.rename(repo / "apps/web/dist/app.js", repo / "out/app.js")
    (repo / "apps/web/dist").rmdir()
    (repo / "apps/web").rmdir()  # two levels gone
    tx.rollback()
    assert (repo / "cache/x/node_modules/a.js").read_text() == "a"
    assert (repo / "apps/web/node_modules/b.js").read_text() == "b"
    assert (repo / "apps/web/dist/app.js").read_text() == "built\n"
    assert (repo / "apps/web/index.js").read_text() == "web\n"
    assert not (repo / "out").exists() and not tx.trash.exists()


def test_rollback_goes_on_when_git_itself_fails(repo: Path) -> None:
    """Held index and branch locks make both resets fail: the rollback still removes what the
    transaction created and puts renamed files back, and raises nothing itself."""
    tx = Transaction(repo, "t")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "inside")
    tx.write(repo / "new/file.txt", "x")
    tx.rename(repo / "README.md", repo / "docs/README.md")
    locks = [repo / ".git/index.lock", repo / ".git/refs/heads/main.lock"]
    for lock in locks:
        lock.write_text("")
    tx.rollback()
    for lock in locks:
        lock.unlink()
    assert not (repo / "new").exists() and not (repo / "docs").exists()
    assert (repo / "README.md").read_text() == "readme\n"
    assert _head(repo) != tx.head  # git could not move HEAD back: left as it is


def test_a_git_failure_is_reported_with_its_stderr(repo: Path) -> None:
    with pytest.raises(ApplyFailed) as info, Transaction(repo, "archive apply") as tx:
        tx.write(repo / "new.txt", "x")
        subprocess.run(["git", "-C", str(repo), "no-such-command"], check=True, capture_output=True)
    message = info.value.message
    assert message.startswith("archive apply failed and was rolled back, the tree is as before: ")
    assert "'no-such-command' is not a git command" in message
    assert info.value.hint.startswith("fix the cause above")
    assert not (repo / "new.txt").exists()


def test_apply_failed_and_interrupts_pass_through_after_the_rollback(repo: Path) -> None:
    ours = ApplyFailed("already ours")
    with pytest.raises(ApplyFailed) as info, Transaction(repo, "t") as tx:
        tx.write(repo / "a.txt", "x")
        raise ours
    assert info.value is ours and not (repo / "a.txt").exists()
    with pytest.raises(KeyboardInterrupt), Transaction(repo, "t") as tx:
        tx.write(repo / "b.txt", "x")
        raise KeyboardInterrupt
    assert not (repo / "b.txt").exists() and _status(repo) == ""


def test_a_clean_exit_does_not_swallow_and_returns_false(repo: Path) -> None:
    tx = Transaction(repo, "t")
    assert tx.__enter__() is tx
    assert tx.__exit__(None, None, None) is False


# --------------------------------------------------------------------------- apply helpers


@pytest.mark.parametrize(
    ("rel", "message"),
    [
        ("", "archive_dir is the repository root"),
        (".", "archive_dir is the repository root"),
        ("apps/old", "archive_dir 'apps/old' is inside the apps dir 'apps'"),
        ("apps", "archive_dir 'apps' is inside the apps dir 'apps'"),
        ("packages", "archive_dir 'packages' holds the apps dir 'packages/apps'"),
        ("../out", "archive_dir '../out' climbs out with '..'"),
    ],
)
def test_check_archive_dir_refusals(repo: Path, rel: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply.check_archive_dir(repo, rel, ["apps", "packages/apps"])
    assert info.value.message.startswith(message)


def test_check_archive_dir_accepts_a_sibling_folder(repo: Path) -> None:
    assert apply.check_archive_dir(repo, "apps-archive/x", ["apps", "packages/apps"]) == (
        "apps-archive/x"
    )
    assert apply.check_archive_dir(repo, "archive", []) == "archive"


def test_archive_dir_template() -> None:
    day = date(2026, 11, 30)
    assert apply._archive_dir("./archive/{date}-apps/", day) == "archive/2026-11-30-apps"
    for bad in ("/srv/archive", "../archive/{date}", "archive/../../x"):
        with pytest.raises(ConfigError, match="must be a relative folder inside the repository"):
            apply._archive_dir(bad, day)


def test_dep_folders_are_the_top_most_ones_outside_git(tmp_path: Path) -> None:
    for rel in (
        "a/node_modules/x/node_modules",
        "a/src/dist",
        "a/.git/node_modules",
        "a/lib",
        "a/.venv/lib",
    ):
        (tmp_path / rel).mkdir(parents=True)
    found = sorted(p.relative_to(tmp_path).as_posix() for p in apply._dep_folders(tmp_path / "a"))
    assert found == ["a/.venv", "a/node_modules", "a/src/dist"]


def test_move_apps_prunes_untracked_deps_and_keeps_committed_build_output(repo: Path) -> None:
    (repo / "apps/web/node_modules").mkdir()
    (repo / "apps/web/node_modules/dep.js").write_text("12345")  # 5 bytes, untracked
    (repo / ".git/info/exclude").write_text("node_modules\n")
    (repo / ".github/workflows").mkdir(parents=True)
    (repo / ".github/workflows/web.yml").write_text("on: push\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "workflow")
    move = SimpleNamespace(
        src="apps/web",
        dst="archive/web",
        workflows=[(".github/workflows/web.yml", "archive/_workflows/web.yml")],
    )
    plan = SimpleNamespace(moves=[move])
    with Transaction(repo, "t") as tx:
        pruned = apply._move_apps(tx, repo, plan, prune=True)  # type: ignore[arg-type]
        assert [f.relative_to(repo).as_posix() for f, _ in tx.pruned] == ["apps/web/node_modules"]
    assert pruned == 5
    assert sorted(snapshot(repo)) == [
        "README.md",
        "archive/_workflows/web.yml",
        "archive/web/dist/app.js",  # committed build output moved with the app
        "archive/web/index.js",
    ]


def test_move_apps_without_prune_moves_the_deps_along(repo: Path) -> None:
    (repo / "apps/web/node_modules").mkdir()
    (repo / "apps/web/node_modules/dep.js").write_text("12345")
    (repo / ".git/info/exclude").write_text("node_modules\n")
    plan = SimpleNamespace(moves=[SimpleNamespace(src="apps/web", dst="old/web", workflows=[])])
    with Transaction(repo, "t") as tx:
        assert apply._move_apps(tx, repo, plan, prune=False) == 0  # type: ignore[arg-type]
        assert tx.pruned == []
    assert (repo / "old/web/node_modules/dep.js").read_text() == "12345"
