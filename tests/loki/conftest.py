"""Fixtures for the Loki analysis tests: a real HTTP server speaking Loki's API.

The server answers from a backend object with LocalLogs' methods: the embedded engine
itself, or :class:`CannedLogs` (a list of entries, for the paging mechanics). Faults
(429, 5xx, 400) are queued per test; every request is recorded with its headers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from opsbook.errors import ConfigError
from opsbook.loki.timeutil import NS_PER_S, parse_duration, to_ns

SIM_START = "2026-11-28T06:00:00Z"


class CannedLogs:
    """Log entries answered like Loki: ``[start, end)``, direction order, ``limit``.

    The query text is ignored for log queries; a metric query returns one series whose
    value at every step is the step's time in seconds.
    """

    def __init__(self, entries: list[tuple[dict[str, str], int, str]]) -> None:
        self.entries = entries

    def query_range(
        self,
        query: str,
        start: Any,
        end: Any,
        step: Any = None,
        limit: int = 100,
        direction: str = "backward",
    ) -> dict[str, Any]:
        start_ns, end_ns = to_ns(start), to_ns(end)
        if not query.lstrip().startswith("{"):
            step_ns = parse_duration(step) if isinstance(step, str) else int(step * NS_PER_S)
            values = [
                [t / NS_PER_S, str(t // NS_PER_S)] for t in range(start_ns, end_ns + 1, step_ns)
            ]
            return {"resultType": "matrix", "result": [{"metric": {"job": "x"}, "values": values}]}
        picked = [e for e in self.entries if start_ns <= e[1] < end_ns]
        picked.sort(key=lambda e: e[1], reverse=direction == "backward")
        streams: dict[tuple, dict[str, Any]] = {}
        for labels, ts, line in picked[:limit]:
            slot = streams.setdefault(
                tuple(sorted(labels.items())), {"stream": labels, "values": []}
            )
            slot["values"].append([str(ts), line])
        return {"resultType": "streams", "result": list(streams.values())}

    def query(self, query: str, time: Any = None, limit: int = 100, direction: str = "backward"):
        return {"resultType": "vector", "result": [{"metric": {"job": "x"}, "value": [1, "1"]}]}

    def labels(self, start: Any = None, end: Any = None) -> list[str]:
        return sorted({k for labels, _, _ in self.entries for k in labels})

    def label_values(self, name: str, start: Any = None, end: Any = None) -> list[str]:
        return sorted({labels[name] for labels, _, _ in self.entries if name in labels})

    def series(self, match: Any, start: Any = None, end: Any = None) -> list[dict[str, str]]:
        found = {tuple(sorted(labels.items())) for labels, _, _ in self.entries}
        return [dict(key) for key in sorted(found)]

    def stats(self, query: str, start: Any, end: Any) -> dict[str, int]:
        return {
            "streams": len(self.series(query)),
            "chunks": 1,
            "entries": len(self.entries),
            "bytes": sum(len(line) for _, _, line in self.entries),
        }


class LokiTestServer:
    """A threaded HTTP server on 127.0.0.1 with Loki's read API."""

    def __init__(self, backend: Any, max_entries: int = 5000) -> None:
        self.backend = backend
        self.max_entries = max_entries
        self.requests: list[dict[str, Any]] = []
        self.faults: list[tuple[int, str, dict[str, str]]] = []
        self.always_fail: tuple[int, str] | None = None
        self.fail_from: tuple[int, int, str] | None = None  # (nth request, status, body)
        self.cut_off = 0  # answer this many requests with a body cut off mid-way
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LokiTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                parsed = urlparse(self.path)
                params = parse_qs(parsed.query, keep_blank_values=True)
                server.requests.append(
                    {"path": parsed.path, "params": params, "headers": dict(self.headers)}
                )
                if server.fail_from and len(server.requests) >= server.fail_from[0]:
                    self._send(server.fail_from[1], server.fail_from[2], "text/plain")
                    return
                if server.always_fail is not None:
                    self._send(server.always_fail[0], server.always_fail[1], "text/plain")
                    return
                if server.cut_off:
                    server.cut_off -= 1
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b'{"status": "success", "da')  # then the connection closes
                    return
                if server.faults:
                    status, body, headers = server.faults.pop(0)
                    self._send(status, body, "text/plain", headers)
                    return
                categorize = "categorize-labels" in self.headers.get(
                    "X-Loki-Response-Encoding-Flags", ""
                )
                try:
                    payload = server.route(parsed.path, params, categorize=categorize)
                except ConfigError as exc:
                    self._send(400, exc.message, "text/plain")
                    return
                if payload is None:
                    self._send(404, "404 page not found", "text/plain")
                    return
                self._send(200, json.dumps(payload), "application/json")

            def _send(
                self, status: int, body: str, ctype: str, headers: dict[str, str] | None = None
            ) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def route(
        self, path: str, params: dict[str, list[str]], *, categorize: bool = False
    ) -> dict[str, Any] | None:
        one = {k: v[0] for k, v in params.items()}
        b = self.backend
        flags = {"categorize_labels": True} if categorize and hasattr(b, "add_lines") else {}
        if path == "/loki/api/v1/query_range":
            limit = int(one.get("limit", "100"))
            if limit > self.max_entries:
                raise ConfigError(
                    "max entries limit per query exceeded, limit > max_entries_limit_per_query "
                    f"({limit} > {self.max_entries})"
                )
            data = b.query_range(
                one["query"],
                int(one["start"]),
                int(one["end"]),
                step=one.get("step") or None,
                limit=limit,
                direction=one.get("direction", "backward"),
                **flags,
            )
        elif path == "/loki/api/v1/query":
            time = int(one["time"]) if "time" in one else None
            data = b.query(
                one["query"],
                time=time,
                limit=int(one.get("limit", "100")),
                direction=one.get("direction", "backward"),
            )
        elif path == "/loki/api/v1/labels":
            data = b.labels(one.get("start"), one.get("end"))
        elif path.startswith("/loki/api/v1/label/") and path.endswith("/values"):
            name = unquote(path[len("/loki/api/v1/label/") : -len("/values")])
            data = b.label_values(name, one.get("start"), one.get("end"))
        elif path == "/loki/api/v1/series":
            data = b.series(params.get("match[]", []), one.get("start"), one.get("end"))
        elif path == "/loki/api/v1/index/stats":
            return b.stats(one["query"], one.get("start"), one.get("end"))
        else:
            return None
        return {"status": "success", "data": data}


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(backend, max_entries=...)`` starts a server; all are stopped at teardown."""
    started: list[LokiTestServer] = []

    def start(backend: Any, max_entries: int = 5000) -> LokiTestServer:
        server = LokiTestServer(backend, max_entries).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sim_day(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Six simulated hours with the five incidents (shared by the slow tests)."""
    from opsbook.loki.simulate import simulate

    path = tmp_path_factory.mktemp("loki-sim") / "incidents.jsonl"
    return simulate(path, SIM_START, hours=6, seed=1)


@pytest.fixture(scope="session")
def sim_quiet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A simulated day of baseline traffic, no incidents."""
    from opsbook.loki.simulate import simulate

    path = tmp_path_factory.mktemp("loki-quiet") / "quiet.jsonl"
    return simulate(path, "2026-11-28T00:00:00Z", hours=24, seed=2, incidents=False)


def rules_path() -> Path:
    return Path(__file__).resolve().parents[2] / "runbooks" / "alerts" / "p0-alerts.yaml"
