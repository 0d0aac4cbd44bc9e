"""Workspace definitions (npm/yarn, pnpm, lerna, uv, turbo, nx, tsconfig) and their edits.

Reading: which folders are workspace members, and the package name of each.
Editing: remove the entries that list an archived app, and put them back on restore, each
change recorded as an :class:`Edit` so restore can re-insert the exact original text.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from opsbook.archive import jsonedit
from opsbook.archive.paths import contained
from opsbook.errors import ConfigError

#: Folder names holding installed dependencies, build output or caches (regenerable).
DEP_DIRS = frozenset(
    {
        "node_modules",
        ".venv",
        "venv",
        "dist",
        "build",
        ".next",
        ".nuxt",
        ".turbo",
        ".cache",
        ".parcel-cache",
        ".svelte-kit",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        "coverage",
        ".tox",
    }
)


@dataclass
class WorkspaceSource:
    """One file declaring workspace members: ``package.json``, ``pnpm-workspace.yaml``..."""

    file: str
    kind: str  # npm | pnpm | lerna | uv
    patterns: list[str]


@dataclass
class Package:
    """A folder with a manifest: its package name and declared dependencies."""

    path: str
    name: str | None
    kind: str  # node | python | dir
    dependencies: set[str] = field(default_factory=set)
    description: str = ""
    keywords: list[str] = field(default_factory=list)


EDIT_KINDS = ("json-array", "json-object", "yaml-list")


@dataclass
class Edit:
    """One entry removed from a config file, enough to put it back byte for byte."""

    file: str
    kind: str  # json-array | json-object | yaml-list
    path: list[str]
    value: str
    raw: str
    order: list[str]
    app: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def norm(rel: str) -> str:
    """Normalise a workspace entry or relative path: no ``./``, no trailing slash."""
    rel = rel.strip().replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    return rel.rstrip("/")


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(pattern: str, rel: str) -> bool:
    """True when the workspace glob ``pattern`` selects the folder ``rel``."""
    return bool(_glob_regex(norm(pattern)).match(norm(rel)))


def _walk_dirs(repo: Path, rel: str, max_depth: int) -> list[str]:
    out: list[str] = []
    if max_depth < 0:
        return out
    try:
        entries = list(os.scandir(repo / rel if rel else repo))
    except OSError:
        return out
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        if entry.name in DEP_DIRS or entry.name.startswith(".") or entry.name == "archive":
            continue
        child = f"{rel}/{entry.name}" if rel else entry.name
        out.append(child)
        out.extend(_walk_dirs(repo, child, max_depth - 1))
    return out


def expand(repo: Path, patterns: list[str]) -> list[str]:
    """Folders (relative, sorted) selected by workspace patterns, ``!`` negations applied."""
    include = [norm(p) for p in patterns if not p.strip().startswith("!")]
    exclude = [norm(p.strip()[1:]) for p in patterns if p.strip().startswith("!")]
    found: set[str] = set()
    for pat in include:
        if not any(ch in pat for ch in "*?["):
            if (repo / pat).is_dir():
                found.add(pat)
            continue
        fixed = []
        for seg in pat.split("/"):
            if any(ch in seg for ch in "*?["):
                break
            fixed.append(seg)
        base = "/".join(fixed)
        depth = 8 if "**" in pat else pat.count("/") - base.count("/") - (1 if base else 0)
        for cand in _walk_dirs(repo, base, depth):
            if matches(pat, cand) and _has_manifest(repo / cand):
                found.add(cand)
    return sorted(f for f in found if not any(matches(x, f) for x in exclude))


def _has_manifest(folder: Path) -> bool:
    return (folder / "package.json").is_file() or (folder / "pyproject.toml").is_file()


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read {path}: {exc}", hint="fix the JSON file and run again"
        ) from exc


def sources(repo: Path) -> list[WorkspaceSource]:
    """Every workspace declaration found at the repository root."""
    found: list[WorkspaceSource] = []
    pkg = repo / "package.json"
    if pkg.is_file():
        ws = _load_json(pkg).get("workspaces")
        if isinstance(ws, dict):
            ws = ws.get("packages", [])
        if isinstance(ws, list):
            found.append(WorkspaceSource("package.json", "npm", [str(p) for p in ws]))
    pnpm = repo / "pnpm-workspace.yaml"
    if pnpm.is_file():
        data = yaml.safe_load(pnpm.read_text(encoding="utf-8")) or {}
        found.append(
            WorkspaceSource(
                "pnpm-workspace.yaml", "pnpm", [str(p) for p in data.get("packages", [])]
            )
        )
    lerna = repo / "lerna.json"
    if lerna.is_file():
        pats = _load_json(lerna).get("packages")
        if isinstance(pats, list):
            found.append(WorkspaceSource("lerna.json", "lerna", [str(p) for p in pats]))
    pyproject = repo / "pyproject.toml"
    if pyproject.is_file():
        members = _toml(pyproject).get("tool", {}).get("uv", {}).get("workspace", {})
        if members.get("members"):
            found.append(WorkspaceSource("pyproject.toml", "uv", list(members["members"])))
    return found


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", hint="fix the TOML file") from exc


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _python_dep_name(req: str) -> str | None:
    m = _REQ_NAME.match(req)
    return m.group(1).lower().replace("_", "-") if m else None


def read_package(repo: Path, rel: str) -> Package:
    """Name, kind, dependencies and metadata of the folder ``rel``."""
    folder = repo / rel
    if (folder / "package.json").is_file():
        data = _load_json(folder / "package.json")
        deps: set[str] = set()
        for key in ("dependencies", "devDependencies", "peerDependencies", "optionalDependencies"):
            if isinstance(data.get(key), dict):
                deps.update(data[key])
        kw = data.get("keywords") if isinstance(data.get("keywords"), list) else []
        return Package(rel, data.get("name"), "node", deps, str(data.get("description", "")), kw)
    if (folder / "pyproject.toml").is_file():
        data = _toml(folder / "pyproject.toml")
        proj = data.get("project", {}) or data.get("tool", {}).get("poetry", {})
        reqs = list(
            proj.get("dependencies", []) if isinstance(proj.get("dependencies"), list) else []
        )
        names = {n for n in (_python_dep_name(r) for r in reqs) if n}
        if isinstance(proj.get("dependencies"), dict):
            names.update(k.lower() for k in proj["dependencies"])
        name = proj.get("name")
        return Package(
            rel,
            name.lower().replace("_", "-") if name else None,
            "python",
            names,
            str(proj.get("description", "")),
            list(proj.get("keywords", [])),
        )
    return Package(rel, None, "dir")


# --------------------------------------------------------------------------- edits


def _json_targets(repo: Path) -> list[tuple[str, list[str], str]]:
    """(file, json path, kind) of every JSON container that may list apps."""
    out: list[tuple[str, list[str], str]] = []
    pkg = repo / "package.json"
    if pkg.is_file():
        ws = _load_json(pkg).get("workspaces")
        if isinstance(ws, list):
            out.append(("package.json", ["workspaces"], "json-array"))
        elif isinstance(ws, dict):
            out.append(("package.json", ["workspaces", "packages"], "json-array"))
    if (repo / "lerna.json").is_file():
        out.append(("lerna.json", ["packages"], "json-array"))
    if (repo / "tsconfig.json").is_file():
        out.append(("tsconfig.json", ["references"], "json-array"))
    if (repo / "turbo.json").is_file():
        out.append(("turbo.json", ["pipeline"], "json-object"))
        out.append(("turbo.json", ["tasks"], "json-object"))
    for nx in ("workspace.json", "angular.json"):
        if (repo / nx).is_file():
            out.append((nx, ["projects"], "json-object"))
    return out


def _item_value(node: jsonedit.Node) -> str | None:
    if node.kind == "string":
        return norm(str(node.value))
    if node.kind == "object":  # tsconfig {"path": ...}, nx {"root": ...}
        for key in ("path", "root"):
            sub = node.member(key)
            if sub is not None and sub.kind == "string":
                return norm(str(sub.value))
    return None


def _points_at(value: str | None, app_path: str) -> bool:
    if value is None:
        return False
    value = norm(value)
    return value == app_path or value.startswith(app_path + "/")


def plan_edits(repo: Path, apps: dict[str, str | None]) -> list[Edit]:
    """Entries to remove for the archived ``apps`` (path -> package name)."""
    edits: list[Edit] = []
    for file, path, kind in _json_targets(repo):
        text = (repo / file).read_text(encoding="utf-8")
        node = jsonedit.parse(text, file).find(path)
        if node is None or node.kind != ("array" if kind == "json-array" else "object"):
            continue
        order = _order(node, kind)
        for i, (start, end) in enumerate(node.item_spans()):
            for app_path, pkg_name in apps.items():
                if _json_hit(node, i, kind, app_path, pkg_name):
                    edits.append(Edit(file, kind, path, order[i], text[start:end], order, app_path))
    edits.extend(_pnpm_edits(repo, apps))
    return edits


def _order(node: jsonedit.Node, kind: str) -> list[str]:
    if kind == "json-object":
        return list(node.keys)
    return [_item_value(it) or json.dumps(it.value) for it in node.items]


def _json_hit(node: jsonedit.Node, i: int, kind: str, app_path: str, pkg: str | None) -> bool:
    if kind == "json-array":
        return _points_at(_item_value(node.items[i]), app_path)
    key = node.keys[i]
    if pkg and key.split("#", 1)[0] == pkg and "#" in key:  # turbo "pkg#task"
        return True
    value = node.items[i]
    return _points_at(_item_value(value), app_path) if value.kind != "scalar" else False


_YAML_ITEM = re.compile(r"^(\s*)-\s")


def _pnpm_items(text: str) -> list[tuple[int, str]]:
    """(line index, value) of each item of the top-level ``packages:`` list."""
    lines = text.splitlines(keepends=True)
    items: list[tuple[int, str]] = []
    inside = False
    for idx, line in enumerate(lines):
        if re.match(r"^packages\s*:", line):
            inside = True
            continue
        if not inside or not line.strip() or line.lstrip().startswith("#"):
            continue
        if _YAML_ITEM.match(line):
            parsed = yaml.safe_load(line.strip())
            if isinstance(parsed, list) and parsed and isinstance(parsed[0], str):
                items.append((idx, norm(parsed[0])))
        elif not line[0].isspace():
            break
    return items


def _pnpm_edits(repo: Path, apps: dict[str, str | None]) -> list[Edit]:
    path = repo / "pnpm-workspace.yaml"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    items = _pnpm_items(text)
    order = [v for _, v in items]
    return [
        Edit("pnpm-workspace.yaml", "yaml-list", ["packages"], value, lines[idx], order, app)
        for idx, value in items
        for app in apps
        if _points_at(value, app)
    ]


def apply_edit(repo: Path, edit: Edit) -> None:
    """Remove the entry described by ``edit`` from its file (no-op if already gone)."""
    path = contained(repo, edit.file, "config file")
    text = path.read_text(encoding="utf-8")
    if edit.kind == "yaml-list":
        lines = text.splitlines(keepends=True)
        for idx, value in _pnpm_items(text):
            if value == edit.value:
                del lines[idx]
                break
        path.write_text("".join(lines), encoding="utf-8")
        return
    node = jsonedit.parse(text, edit.file).find(edit.path)
    if node is None:
        return
    order = _order(node, edit.kind)
    if edit.value in order:
        path.write_text(jsonedit.remove_item(text, node, order.index(edit.value)), encoding="utf-8")


def revert_edit(repo: Path, edit: Edit) -> bool:
    """Put an entry back where it was relative to its neighbours; False if already there."""
    path = contained(repo, edit.file, "config file")
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    if edit.kind == "yaml-list":
        items = _pnpm_items(text)
        current = [v for _, v in items]
        if edit.value in current:
            return False
        lines = text.splitlines(keepends=True)
        pos = jsonedit.position_for(edit.order, current, edit.value)
        at = items[pos][0] if pos < len(items) else (items[-1][0] + 1 if items else len(lines))
        raw = edit.raw if edit.raw.endswith("\n") else edit.raw + "\n"
        if at == len(lines) and lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.insert(at, raw)
        path.write_text("".join(lines), encoding="utf-8")
        return True
    node = jsonedit.parse(text, edit.file).find(edit.path)
    if node is None:
        return False
    current = _order(node, edit.kind)
    if edit.value in current:
        return False
    pos = jsonedit.position_for(edit.order, current, edit.value)
    path.write_text(jsonedit.insert_item(text, node, pos, edit.raw), encoding="utf-8")
    return True


def unresolved_entries(repo: Path) -> tuple[list[str], list[str]]:
    """(broken, empty): literal entries naming no folder, and globs selecting nothing.

    Package managers fail on a missing literal workspace; an empty glob is only a warning.
    """
    broken: list[str] = []
    empty: list[str] = []
    for src in sources(repo):
        for pat in src.patterns:
            if pat.strip().startswith("!") or expand(repo, [pat]):
                continue
            glob = any(ch in pat for ch in "*?[")
            (empty if glob else broken).append(f"{src.file}: {pat}")
    return broken, empty
