"""Shared fixtures: tiny notebooks and runbooks for the runner's own tests."""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

NOTEBOOKS: dict[str, tuple[str, list[str]]] = {
    "add": (
        'x = 1  # first number\ny = 2  # second number\nlabel = "sum"  # a label\n'
        "items = []  # a list\n",
        [
            "import opsbook",
            'opsbook.record("total", x + y)\nopsbook.record("label", label)\n'
            'opsbook.record("n_items", len(items))\nprint("total is", x + y)',
        ],
    ),
    "fail": (
        "should_fail = True  # raise in the second cell\n",
        [
            'import opsbook\nopsbook.record("started", True)',
            'if should_fail:\n    raise ValueError("boom: the cell failed on purpose")',
            'opsbook.record("done", True)',
        ],
    ),
    "slow": (
        "seconds = 30.0  # how long to sleep\n",
        ["import time\ntime.sleep(seconds)", 'import opsbook\nopsbook.record("slept", seconds)'],
    ),
    "flaky": (
        'marker = ""  # file whose absence makes the first attempt fail\n',
        [
            "import os\nimport opsbook",
            'if not os.path.exists(marker):\n    open(marker, "w").close()\n'
            '    raise RuntimeError("first attempt fails")',
            'opsbook.record("ok", True)',
        ],
    ),
    "secret": (
        'token_env = "OPSBOOK_TEST_TOKEN"  # name of the env var holding the token\n',
        [
            "import os\nimport opsbook",
            "value = os.environ[token_env]\nprint('token is', value)",
            'opsbook.record("token_len", len(value))\nopsbook.record("leak", value)',
        ],
    ),
    "crash": ("code = 1  # exit code\n", ["import os\nos._exit(code)"]),
    "whoami": (
        'tag = ""  # a label\n',
        [
            "import os\nimport opsbook",
            'opsbook.record("pid", os.getpid())\nopsbook.record("cwd", os.getcwd())\n'
            'opsbook.record("step_dir", os.environ["OPSBOOK_STEP_DIR"])',
        ],
    ),
    "chart": (
        "n = 5  # points\n",
        [
            "import matplotlib.pyplot as plt\nimport opsbook",
            "fig, ax = plt.subplots()\nax.plot(range(n))\nplt.show()",
            'opsbook.record("points", n)',
        ],
    ),
    "figure": (
        "n = 5  # points\n",
        [
            "import opsbook\nfrom matplotlib.figure import Figure",
            "fig = Figure(figsize=(4, 3))\nfig.subplots().plot(range(n))\nfig",
            'opsbook.record("points", n)',
        ],
    ),
}


#: The outputs each notebook above declares (metadata.opsbook.outputs): name -> type.
OUTPUTS: dict[str, dict[str, str]] = {
    "add": {"total": "int", "label": "str", "n_items": "int"},
    "fail": {"started": "bool", "done": "bool"},
    "slow": {"slept": "float"},
    "flaky": {"ok": "bool"},
    "secret": {"token_len": "int", "leak": "str"},
    "crash": {},
    "whoami": {"pid": "int", "cwd": "str", "step_dir": "str"},
    "chart": {"points": "int"},
    "figure": {"points": "int"},
}


