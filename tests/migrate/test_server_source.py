"""A real `chroma run` server as the source: migrate, verify, and export a portable backup."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from opsbook.migrate import migrate, plan, restore

CHROMA = Path(sys.executable).parent / "chroma"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMA.exists():
        pytest.skip(f"{CHROMA} not installed")
    data = tmp_path_factory.mktemp("server") / "data"
    shutil.copytree(demo_store, data)
    port = _free_port()
    log = open(data.parent / "chroma.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(CHROMA), "run", "--path", str(data), "--port", str(port), "--host", "127.0.0.1"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/api/v2/heartbeat", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma run did not start: {(data.parent / 'chroma.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.services
def test_server_source_end_to_end(chroma_server: str, tmp_path: Path) -> None:
    p = plan(chroma_url=chroma_server, work_dir=str(tmp_path))
    assert p.ok and p.source == f"url:{chroma_server}"
    result = migrate(chroma_url=chroma_server, work_dir=str(tmp_path), dry_run=False)
    assert result.integrity_ok and result.cutover_done
    assert result.total_records == p.total_records
    assert result.search_verified and all(
        s["exact_search_failures"] == 0 for s in result.search().values()
    )
    manifest = json.loads((Path(result.backup_path) / "manifest.json").read_text())
    assert manifest["kind"] == "export"
    assert {n: e["count"] for n, e in manifest["collections"].items()} == {
        c.info.name: c.info.count for c in result.collections
    }
    restored = restore(result.backup_path, tmp_path / "restored")
    again = plan(chroma_path=str(restored), work_dir=str(tmp_path / "w2"))
    assert again.table()[["collection", "records", "qdrant_distance"]].to_dict(
        "records"
    ) == p.table()[["collection", "records", "qdrant_distance"]].to_dict("records")
