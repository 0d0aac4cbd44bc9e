"""Inventory on the demo fixture and on small hand-made repositories."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from opsbook.archive import DEMO_NOW, MissingAppsDir, NotAGitRepo, inventory
from opsbook.archive.fixture import DEMO_APPS
from opsbook.errors import ConfigError

from .helpers import MakeRepo, git_out


def _du(folder: Path) -> int:
    return sum(
        os.lstat(os.path.join(root, f)).st_size for root, _, files in os.walk(folder) for f in files
    )


def test_demo_has_14_apps_and_2_shared_packages(demo: Path) -> None:
    inv = inventory(demo, now=DEMO_NOW)
    assert sorted(a.name for a in inv.apps) == sorted(a.name for a in DEMO_APPS)
    assert len(inv.apps) == 14
    assert sorted(p.name for p in inv.packages) == ["@acme/config", "@acme/ui"]
    assert inv.lockfiles == ["pnpm-lock.yaml"]


def test_sizes_split_source_and_dependencies(demo: Path) -> None:
    app = inventory(demo, now=DEMO_NOW).app("orchestrator")
    folder = demo / "apps/orchestrator"
    assert app.deps_bytes == _du(folder / "node_modules") > 0
    tracked = git_out(demo, "ls-files", "apps/orchestrator").split()
    assert app.source_bytes == sum((demo / p).stat().st_size for p in tracked)
    assert app.files == len(tracked) + sum(len(f) for _, _, f in os.walk(folder / "node_modules"))


def test_last_commit_and_recent_activity_come_from_history(demo: Path) -> None:
    inv = inventory(demo, now=DEMO_NOW, staleness_days=90)
    status = inv.app("status-page")
    spec = next(a for a in DEMO_APPS if a.name == "status-page")
    assert status.last_commit is not None
    assert (
        status.last_commit.date() == (DEMO_NOW - timedelta(days=min(spec.edits), hours=13)).date()
    )
    assert status.commits_recent == 0
    assert status.commits_total == 1 + len(spec.edits)
    web = inv.app("web")
    assert web.commits_recent == sum(age < 90 for age in DEMO_APPS[0].edits)
    assert 1 <= len(web.authors_recent) <= web.commits_recent


def test_deploy_configs_ci_and_markers(demo: Path) -> None:
    inv = inventory(demo, now=DEMO_NOW)
    orch = inv.app("orchestrator")
    assert orch.deploy_configs == ["Dockerfile", "fly.toml"]
    assert orch.platforms == ["docker", "fly"]
    assert orch.ci_refs == [".github/workflows/deploy-orchestrator.yml"]
    assert "experimental" in orch.markers
    assert inv.app("unified-backend").markers == {"poc": "package keywords"}
    assert "prototype" in inv.app("flan-router").markers
    assert inv.app("web").markers == {}
    assert inv.app("ibu-nuzantara").ci_refs == [".github/workflows/preview-ibu-nuzantara.yml"]


def test_dependants_from_package_json_pyproject_imports_and_tsconfig(demo: Path) -> None:
    inv = inventory(demo, now=DEMO_NOW)
    assert set(inv.app("legacy-auth").dependants) == {"web", "status-page"}
    assert "pyproject.toml dependency acme-api" in inv.app("billing").depends_on["api"]
    assert set(inv.app("orchestrator").dependants) == {"unified-backend"}
    ui = next(p for p in inv.packages if p.name == "@acme/ui")
    assert {"web", "admin", "ibu-nuzantara", "marketing-v1"} <= set(ui.dependants)


def test_lookup_by_path_and_package_name(demo: Path) -> None:
    inv = inventory(demo, now=DEMO_NOW)
    assert inv.app("apps/web").name == inv.app("@acme/web").name == "web"


def test_python_import_makes_a_dependency(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "apps/core/pyproject.toml": '[project]\nname = "acme-core"\n',
            "apps/core/src/acme_core/__init__.py": "X = 1\n",
            "apps/svc/pyproject.toml": '[project]\nname = "svc"\ndependencies = []\n',
            "apps/svc/src/svc/main.py": "import os\nfrom acme_core import X\n",
        }
    )
    inv = inventory(repo, now=DEMO_NOW)
    assert inv.app("core").dependants == {"svc": "import acme_core in apps/svc/src/svc/main.py:2"}


def test_dockerfile_path_makes_a_dependency(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "apps/shared-lib/README.md": "lib\n",
            "apps/api/Dockerfile": "FROM python\nCOPY apps/shared-lib /lib\n",
        }
    )
    assert set(inventory(repo, now=DEMO_NOW).app("shared-lib").dependants) == {"api"}


def test_symlinks_are_not_followed_and_nested_deps_count_as_deps(make_repo: MakeRepo) -> None:
    repo = make_repo({"apps/a/package.json": '{"name": "a"}\n', ".gitignore": "node_modules/\n"})
    nested = repo / "apps/a/src/node_modules/x"
    nested.mkdir(parents=True)
    (nested / "big.js").write_bytes(b"x" * 5000)
    os.symlink("/usr", repo / "apps/a/usr-link")
    app = inventory(repo, now=DEMO_NOW).app("a")
    assert app.deps_bytes == 5000
    assert app.source_bytes == len('{"name": "a"}\n') + len(os.readlink(repo / "apps/a/usr-link"))


def test_not_a_repo_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    with pytest.raises(NotAGitRepo, match="not a git repository"):
        inventory(tmp_path)


def test_subfolder_of_a_repo_is_refused(demo: Path) -> None:
    with pytest.raises(NotAGitRepo, match="not its root") as err:
        inventory(demo / "apps")
    assert str(demo) in (err.value.hint or "")


def test_missing_apps_dir_lists_what_exists(demo: Path) -> None:
    with pytest.raises(MissingAppsDir, match="services") as err:
        inventory(demo, apps_dirs=["services"])
    assert "apps" in (err.value.hint or "")


def test_grouping_folder_holding_workspaces_yields_the_workspaces(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "package.json": '{"workspaces": ["apps/*", "apps/tools/*", "libs/*"]}',
            "apps/web/package.json": '{"name": "web"}',
            "apps/tools/cli/package.json": '{"name": "cli"}',
            "apps/tools/lint/package.json": '{"name": "lint"}',
            "apps/plain/README.md": "no manifest, still an app folder\n",
            "libs/core/package.json": '{"name": "core"}',
        }
    )
    inv = inventory(repo, now=DEMO_NOW)
    assert sorted(a.path for a in inv.apps) == [
        "apps/plain",
        "apps/tools/cli",
        "apps/tools/lint",
        "apps/web",
    ]
    assert [p.path for p in inv.packages] == ["libs/core"]
    assert inv.app("cli").commits_total == 1


@pytest.mark.parametrize("bad", [0, -5, "90", 1.5, True])
def test_bad_staleness_days(demo: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match="staleness_days"):
        inventory(demo, staleness_days=bad)  # type: ignore[arg-type]


def test_a_single_string_apps_dir_is_accepted(demo: Path) -> None:
    assert len(inventory(demo, apps_dirs="apps", now=DEMO_NOW).apps) == 14  # type: ignore[arg-type]
