"""The engineer's path end to end: JupyterLab headless, the migration notebook opened in
headless Chromium, every cell run through the UI with ``dry_run = False``; every cell
succeeds, the charts render as images, the progress bar shows, and the change is on the
audit trail as an action record that verifies (and the saved notebook attaches to it)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from browserkit import LivePage, find_chromium
from opsbook import audit
from opsbook.attach import attach
from opsbook.errors import ConfigError
from opsbook.lab import HOST, jupyter_executable, lab_command

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.notebooks]
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "chroma_to_qdrant.ipynb"

_PANEL = "jupyterapp.shell.currentWidget"
_KERNEL = f"{_PANEL}.sessionContext.session?.kernel"
_CODE_CELLS = f"{_PANEL}.content.widgets.filter(c => c.model.type === 'code')"
_OUTPUTS_JS = f"""JSON.stringify({_CODE_CELLS}.map(c => ({{
  count: c.model.executionCount,
  outputs: c.model.outputs.toJSON().map(o => ({{type: o.output_type, name: o.name || null,
    ename: o.ename || null, evalue: o.evalue || null,
    text: (o.text || (o.data && o.data['text/plain']) || '').toString().slice(-400),
    mimes: Object.keys(o.data || {{}})}}))
}})))"""
_IMAGES_JS = """JSON.stringify(Array.from(document.querySelectorAll('.jp-OutputArea-output img'))
  .map(i => ({ok: i.complete && i.naturalWidth > 0, src: i.src.slice(0, 22)})))"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _engineer_copy(folder: Path) -> Path:
    """The migration notebook with the parameters an engineer would edit for a live run."""
    nb = json.loads((ROOT / "notebooks" / NOTEBOOK).read_text(encoding="utf-8"))
    [params] = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    source = "".join(params["source"])
    source = re.sub(r"(?m)^dry_run = True", "dry_run = False", source)
    source = re.sub(r"(?m)^demo_docs = \d+", "demo_docs = 400", source)
    assert "dry_run = False" in source and "demo_docs = 400" in source
    params["source"] = source
    path = folder / NOTEBOOK
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, str, Path, Path]]:
    """JupyterLab on a folder holding the engineer's copy; yields (base, token, nb, audit)."""
    if find_chromium() is None:
        pytest.skip("no Chromium on PATH: `apt-get install chromium` (.ci/run installs it)")
    try:
        jupyter_executable()
    except ConfigError:
        pytest.skip("JupyterLab is not installed (`make lab` / `make test` put it in .venv-lab)")
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb_path = _engineer_copy(folder)
    audit_root = tmp_path / "audit"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(OPSBOOK_AUDIT_DIR=str(audit_root), TMPDIR=str(tmp_path))
    launch = lab_command(folder, port=port, env=env)
    argv = [*launch.argv, "--LabApp.expose_app_in_browser=True"]
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(argv, env=launch.env, stdout=log, stderr=log, start_new_session=True)
    base = f"http://{HOST}:{port}"
    try:
        for _ in range(600):
            try:
                if requests.get(f"{base}/api/status?token={launch.token}", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text())
        yield base, launch.token, nb_path, audit_root
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_run_all_cells_in_jupyterlab_leaves_an_action_record(lab) -> None:
    base, token, nb_path, audit_root = lab
    began = time.monotonic()
    with LivePage(f"{base}/lab/tree/{NOTEBOOK}?token={token}", timeout=120) as page:
        ready = f"window.jupyterapp && {_PANEL} && {_PANEL}.content && {_KERNEL}?.status === 'idle'"
        assert page.wait_until(ready, 240), "the notebook did not open with an idle kernel"
        kernel = page.evaluate(f"{_KERNEL}.name + ' ' + {_KERNEL}.id").split()
        assert kernel[0] == "opsbook"  # preselected from the notebook's metadata
        # the Run menu's "Run All Cells" (not awaited: it resolves when the last cell ends)
        page.evaluate("jupyterapp.commands.execute('notebook:run-all-cells'), true")
        done = f"{_CODE_CELLS}.every(c => c.model.executionCount !== null) && {_KERNEL}?.status === 'idle'"
        assert page.wait_until(done, 900), "not every cell ran within 15 min"
        cells = json.loads(page.evaluate(_OUTPUTS_JS))
        images = json.loads(page.evaluate(_IMAGES_JS))
        page.evaluate("jupyterapp.commands.execute('docmanager:save')")
        assert page.wait_until(f"!{_PANEL}.context.model.dirty", 60)
    elapsed = time.monotonic() - began
    print(f"JupyterLab browser run: {elapsed:.1f} s")

    errors = [o for c in cells for o in c["outputs"] if o["type"] == "error"]
    assert errors == []
    assert all(c["count"] is not None for c in cells)
    assert len(images) >= 4 and all(i["ok"] for i in images), images  # the four charts
    stderr = " ".join(o["text"] for c in cells for o in c["outputs"] if o["name"] == "stderr")
    assert re.search(r"migrate: +100%\|", stderr), "no tqdm progress bar in the outputs"
    announced = [
        o
        for c in cells
        for o in c["outputs"]
        if "application/vnd.opsbook.action+json" in o["mimes"]
    ]
    assert len(announced) == 1

    records = [r for r in audit.list_runs(audit_root) if r.get("kind") == "action"]
    assert [r["action"] for r in records] == ["migrate.migrate"]
    record = records[0]
    assert record["status"] == "succeeded"
    assert record["summary"]["integrity_ok"] is True and record["summary"]["cutover_done"] is True
    assert record["origin"]["kind"] == "kernel"
    assert record["origin"]["kernel_id"] == kernel[1]
    assert record["origin"]["notebook"] == str(nb_path)
    assert audit.verify(audit_root) == []

    attachment = attach(nb_path, root=audit_root)
    folder, data = audit.load_run(audit_root, attachment)
    assert data["actions"] == [record["run_id"]]
    saved = json.loads((folder / "notebook.ipynb").read_text())
    assert any(c.get("outputs") for c in saved["cells"] if c["cell_type"] == "code")
    assert audit.verify(audit_root) == []
