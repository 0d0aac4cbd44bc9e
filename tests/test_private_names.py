"""Private names stay in their module: no module of the package reaches into another's.

A name with a leading underscore is a module's own business. When another module needs
it, it becomes an interface (a public name) or the code moves. This walks the AST of every
module under lib/opsbook and fails on ``from opsbook.x import _name``, ``import
opsbook._x`` and ``x._name`` where ``x`` was imported from another opsbook module. It also
keeps out the unclear names a review found (``cls`` for a classification and the like).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "opsbook"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def crossings(source: str, module: str, is_package: bool = False) -> list[str]:
    """Where ``source`` (the text of ``module``) uses another opsbook module's private names."""
    tree = ast.parse(source)
    here = module if is_package else module.rpartition(".")[0]
    found: list[str] = []
    bound: dict[str, str] = {}  # local name -> the opsbook object it was imported as
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            origin = node.module or ""
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                origin = ".".join([*base, *([origin] if origin else [])])
            if origin != "opsbook" and not origin.startswith("opsbook."):
                continue
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{origin}.{alias.name}"
                if _private(alias.name) and origin != module:
                    found.append(f"line {node.lineno}: from {origin} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name != "opsbook" and not alias.name.startswith("opsbook."):
                    continue
                bound[alias.asname or "opsbook"] = alias.name if alias.asname else "opsbook"
                if any(_private(part) for part in alias.name.split(".")):
                    found.append(f"line {node.lineno}: import {alias.name}")
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        chain: list[str] = []
        value = node.value
        while isinstance(value, ast.Attribute):
            chain.insert(0, value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in bound:
            owner = ".".join([bound[value.id], *chain])
            if owner != module:
                found.append(f"line {node.lineno}: {owner}.{node.attr}")
    return found


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_uses_another_modules_private_names(path: Path) -> None:
    module = _module_name(path, PACKAGE)
    assert crossings(path.read_text(), module, path.name == "__init__.py") == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from opsbook.settings import _SEEN", ["line 1: from opsbook.settings import _SEEN"]),
        (
            "from .inventory import _name_rx",
            ["line 1: from opsbook.archive.inventory import _name_rx"],
        ),
        ("from ..errors import _x", ["line 1: from opsbook.errors import _x"]),
        ("import opsbook._child", ["line 1: import opsbook._child"]),
        ("from opsbook import settings\nsettings._SEEN", ["line 2: opsbook.settings._SEEN"]),
        ("import opsbook.settings as s\ns._SEEN.add(1)", ["line 2: opsbook.settings._SEEN"]),
        ("import opsbook\nopsbook.settings._SEEN", ["line 2: opsbook.settings._SEEN"]),
        ("from opsbook.x import Thing\nThing._cache", ["line 2: opsbook.x.Thing._cache"]),
        ("from opsbook.archive.apply import _own", []),  # a module's own private name
        ("from opsbook.settings import secret\nsecret.__doc__", []),  # dunders are public
        ("from pathlib import Path\nPath._flavour", []),  # other libraries are not ours
        ("x = obj._private", []),
    ],
)
def test_crossings_finds_each_form(source: str, found: list[str]) -> None:
    assert crossings(source, "opsbook.archive.apply") == found


#: Names a review found unclear (``cls`` for a classification, ``sc`` for scenarios or a
#: subscriber connection, ``bt`` for backtest, ``mig``/``co``/``ckpt`` for modules).
UNCLEAR = {"cls", "sc", "bt", "mig", "co", "ckpt"}


def unclear_names(source: str) -> list[str]:
    """Variables, parameters and import aliases of ``source`` named in :data:`UNCLEAR`
    (``cls`` as the first parameter of a classmethod or ``__new__`` is the convention)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            decorators = {getattr(d, "id", getattr(d, "attr", "")) for d in node.decorator_list}
            args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            for index, arg in enumerate(args):
                conventional = (
                    arg.arg == "cls"
                    and index == 0
                    and ("classmethod" in decorators or node.name == "__new__")
                )
                if arg.arg in UNCLEAR and not conventional:
                    found.append(f"line {node.lineno}: parameter {arg.arg} of {node.name}")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            if node.id in UNCLEAR:
                found.append(f"line {node.lineno}: variable {node.id}")
        elif isinstance(node, ast.alias) and node.asname in UNCLEAR:
            found.append(f"import {node.name} as {node.asname}")
    return found


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_library_names_explain_themselves(path: Path) -> None:
    assert unclear_names(path.read_text()) == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("cls = classify(inv)", ["line 1: variable cls"]),
        ("def chart(cls):\n    pass", ["line 1: parameter cls of chart"]),
        ("from opsbook.loki import backtest as bt", ["import backtest as bt"]),
        ("class A:\n    @classmethod\n    def make(cls):\n        pass", []),
        ("classification = classify(inv)", []),
    ],
)
def test_unclear_names_finds_each_form(source: str, found: list[str]) -> None:
    assert unclear_names(source) == found
