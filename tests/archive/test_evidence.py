"""Evidence families and decision rules on small repositories that reproduce the patterns
met in real monorepos (nothing is fetched: each pattern is written here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsbook.archive import DEMO_NOW, classify, inventory
from opsbook.archive.classify import Classification

from .helpers import MakeRepo

PNPM = "packages:\n  - 'apps/*'\n"
PROD_WORKFLOW = (
    "name: Deploy PROD API\non:\n  workflow_dispatch:\njobs:\n  deploy:\n"
    "    runs-on: ubuntu-latest\n    environment: Production\n    steps:\n"
    "      - run: pnpm build:api && docker push ghcr.io/acme/api:prod\n"
)


def _pkg(name: str, **extra: object) -> str:
    return json.dumps({"name": name, "version": "1.0.0", "private": True, **extra}, indent=2)


def _audit(repo: Path, **kw: object) -> Classification:
    return classify(inventory(repo, now=DEMO_NOW, **kw))  # type: ignore[arg-type]


def _kinds(classification: Classification, app: str, stance: str | None = None) -> set[str]:
    return {e.kind for e in classification.verdicts[app].evidence if stance in (None, e.stance)}


# --------------------------------------------------------------------------- activity


def _quiet_repo(make_repo: MakeRepo, extra: dict[str, str] | None = None) -> Path:
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/api/package.json": _pkg("@acme/api"),
        "apps/web/package.json": _pkg("@acme/web"),
        "apps/old/package.json": _pkg("@acme/old"),
        ".github/workflows/prod-deploy-api.yml": PROD_WORKFLOW,
        **(extra or {}),
    }
    ages = {p: 700 for p in files} | {"apps/old/package.json": 1500}
    return make_repo(files, ages)


def test_quiet_repository_proposes_nothing_for_age_and_says_so(make_repo: MakeRepo) -> None:
    classification = _audit(_quiet_repo(make_repo))
    assert classification.inventory.quiet is True
    assert classification.summary()["repo_quiet"] is True
    assert classification.statement.startswith(
        "The repository is quiet: its newest commit (2024-12-"
    )
    assert classification.candidates == []
    # web was committed in the window before the newest commit: active relative to the repo
    assert {n: v.rule for n, v in classification.verdicts.items()} == {
        "api": "R2",
        "old": "R8",
        "web": "R6",
    }
    stale = [e for e in classification.verdicts["old"].evidence if e.kind == "stale"]
    assert [e.stance for e in stale] == ["info"]  # shown, not counted
    assert "800 days before the repository's newest commit" in stale[0].text


def test_quiet_repository_still_proposes_a_declared_deprecation(make_repo: MakeRepo) -> None:
    deprecated = _pkg("@acme/old", deprecated="replaced by @acme/web")
    classification = _audit(_quiet_repo(make_repo, {"apps/old/package.json": deprecated}))
    assert classification.candidates == ["old"]
    assert classification.verdicts["old"].rule == "R4"
    assert classification.verdicts["old"].confidence == "high"


def test_staleness_counts_from_the_newest_commit_not_the_clock(make_repo: MakeRepo) -> None:
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/busy/package.json": _pkg("@acme/busy"),
        "apps/idle/package.json": _pkg("@acme/idle"),
    }
    # the whole repo is 1000 days old; busy was touched last, idle 300 days earlier
    repo = make_repo(files, {p: 1000 for p in files} | {"apps/idle/package.json": 1300})
    classification = _audit(
        repo, staleness_days=2000
    )  # a window longer than the silence: not quiet
    assert classification.inventory.quiet is False and classification.candidates == []
    classification = _audit(repo, staleness_days=200)  # quiet repo: nothing for age alone
    assert classification.inventory.quiet is True and classification.candidates == []
    busy, idle = classification.inventory.app("busy"), classification.inventory.app("idle")
    assert (busy.days_behind_head, idle.days_behind_head) == (0, 300)
    assert busy.commits_recent == 1 and busy.share_recent == pytest.approx(1 / 2)


def test_active_repository_archives_an_app_stale_against_the_repo(make_repo: MakeRepo) -> None:
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/busy/package.json": _pkg("@acme/busy"),
        "apps/idle/package.json": _pkg("@acme/idle"),
    }
    repo = make_repo(files, {"apps/idle/package.json": 400})
    classification = _audit(repo)
    assert classification.candidates == ["idle"]
    assert (classification.verdicts["idle"].rule, classification.verdicts["idle"].confidence) == (
        "R10",
        "medium",
    )
    assert classification.verdicts["busy"].rule == "R6"


# --------------------------------------------------------------------------- production


def _prod_repo(make_repo: MakeRepo, api_files: dict[str, str]) -> Path:
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/api/package.json": _pkg("@acme/api"),
        "apps/web/package.json": _pkg("@acme/web"),
        ".github/workflows/prod-deploy-api.yml": PROD_WORKFLOW,
        **api_files,
    }
    ages = {p: 700 for p in files if p.startswith("apps/api/")}
    return make_repo(files, ages)


@pytest.mark.parametrize(
    ("api_files", "decision", "rule"),
    [
        ({}, "keep", "R2"),
        ({"apps/api/README.md": "# API\n\nExperimental rewrite.\n"}, "keep", "R2"),
        ({"apps/api/catalog-info.yaml": "spec:\n  lifecycle: experimental\n"}, "keep", "R2"),
        ({"apps/api/package.json": _pkg("@acme/api", deprecated="use web")}, "archive", "R4"),
        ({"apps/api/catalog-info.yaml": "spec:\n  lifecycle: deprecated\n"}, "archive", "R4"),
        ({"apps/api/README.md": "# API\n\nDeprecated: moved to web.\n"}, "archive", "R4"),
    ],
)
def test_production_deploy_vetoes_unless_deprecated(
    make_repo: MakeRepo, api_files: dict[str, str], decision: str, rule: str
) -> None:
    classification = _audit(_prod_repo(make_repo, api_files))
    verdict = classification.verdicts["api"]
    assert (verdict.decision, verdict.rule) == (decision, rule)
    prod = [e for e in verdict.evidence if e.kind == "prod-deploy"]
    assert [e.source for e in prod] == [".github/workflows/prod-deploy-api.yml (file name)"]


def test_reusable_deploy_workflow_names_the_app_for_its_caller(make_repo: MakeRepo) -> None:
    caller = (
        "name: Deploy PROD WEB\non: workflow_dispatch\njobs:\n  web:\n"
        "    uses: ./.github/workflows/reusable-site.yml\n    with:\n      environment: Production\n"
    )
    reusable = (
        "on: workflow_call\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: pnpm build\n        working-directory: apps/site\n"
        "      - run: netlify deploy --prod\n"
    )
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/site/package.json": _pkg("@acme/site"),
        "apps/busy/package.json": _pkg("@acme/busy"),
        ".github/workflows/release-web.yml": caller,
        ".github/workflows/reusable-site.yml": reusable,
    }
    classification = _audit(make_repo(files, {"apps/site/package.json": 500}))
    site = classification.verdicts["site"]
    assert site.decision == "keep" and site.rule == "R2"
    sources = {e.source for e in site.evidence if e.kind == "prod-deploy"}
    assert (
        ".github/workflows/reusable-site.yml:7 (called from .github/workflows/release-web.yml)"
        in (sources)
    )


def test_plain_deploy_workflow_keeps_a_stale_app_without_lifecycle(make_repo: MakeRepo) -> None:
    wf = "name: deploy\non: push\njobs:\n  d:\n    steps:\n      - run: flyctl deploy apps/svc\n"
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/svc/package.json": _pkg("@acme/svc"),
        "apps/busy/package.json": _pkg("@acme/busy"),
        ".github/workflows/deploy.yml": wf,
    }
    classification = _audit(make_repo(files, {"apps/svc/package.json": 500}))
    assert (classification.verdicts["svc"].decision, classification.verdicts["svc"].rule) == (
        "keep",
        "R9",
    )


# --------------------------------------------------------------------------- lifecycle


def test_workspace_exclusion_under_a_deprecation_comment_is_proposed(make_repo: MakeRepo) -> None:
    pnpm = (
        "packages:\n  - 'packages/*'\n"
        "  # exclude the angular and vue packages as they will be deprecated by the new Inbox\n"
        "  - '!packages/nc-angular'\n  - '!packages/nc-vue'\n  - 'apps/*'\n"
    )
    public = json.dumps({"name": "@acme/nc-angular", "version": "2.0.0"})
    files = {
        "pnpm-workspace.yaml": pnpm,
        "apps/web/package.json": _pkg("@acme/web"),
        "packages/nc-angular/package.json": public,
        "packages/nc-vue/package.json": _pkg("@acme/nc-vue"),
        "packages/ui/package.json": _pkg("@acme/ui"),
    }
    classification = _audit(make_repo(files), apps_dirs=["apps", "packages"])
    assert sorted(classification.candidates) == ["nc-angular", "nc-vue"]
    verdict = classification.verdicts["nc-angular"]
    assert verdict.rule == "R4" and "public" in _kinds(classification, "nc-angular", "against")
    excl = next(e for e in verdict.evidence if e.kind == "deprecated")
    assert excl.source == "pnpm-workspace.yaml:4"
    assert "will be deprecated by the new Inbox" in excl.text
    assert next(
        e for e in classification.verdicts["nc-vue"].evidence if e.kind == "deprecated"
    ).source == ("pnpm-workspace.yaml:5")
    assert classification.verdicts["ui"].decision == "keep"


def test_exclusion_without_a_reason_is_weaker_evidence(make_repo: MakeRepo) -> None:
    pnpm = "packages:\n  - 'apps/*'\n  - '!apps/lab'\n"
    files = {"pnpm-workspace.yaml": pnpm, "apps/lab/package.json": _pkg("@acme/lab")}
    files["apps/web/package.json"] = _pkg("@acme/web")
    classification = _audit(make_repo(files, {"apps/lab/package.json": 400}))
    assert (classification.verdicts["lab"].rule, classification.verdicts["lab"].decision) == (
        "R7",
        "archive",
    )
    assert classification.verdicts["lab"].confidence == "medium"


@pytest.mark.parametrize(
    ("lifecycle", "decision", "rule"),
    [
        ("experimental", "archive", "R5"),
        ("production", "keep", "R2"),
        ("deprecated", "archive", "R4"),
    ],
)
def test_backstage_catalog_lifecycle(
    make_repo: MakeRepo, lifecycle: str, decision: str, rule: str
) -> None:
    catalog = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: lab\n"
        f"spec:\n  type: service\n  lifecycle: {lifecycle}\n  owner: team-a\n"
    )
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/lab/package.json": _pkg("@acme/lab"),
        "apps/lab/catalog-info.yaml": catalog,
    }
    classification = _audit(make_repo(files))
    verdict = classification.verdicts["lab"]
    assert (verdict.decision, verdict.rule) == (decision, rule)
    assert any(e.source == "apps/lab/catalog-info.yaml:7" for e in verdict.evidence)


# --------------------------------------------------------------------------- dependants


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("import { Widget } from '@acme/widgets';\n", "import '@acme/widgets'"),
        ("// web\nconst w = require('@acme/widgets/dist/a');\n", "import '@acme/widgets/dist/a'"),
        ("export * from '@acme/widgets';\n", "import '@acme/widgets'"),
        ("const m = await import('@acme/widgets');\n", "import '@acme/widgets'"),
        ("import w from '../../widgets/src/w';\n", "import '../../widgets/src/w'"),
        ("import w from '@w/button';\n", "import '@w/button'"),
    ],
)
def test_import_only_dependant_blocks_its_dependency(
    make_repo: MakeRepo, source: str, line: str
) -> None:
    tsbase = json.dumps(
        {"compilerOptions": {"baseUrl": ".", "paths": {"@w/*": ["apps/widgets/src/*"]}}}
    )
    files = {
        "pnpm-workspace.yaml": PNPM,
        "tsconfig.base.json": tsbase,
        "apps/web/package.json": _pkg("@acme/web"),  # no dependency declared
        "apps/web/src/index.ts": source,
        "apps/widgets/package.json": _pkg("@acme/widgets"),
        "apps/widgets/src/w.ts": "export const w = 1;\n",
    }
    ages = {"apps/widgets/package.json": 400, "apps/widgets/src/w.ts": 400}
    classification = _audit(make_repo(files, ages))
    assert classification.blocked == {"widgets": ["web"]}
    why = classification.verdicts["widgets"].blocked_by["web"]
    n = source.count("\n", 0, source.index("'")) + 1
    assert why == f"{line} in apps/web/src/index.ts:{n}"


def test_without_the_import_the_dependency_is_archived(make_repo: MakeRepo) -> None:
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/web/package.json": _pkg("@acme/web"),
        "apps/web/src/index.ts": "import { x } from '@acme/other';\n",
        "apps/widgets/package.json": _pkg("@acme/widgets"),
    }
    classification = _audit(make_repo(files, {"apps/widgets/package.json": 400}))
    assert classification.candidates == ["widgets"] and classification.blocked == {}


# --------------------------------------------------------------------------- publication


@pytest.mark.parametrize(
    ("extra", "decision", "rule"),
    [
        ({}, "keep", "R1"),
        ({"apps/sdk/README.md": "# SDK\n\nDeprecated, use sdk2.\n"}, "keep", "R1"),
        ({"apps/sdk/README.md": "# SDK\n\nExperimental.\n"}, "keep", "R1"),
        ({"apps/sdk/catalog-info.yaml": "spec:\n  lifecycle: deprecated\n"}, "archive", "R4"),
    ],
)
def test_public_package_needs_an_explicit_deprecation(
    make_repo: MakeRepo, extra: dict[str, str], decision: str, rule: str
) -> None:
    sdk = json.dumps({"name": "@acme/sdk", "version": "2.1.0"}, indent=2)
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/web/package.json": _pkg("@acme/web"),
        "apps/sdk/package.json": sdk,
        **extra,
    }
    classification = _audit(make_repo(files, {p: 400 for p in files if p.startswith("apps/sdk")}))
    verdict = classification.verdicts["sdk"]
    assert (verdict.decision, verdict.rule) == (decision, rule)
    public = next(e for e in verdict.evidence if e.kind == "public")
    assert public.source == "apps/sdk/package.json:2" and "@acme/sdk@2.1.0" in public.text


def test_npm_deprecated_field_archives_a_public_package(make_repo: MakeRepo) -> None:
    sdk = json.dumps({"name": "@acme/sdk", "version": "2.1.0", "deprecated": "use @acme/sdk2"})
    files = {"pnpm-workspace.yaml": PNPM, "apps/sdk/package.json": sdk}
    files["apps/web/package.json"] = _pkg("@acme/web")
    classification = _audit(make_repo(files))
    assert (classification.verdicts["sdk"].decision, classification.verdicts["sdk"].rule) == (
        "archive",
        "R4",
    )


# --------------------------------------------------------------------------- ci, ownership


def test_codeowners_and_ci_are_evidence_against_that_lower_confidence(
    make_repo: MakeRepo,
) -> None:
    owners = "* @acme/platform\n/apps/old/ @acme/growth\n"
    ci = "name: ci\non: push\njobs:\n  t:\n    steps:\n      - run: pnpm --filter @acme/old test\n"
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/old/package.json": _pkg("@acme/old"),
        "apps/web/package.json": _pkg("@acme/web"),
        ".github/CODEOWNERS": owners,
        ".github/workflows/ci.yml": ci,
    }
    classification = _audit(make_repo(files, {"apps/old/package.json": 400}))
    old = classification.verdicts["old"]
    assert old.decision == "archive" and old.confidence == "low"
    against = {e.kind: e.source for e in old.against}
    assert against == {"owner": ".github/CODEOWNERS:2", "ci": ".github/workflows/ci.yml:6"}
    web = {
        e.kind: e.source for e in classification.verdicts["web"].evidence if e.family == "ownership"
    }
    assert web == {"default-owner": ".github/CODEOWNERS:1"}


# --------------------------------------------------------------------------- demo + table


def test_demo_archives_its_four_experiments_by_declared_lifecycle(demo: Path) -> None:
    classification = _audit(demo)
    rules = {n: classification.verdicts[n].rule for n in classification.candidates}
    assert {n for n, r in rules.items() if r == "R5"} == {
        "orchestrator",
        "unified-backend",
        "flan-router",
        "ibu-nuzantara",
    }
    assert classification.summary()["repo_quiet"] is False


def test_dry_run_table_and_matrix_carry_the_evidence(demo: Path) -> None:
    classification = _audit(demo)
    table = classification.frame().set_index("app")
    assert "marker 'experimental'" in table.loc["orchestrator", "evidence_for"]
    assert "apps/orchestrator/fly.toml:1" in table.loc["orchestrator", "evidence_against"]
    assert "blocked: web depends on it" in table.loc["legacy-auth", "evidence_against"]
    assert table.loc["web", "rule"].startswith("R6: active")
    matrix = classification.matrix().set_index("app")
    assert list(matrix.columns[:7]) == [
        "activity",
        "production",
        "dependants",
        "lifecycle",
        "ci",
        "ownership",
        "publication",
    ]
    assert matrix.loc["orchestrator", "lifecycle"] == "for"
    assert matrix.loc["legacy-auth", "dependants"] == "against"
    assert matrix.loc["web", "activity"] == "against"


@pytest.mark.parametrize(
    "source",
    [
        "const snippet = `import Plugin from '@acme/widgets';\nimport '@acme/widgets/a.css';`;\n",
        "// import { Widget } from '@acme/widgets';\n",
        "/* const w = require('@acme/widgets'); */\n",
    ],
)
def test_imports_in_docs_snippets_and_comments_do_not_count(
    make_repo: MakeRepo, source: str
) -> None:
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/web/package.json": _pkg("@acme/web"),
        "apps/web/src/quick-start.tsx": source,
        "apps/widgets/package.json": _pkg("@acme/widgets"),
    }
    classification = _audit(make_repo(files, {"apps/widgets/package.json": 400}))
    assert classification.candidates == ["widgets"] and classification.blocked == {}


def test_private_as_a_string_is_private(make_repo: MakeRepo) -> None:
    api = json.dumps({"name": "@acme/api", "version": "2.0.0", "private": "true"})
    files = {"pnpm-workspace.yaml": PNPM, "apps/api/package.json": api}
    files["apps/web/package.json"] = _pkg("@acme/web")
    classification = _audit(make_repo(files, {"apps/api/package.json": 400}))
    assert "public" not in _kinds(classification, "api") and classification.candidates == ["api"]


def test_an_e2e_workflow_called_by_a_deploy_is_ci_for_the_services_it_starts(
    make_repo: MakeRepo,
) -> None:
    deploy = (
        "name: Deploy PROD WIDGET\non: workflow_dispatch\njobs:\n  e2e:\n"
        "    uses: ./.github/workflows/reusable-widget-e2e.yml\n  deploy:\n"
        "    steps:\n      - run: netlify deploy --prod --dir apps/widget/build\n"
    )
    e2e = "on: workflow_call\njobs:\n  t:\n    steps:\n      - run: pnpm start:api & pnpm test\n        working-directory: apps/api\n"
    files = {
        "pnpm-workspace.yaml": PNPM,
        "apps/api/package.json": _pkg("@acme/api"),
        "apps/widget/package.json": _pkg("@acme/widget"),
        ".github/workflows/prod-deploy-widget.yml": deploy,
        ".github/workflows/reusable-widget-e2e.yml": e2e,
    }
    classification = _audit(make_repo(files))
    assert "prod-deploy" in _kinds(classification, "widget")
    assert _kinds(classification, "api", "against") == {"active", "ci"}


def test_a_root_script_that_uses_an_app_blocks_it(make_repo: MakeRepo) -> None:
    root = json.dumps(
        {"name": "root", "scripts": {"build": "turbo build", "gen": "cd apps/gen && npm run go"}},
        indent=2,
    )
    files = {
        "package.json": root,
        "pnpm-workspace.yaml": PNPM,
        "apps/gen/package.json": _pkg("@acme/gen"),
        "apps/web/package.json": _pkg("@acme/web"),
    }
    classification = _audit(make_repo(files, {"apps/gen/package.json": 400}))
    assert classification.blocked == {"gen": ["(root package.json)"]}
    why = classification.verdicts["gen"].blocked_by["(root package.json)"]
    assert why == "root script `gen: cd apps/gen && npm run go` (package.json:5)"