def make_notebook(
    path: Path, params: str, cells: list[str], outputs: dict[str, str] | None = None
) -> Path:
    """A notebook with a parameters cell; ``outputs`` (name -> type) become its declaration."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    if outputs is not None:
        nb.metadata["opsbook"] = {
            "outputs": {
                name: {"type": type_, "description": name} for name, type_ in outputs.items()
            }
        }
    param_cell = nbformat.v4.new_code_cell(params)
    param_cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), param_cell]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# ------------------------------------------------------------ pytest-xdist (`make test`)
#
# `make test` runs pytest on 2 workers (-n 2 --dist loadgroup). Tests that share state must
# run on one worker, one after another; tests of a module with a module- or class-scoped
# fixture (a migration, a simulated day, a P0 run) stay together so that fixture is built
# once. Groups are decided from the test's path, by the scheduler below: pytest 9.2's
# structured node ids made pytest-xdist 3.8 drop `xdist_group` marks silently
# (pytest-dev/pytest-xdist#1386), so a mark in a test file does not group it; add its path
# to SHARED_STATE instead.

#: group -> path prefixes (relative to the checkout) of the tests that share one resource.
SHARED_STATE: dict[str, tuple[str, ...]] = {
    # the Redis at 127.0.0.1:6379: the pub/sub tests change its CONFIG
    # (client-output-buffer-limit), count its clients and measure its memory; the P0 run
    # benchmarks it
    "redis-6379": ("tests/pubsub/", "tests/test_p0.py"),
}
_MODULE_FIXTURE = re.compile(r"""scope\s*=\s*["'](?:module|class)["']""")


@functools.cache
def _has_module_fixture(path: str) -> bool:
    try:
        return bool(_MODULE_FIXTURE.search((ROOT / path).read_text(encoding="utf-8")))
    except OSError:
        return False


def xdist_group(nodeid: str) -> str | None:
    """The group a test (by node id) runs in, or None where any worker may take it."""
    path = nodeid.split("::", 1)[0]
    for group, prefixes in SHARED_STATE.items():
        if path.startswith(prefixes):
            return group
    return f"module:{path}" if _has_module_fixture(path) else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The same groups as marks, for a pytest-xdist that reads them again (and to show them
    with ``pytest --collect-only -m xdist_group``); without xdist they do nothing."""
    for item in items:
        group = xdist_group(item.nodeid)
        if group is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadgroup`` with the groups of :func:`xdist_group` (on the controller, which
    sees node ids only)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class PathGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            marked = super()._split_scope(nodeid)  # a "test@group" id, if xdist sets one
            if marked != nodeid:
                return marked
            return xdist_group(nodeid) or nodeid

    return PathGroupScheduling(config, log)


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project: notebooks/ with the notebooks above and an empty runbooks/."""
    root = tmp_path_factory.mktemp("project")
    for name, (params, cells) in NOTEBOOKS.items():
        make_notebook(root / "notebooks" / f"{name}.ipynb", params, cells, OUTPUTS[name])
    (root / "runbooks").mkdir()
    return root


@pytest.fixture
def write_runbook(project: Path):
    """Write a runbook YAML (dedented) into the tiny project and return its path."""
    counter = {"n": 0}

    def _write(text: str, name: str | None = None) -> Path:
        counter["n"] += 1
        path = project / "runbooks" / (name or f"rb{counter['n']}_{id(text)}.yaml")
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture(autouse=True)
def _file_ledger_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's OPSBOOK_LEDGER_URL never sends test records to a team ledger."""
    monkeypatch.delenv("OPSBOOK_LEDGER_URL", raising=False)
    monkeypatch.delenv("OPSBOOK_LEDGER", raising=False)


@pytest.fixture(scope="session", autouse=True)
def _session_audit_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Module- and session-scoped fixtures run before the per-test root is set: their
    action records (a fixture's live migration) also stay out of ./audit."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSBOOK_AUDIT_DIR", str(tmp_path_factory.mktemp("session-audit")))
        yield


@pytest.fixture(autouse=True)
def _own_audit_root(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Action records any test writes land in its own audit root, never in ./audit (and
    not inside ``tmp_path``, which tests may expect to stay empty)."""
    monkeypatch.setenv("OPSBOOK_AUDIT_DIR", str(tmp_path_factory.mktemp("audit-root")))


@pytest.fixture
def audit_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "audit"
    monkeypatch.setenv("OPSBOOK_AUDIT_DIR", str(root))
    monkeypatch.setenv("OPSBOOK_WORK_DIR", str(tmp_path / "work"))
    return root


@pytest.fixture
def keydir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder for keys; $OPSBOOK_TRUSTED_KEYS points at trusted.json inside it."""
    from opsbook import signing

    folder = tmp_path / "keys"
    monkeypatch.setenv(signing.TRUSTED_ENV, str(folder / "trusted.json"))
    return folder


@pytest.fixture
def key_a(keydir: Path, monkeypatch: pytest.MonkeyPatch):
    """A trusted signing key named by $OPSBOOK_SIGNING_KEY."""
    from opsbook import signing

    signer, _ = signing.keygen(keydir / "a.pem", name="a")
    monkeypatch.setenv(signing.KEY_ENV, str(keydir / "a.pem"))
    return signer
