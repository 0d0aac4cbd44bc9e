"""Demo monorepos: a realistic 14-app repository for the notebook and tests, and a large
generated one for the benchmark. Both are real git repositories built with
``git fast-import`` (back-dated commits by several authors) in one process call."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsbook.archive.gitutil import git
from opsbook.errors import ConfigError

#: The demo's clock: pass ``now=DEMO_NOW`` so its classification never drifts.
DEMO_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

AUTHORS = [
    ("Ana Lima", "ana@acme.example"),
    ("Budi Santoso", "budi@acme.example"),
    ("Chen Wei", "chen@acme.example"),
    ("Dara Okafor", "dara@acme.example"),
    ("Eli Novak", "eli@acme.example"),
]


@dataclass
class Commit:
    """One commit for :func:`fast_import`; ``None`` content deletes the path."""

    when: datetime
    author: tuple[str, str]
    message: str
    files: dict[str, bytes | None] = field(default_factory=dict)


def fast_import(repo: Path, commits: Iterable[Commit], branch: str = "main") -> None:
    """Create ``repo`` (must not exist or be empty) with ``commits`` and check it out."""
    repo.mkdir(parents=True, exist_ok=True)
    if any(repo.iterdir()):
        raise ConfigError(f"{repo} is not empty", hint="pass a new or empty folder for the fixture")
    git(repo, ["init", "-q", "-b", branch])
    for key, value in (
        ("user.name", "Opsbook Demo"),
        ("user.email", "demo@opsbook.example"),
        ("commit.gpgsign", "false"),
        ("core.hooksPath", ".git/hooks"),
    ):
        git(repo, ["config", key, value])
    chunks: list[bytes] = []
    for c in sorted(commits, key=lambda c: c.when):
        ts = f"{int(c.when.timestamp())} +0000"
        who = f"{c.author[0]} <{c.author[1]}>"
        msg = c.message.encode()
        chunks.append(
            f"commit refs/heads/{branch}\nauthor {who} {ts}\ncommitter {who} {ts}\n"
            f"data {len(msg)}\n".encode()
            + msg
            + b"\n"
        )
        for path, content in sorted(c.files.items()):
            if content is None:
                chunks.append(f"D {path}\n".encode())
            else:
                chunks.append(f"M 100644 inline {path}\ndata {len(content)}\n".encode())
                chunks.append(content + b"\n")
        chunks.append(b"\n")
    git(repo, ["fast-import", "--quiet"], input_bytes=b"".join(chunks))
    git(repo, ["reset", "--hard", "-q"])


def _bulk(folder: Path, rng: random.Random, files: int, size: int) -> None:
    """Untracked dependency-like files (node_modules, .venv...) so savings are visible."""
    for i in range(files):
        target = folder / f"pkg-{i % 7}" / f"mod{i}.js"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rng.randbytes(size))


# --------------------------------------------------------------------------- demo


@dataclass
class _DemoApp:
    name: str
    kind: str  # node | python
    born: int  # days before DEMO_NOW
    edits: list[int]  # days before DEMO_NOW of later commits
    deploy: dict[str, str] = field(default_factory=dict)
    deps: list[str] = field(default_factory=list)
    readme: str = ""
    keywords: list[str] = field(default_factory=list)
    bulk_kb: int = 400
    extra: dict[str, str] = field(default_factory=dict)


_FLY = 'app = "{name}"\nprimary_region = "sin"\n\n[http_service]\n  internal_port = 8080\n'
_DOCKER_NODE = "FROM node:20-slim\nWORKDIR /app\nCOPY . .\nRUN pnpm install --frozen-lockfile\n"
_DOCKER_PY = "FROM python:3.11-slim\nWORKDIR /app\nCOPY . .\nRUN pip install .\n"
_RAILWAY = '{\n  "$schema": "https://railway.app/railway.schema.json",\n  "deploy": {"startCommand": "node dist/index.js"}\n}\n'
_VERCEL = '{\n  "framework": "nextjs",\n  "buildCommand": "pnpm build"\n}\n'

DEMO_APPS: list[_DemoApp] = [
    # 7 active apps
    _DemoApp(
        "web",
        "node",
        700,
        [60, 30, 12, 3],
        {"vercel.json": _VERCEL},
        ["@acme/ui", "@acme/config", "@acme/legacy-auth"],
        "Customer web app.",
        bulk_kb=1600,
        extra={
            "tsconfig.json": '{\n  "extends": "../../packages/config/tsconfig.json",\n'
            '  "references": [{"path": "../../packages/ui"}]\n}\n'
        },
    ),
    _DemoApp(
        "admin",
        "node",
        650,
        [80, 41, 9],
        {"vercel.json": _VERCEL},
        ["@acme/ui"],
        "Back-office admin.",
        bulk_kb=900,
    ),
    _DemoApp(
        "api",
        "python",
        700,
        [70, 20, 5, 1],
        {"Dockerfile": _DOCKER_PY, "fly.toml": _FLY.format(name="acme-api")},
        [],
        "Public REST API.",
        bulk_kb=700,
    ),
    _DemoApp(
        "worker",
        "node",
        600,
        [85, 33],
        {"Dockerfile": _DOCKER_NODE, "railway.json": _RAILWAY},
        ["@acme/config"],
        "Background jobs.",
        bulk_kb=600,
    ),
    _DemoApp(
        "docs",
        "node",
        500,
        [50, 14],
        {"netlify.toml": '[build]\n  command = "pnpm build"\n'},
        [],
        "Developer documentation site.",
        bulk_kb=500,
    ),
    _DemoApp(
        "billing",
        "python",
        400,
        [66, 22, 2],
        {"Dockerfile": _DOCKER_PY},
        ["acme-api"],
        "Invoices and payments.",
        bulk_kb=500,
    ),
    _DemoApp(
        "notifications",
        "node",
        300,
        [45, 7],
        {"Dockerfile": _DOCKER_NODE, "fly.toml": _FLY.format(name="acme-notify")},
        ["@acme/config"],
        "Email and push notifications.",
        bulk_kb=400,
    ),
    # stale, but web still depends on it -> blocked
    _DemoApp(
        "legacy-auth",
        "node",
        720,
        [400, 210],
        {},
        [],
        "Session auth used by the web app until SSO lands.",
        bulk_kb=300,
    ),
    # the four experiments (with deploy configs still running)
    _DemoApp(
        "orchestrator",
        "node",
        260,
        [200, 150, 120],
        {"Dockerfile": _DOCKER_NODE, "fly.toml": _FLY.format(name="acme-orchestrator")},
        ["@acme/config"],
        "Experimental agent orchestrator.",
        bulk_kb=2200,
    ),
    _DemoApp(
        "unified-backend",
        "node",
        180,
        [100, 40],
        {"Dockerfile": _DOCKER_NODE, "railway.json": _RAILWAY},
        ["@acme/orchestrator"],
        "One backend to replace api and worker.",
        ["poc"],
        bulk_kb=1800,
    ),
    _DemoApp(
        "flan-router",
        "python",
        200,
        [150, 95],
        {"Dockerfile": _DOCKER_PY, "fly.toml": _FLY.format(name="flan-router")},
        [],
        "Prototype router in front of a FLAN model.",
        bulk_kb=2600,
    ),
    _DemoApp(
        "ibu-nuzantara",
        "node",
        240,
        [190, 150],
        {"vercel.json": _VERCEL},
        ["@acme/ui"],
        "Experimental Bahasa assistant.",
        bulk_kb=1500,
    ),
    # stale apps nobody depends on
    _DemoApp(
        "marketing-v1",
        "node",
        900,
        [420, 300],
        {"vercel.json": _VERCEL},
        ["@acme/ui"],
        "Marketing site, replaced by the CMS.",
        bulk_kb=1200,
    ),
    _DemoApp(
        "status-page",
        "node",
        800,
        [500, 380],
        {"Procfile": "web: node server.js\n"},
        ["@acme/legacy-auth"],
        "Status page.",
        bulk_kb=500,
    ),
]

_IGNORE = b"node_modules/\n.venv/\n.next/\ndist/\n__pycache__/\n.turbo/\n"


def _manifest(app: _DemoApp) -> dict[str, bytes]:
    path = f"apps/{app.name}"
    files: dict[str, bytes] = {}
    title = app.name.replace("-", " ").title()
    files[f"{path}/README.md"] = f"# {title}\n\n{app.readme}\n".encode()
    if app.kind == "node":
        pkg = {
            "name": f"@acme/{app.name}",
            "version": "0.1.0",
            "private": True,
            "description": app.readme,
            "scripts": {"build": "tsc -b", "test": "vitest run"},
            "dependencies": {d: "workspace:*" for d in app.deps},
        }
        if app.keywords:
            pkg["keywords"] = app.keywords
        files[f"{path}/package.json"] = (json.dumps(pkg, indent=2) + "\n").encode()
        files[f"{path}/src/index.ts"] = f"export const name = '{app.name}';\n".encode()
    else:
        deps = "".join(f'  "{d}",\n' for d in app.deps)
        mod = f"acme_{app.name}" if not app.name.startswith("flan") else "flan_router"
        pyname = mod.replace("_", "-")
        files[f"{path}/pyproject.toml"] = (
            f'[project]\nname = "{pyname}"\nversion = "0.1.0"\ndescription = "{app.readme}"\n'
            f"dependencies = [\n{deps}]\n"
        ).encode()
        body = "".join(f"from {d.replace('-', '_')} import client\n" for d in app.deps)
        files[f"{path}/src/{mod}/__init__.py"] = (body + f'NAME = "{app.name}"\n').encode()
    for name, content in {**app.deploy, **app.extra}.items():
        files[f"{path}/{name}"] = content.encode()
    rng = random.Random(app.name)
    ext = "ts" if app.kind == "node" else "py"
    for i in range(rng.randint(4, 9)):
        body = "".join(f"// {app.name} module {i} line {n}\n" for n in range(rng.randint(40, 160)))
        files[f"{path}/src/lib/mod{i}.{ext}"] = body.replace(
            "//", "#" if ext == "py" else "//"
        ).encode()
    return files


def _root_files() -> dict[str, bytes]:
    names = [a.name for a in DEMO_APPS]
    root_pkg = {
        "name": "acme-monorepo",
        "private": True,
        "workspaces": ["packages/*", *[f"apps/{n}" for n in names]],
        "scripts": {"build": "turbo run build", "test": "turbo run test"},
        "devDependencies": {"turbo": "^2.0.0", "typescript": "^5.4.0"},
        "packageManager": "pnpm@9.1.0",
    }
    turbo = {
        "$schema": "https://turbo.build/schema.json",
        "tasks": {
            "build": {"dependsOn": ["^build"], "outputs": ["dist/**", ".next/**"]},
            "test": {"dependsOn": ["build"]},
            "@acme/orchestrator#deploy": {"dependsOn": ["build"], "cache": False},
            "@acme/unified-backend#deploy": {"dependsOn": ["build"], "cache": False},
            "@acme/web#deploy": {"dependsOn": ["build"], "cache": False},
        },
    }
    node_apps = [a for a in DEMO_APPS if a.kind == "node"]
    lock = "lockfileVersion: '9.0'\n\nimporters:\n\n  .: {}\n\n" + "".join(
        f"  apps/{a.name}:\n    dependencies: {{}}\n\n" for a in node_apps
    )
    files = {
        ".gitignore": _IGNORE,
        "package.json": (json.dumps(root_pkg, indent=2) + "\n").encode(),
        "pnpm-workspace.yaml": b'packages:\n  - "packages/*"\n  - "apps/*"\n',
        "turbo.json": (json.dumps(turbo, indent=2) + "\n").encode(),
        "pnpm-lock.yaml": lock.encode(),
        "tsconfig.json": b'{\n  // project references for editors\n  "files": [],\n'
        b'  "references": [\n    {"path": "apps/web"},\n    {"path": "apps/admin"},\n'
        b'    {"path": "apps/orchestrator"},\n    {"path": "apps/unified-backend"}\n  ]\n}\n',
        "README.md": b"# Acme monorepo\n\nApps live in apps/, shared code in packages/.\n",
        "packages/ui/package.json": b'{\n  "name": "@acme/ui",\n  "version": "1.0.0"\n}\n',
        "packages/ui/src/button.tsx": b"export const Button = () => null;\n",
        "packages/config/package.json": b'{\n  "name": "@acme/config",\n  "version": "1.0.0"\n}\n',
        "packages/config/tsconfig.json": b'{\n  "compilerOptions": {"strict": true}\n}\n',
        ".github/workflows/ci.yml": b"name: ci\non:\n  pull_request:\n    paths:\n"
        b"      - 'apps/web/**'\n      - 'apps/admin/**'\n      - 'packages/**'\njobs:\n"
        b"  build:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n"
        b"      - run: pnpm turbo run build test\n",
    }
    for app in ("api", "orchestrator", "flan-router"):
        files[f".github/workflows/deploy-{app}.yml"] = (
            f"name: deploy {app}\non:\n  push:\n    branches: [main]\n    paths: ['apps/{app}/**']\n"
            f"jobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n"
            f"      - uses: actions/checkout@v4\n"
            f"      - run: flyctl deploy --config apps/{app}/fly.toml\n"
        ).encode()
    files[".github/workflows/preview-ibu-nuzantara.yml"] = (
        b"name: preview\non: [pull_request]\njobs:\n  preview:\n    runs-on: ubuntu-latest\n"
        b"    steps:\n      - run: pnpm --filter @acme/ibu-nuzantara build\n"
        b"      - run: vercel deploy apps/ibu-nuzantara\n"
    )
    return files


def _demo_commits(rng: random.Random) -> list[Commit]:
    root_age = max(a.born for a in DEMO_APPS) + 10
    commits = [
        Commit(
            DEMO_NOW - timedelta(days=root_age),
            AUTHORS[0],
            "chore: monorepo setup",
            {k: v for k, v in _root_files().items() if not k.startswith(".github")},
        )
    ]
    commits.append(
        Commit(
            DEMO_NOW - timedelta(days=root_age - 1),
            AUTHORS[1],
            "ci: workflows",
            {k: v for k, v in _root_files().items() if k.startswith(".github")},
        )
    )
    for i, app in enumerate(DEMO_APPS):
        born = DEMO_NOW - timedelta(days=app.born, hours=i)
        commits.append(
            Commit(born, AUTHORS[i % len(AUTHORS)], f"feat({app.name}): scaffold", _manifest(app))
        )
        for n, age in enumerate(app.edits):
            who = AUTHORS[rng.randrange(len(AUTHORS))]
            line = f"// change {n} by {who[0]}\n".encode()
            name = "src/index.ts" if app.kind == "node" else "CHANGES.md"
            commits.append(
                Commit(
                    DEMO_NOW - timedelta(days=age, hours=i),
                    who,
                    f"fix({app.name}): change {n}",
                    {f"apps/{app.name}/{name}": line * (n + 2)},
                )
            )
    return commits


def make_demo_monorepo(path: str | Path, seed: int = 0) -> Path:
    """Create the 14-app demo monorepo at ``path`` (a new or empty folder).

    7 active apps, 1 stale app the web app depends on (blocked), 4 experiments with deploy
    configs (orchestrator, unified-backend, flan-router, ibu-nuzantara) and 2 stale apps.
    Dependency folders (node_modules, .venv, .next) are written untracked and gitignored.
    Use ``now=DEMO_NOW`` when auditing it.
    """
    repo = Path(path)
    rng = random.Random(seed)
    fast_import(repo, _demo_commits(rng))
    for app in DEMO_APPS:
        folder = repo / "apps" / app.name
        dep = ".venv/lib" if app.kind == "python" else "node_modules"
        _bulk(folder / dep, rng, 16, app.bulk_kb * 1024 // 16)
        if app.name == "web":
            _bulk(folder / ".next" / "cache", rng, 8, 64 * 1024)
    _bulk(repo / "node_modules", rng, 8, 32 * 1024)
    return repo.resolve()


# --------------------------------------------------------------------------- large


def make_large_monorepo(
    path: str | Path,
    apps: int = 200,
    files: int = 50_000,
    commits: int = 2_000,
    bulk_files_per_app: int = 20,
    seed: int = 0,
) -> Path:
    """A big synthetic monorepo for benchmarks: ``apps`` apps, ``files`` tracked files,
    ``commits`` back-dated commits after the initial import, plus untracked bulk."""
    repo = Path(path)
    rng = random.Random(seed)
    per_app = max(1, files // apps)
    start = DEMO_NOW - timedelta(days=900)
    initial: dict[str, bytes] = {
        ".gitignore": _IGNORE,
        "package.json": json.dumps(
            {"name": "big", "private": True, "workspaces": ["apps/*"]}, indent=2
        ).encode()
        + b"\n",
    }
    for a in range(apps):
        base = f"apps/app-{a:03d}"
        initial[f"{base}/package.json"] = json.dumps(
            {"name": f"@big/app-{a:03d}", "dependencies": {f"@big/app-{(a + 1) % apps:03d}": "*"}}
        ).encode()
        for f in range(per_app - 1):
            initial[f"{base}/src/d{f % 10}/f{f}.ts"] = f"export const v{a}_{f} = {f};\n".encode()
    history = [Commit(start, AUTHORS[0], "initial import", initial)]
    for c in range(commits):
        a = rng.randrange(apps)
        when = start + timedelta(days=rng.uniform(1, 899))
        history.append(
            Commit(
                when,
                AUTHORS[c % len(AUTHORS)],
                f"change {c}",
                {f"apps/app-{a:03d}/src/d0/f0.ts": f"// {c}\n".encode()},
            )
        )
    fast_import(repo, history)
    for a in range(apps):
        _bulk(repo / f"apps/app-{a:03d}/node_modules", rng, bulk_files_per_app, 2048)
    return repo.resolve()
