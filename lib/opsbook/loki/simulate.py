"""A deterministic simulator of a day of platform logs, with incidents at known times.

Four services ship logs with the labels ``{service, env, level}``:

* ``backend-ts``: JSON request logs (``route``, ``status``, ``latency_ms``; AI routes add
  ``model``, ``tokens``, ``cost_usd``) plus Kubernetes health probes;
* ``backend-rag``: logfmt request logs (``route``, ``status``, ``latency_ms``,
  ``collection``, ``hits``) and retrieval lines;
* ``qdrant``: the vector DB's own style (actix access log lines, ``ERROR qdrant::...``);
* ``redis``: Redis's own style (``1:M 28 Nov 2026 10:00:00.123 * DB saved on disk``).

Incidents (``incidents=True``) are placed at fixed fractions of the window: an outage of
backend-rag (no lines at all), an error burst, a latency regression, vector DB errors and
an AI budget overrun (a runaway agent loop). A ground-truth JSON file lists them with the
alert each one should trigger. Same seed, same bytes.

The output is JSONL ``{"ts": <ns>, "labels": {...}, "line": "..."}`` sorted by time, which
``LocalLogs`` reads directly.

>>> result = simulate("/tmp/demo.jsonl", "2026-11-28T06:00:00Z", hours=4)  # doctest: +SKIP
>>> result.incidents[0]["kind"]  # doctest: +SKIP
'outage'
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from opsbook.errors import ConfigError
from opsbook.loki.timeutil import NS_PER_S, ns_to_rfc3339, to_ns

SERVICES = ("backend-ts", "backend-rag", "qdrant", "redis")
MIN_NS = 60 * NS_PER_S
ENV = "prod"

# backend-ts routes: (share of requests, method, median latency ms, AI kind)
TS_ROUTES = {
    "/api/chat": (0.30, "POST", 650.0, "chat"),
    "/api/complete": (0.10, "POST", 450.0, "complete"),
    "/api/embed": (0.10, "POST", 80.0, "embed"),
    "/api/search": (0.25, "POST", 280.0, None),
    "/api/users": (0.15, "GET", 35.0, None),
    "/api/session": (0.10, "POST", 20.0, None),
}
# USD per token (blended input/output) and median tokens per call
MODEL_PRICE = {
    "gpt-4o-mini": 0.15e-6,
    "claude-3-5-haiku": 0.8e-6,
    "text-embedding-3-small": 0.02e-6,
    "gpt-4o": 2.5e-6,
}
AI_MODELS = {
    "chat": (("gpt-4o-mini", 0.8), ("claude-3-5-haiku", 0.2)),
    "complete": (("gpt-4o-mini", 1.0),),
    "embed": (("text-embedding-3-small", 1.0),),
}
AI_TOKENS = {"chat": 300.0, "complete": 250.0, "embed": 200.0}
TS_RATE_PER_MIN = 20.0  # backend-ts requests per minute at scale 1, mean over a day
RAG_RATE_PER_MIN = 5.0
PROBE_EVERY_S = 15

# incident kind -> (fraction of the window where it starts, duration minutes, service,
#                   alert it must trigger, description)
INCIDENT_PLAN = (
    ("outage", 0.15, 8, "backend-rag", "ServiceDown", "backend-rag crashed: no logs"),
    ("error_burst", 0.30, 12, "backend-ts", "HighErrorRate", "DB pool exhausted: 5xx burst"),
    ("latency_regression", 0.45, 20, "backend-ts", "HighLatencyP95", "slow deploy: 4x latency"),
    ("vector_db_errors", 0.60, 10, "qdrant", "VectorDBErrors", "qdrant disk full: write errors"),
    ("budget_overrun", 0.75, 30, "backend-ts", "AIBudgetExceeded", "runaway agent loop on gpt-4o"),
)
BUDGET_OVERRUN_USD = 2.5
MIN_HOURS_WITH_INCIDENTS = 2.5


@dataclass
class Incident:
    """One injected incident and the alert that should catch it."""

    id: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    alerts: list[str]
    labels: dict[str, str]
    description: str
    start: str = ""
    end: str = ""

    def __post_init__(self) -> None:
        self.start = self.start or ns_to_rfc3339(self.start_ns)
        self.end = self.end or ns_to_rfc3339(self.end_ns)


@dataclass
class SimulationResult:
    """What :func:`simulate` wrote."""

    path: Path
    ground_truth_path: Path
    start_ns: int
    end_ns: int
    lines: int
    lines_per_service: dict[str, int]
    incidents: list[dict[str, Any]] = field(default_factory=list)


def plan_incidents(start_ns: int, end_ns: int) -> list[Incident]:
    """Incidents at fixed fractions of ``[start, end)``, starting on whole minutes."""
    span = end_ns - start_ns
    incidents = []
    for kind, fraction, minutes, service, alert, description in INCIDENT_PLAN:
        begin = start_ns + int(span * fraction) // MIN_NS * MIN_NS
        incidents.append(
            Incident(
                id=f"{kind}-{service}",
                kind=kind,
                service=service,
                start_ns=begin,
                end_ns=begin + minutes * MIN_NS,
                alerts=[alert],
                labels={} if kind == "budget_overrun" else {"service": service},
                description=description,
            )
        )
    return incidents


class _Streams:
    """Accumulates (timestamp, labels, line) columns for all services."""

    def __init__(self) -> None:
        self.ts: list[np.ndarray] = []
        self.labels: list[list[dict[str, str]]] = []
        self.lines: list[list[str]] = []

    def add(self, ts: np.ndarray, levels: list[str], service: str, lines: list[str]) -> None:
        cache = {lvl: {"service": service, "env": ENV, "level": lvl} for lvl in set(levels)}
        self.ts.append(np.asarray(ts, dtype="int64"))
        self.labels.append([cache[lvl] for lvl in levels])
        self.lines.append(lines)

    def write(self, path: Path) -> int:
        ts = np.concatenate(self.ts) if self.ts else np.empty(0, dtype="int64")
        labels = [item for chunk in self.labels for item in chunk]
        lines = [item for chunk in self.lines for item in chunk]
        order = np.argsort(ts, kind="stable")
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as out:
            for i in order:
                out.write(orjson.dumps({"ts": int(ts[i]), "labels": labels[i], "line": lines[i]}))
                out.write(b"\n")
        os.replace(tmp, path)
        return len(order)


class _Clock:
    """Arrival times of a non-homogeneous Poisson process, minute by minute."""

    def __init__(self, rng: np.random.Generator, start_ns: int, end_ns: int) -> None:
        self.rng = rng
        self.start_ns = start_ns
        self.end_ns = end_ns
        first = start_ns // MIN_NS * MIN_NS
        self.minutes = np.arange(first, end_ns, MIN_NS, dtype="int64")
        hours = (self.minutes % (86400 * NS_PER_S)) / (3600 * NS_PER_S)
        self.diurnal = 1.0 + 0.5 * np.sin(2 * np.pi * (hours - 8.0) / 24.0)

    def arrivals(self, per_min: np.ndarray | float) -> np.ndarray:
        rates = np.broadcast_to(np.asarray(per_min, dtype="float64"), self.minutes.shape)
        counts = self.rng.poisson(rates)
        base = np.repeat(self.minutes, counts)
        ts = base + self.rng.integers(0, MIN_NS, size=base.size)
        ts = np.sort(ts[(ts >= self.start_ns) & (ts < self.end_ns)])
        return ts

    def every(self, seconds: int, jitter_ms: int = 400) -> np.ndarray:
        grid = np.arange(
            -(-self.start_ns // (seconds * NS_PER_S)) * seconds * NS_PER_S,
            self.end_ns,
            seconds * NS_PER_S,
            dtype="int64",
        )
        grid = grid + self.rng.integers(0, jitter_ms * 1_000_000, size=grid.size)
        return grid[grid < self.end_ns]

    def active(self, ts: np.ndarray, incident: Incident | None) -> np.ndarray:
        if incident is None:
            return np.zeros(ts.shape, dtype=bool)
        return (ts >= incident.start_ns) & (ts < incident.end_ns)

    def rate_during(self, incident: Incident | None, factor: float) -> np.ndarray:
        boost = np.ones(self.minutes.shape)
        if incident is not None:
            inside = (self.minutes >= incident.start_ns) & (self.minutes < incident.end_ns)
            boost[inside] = factor
        return boost


def _iso_ms(ts: np.ndarray) -> list[str]:
    return [
        s + "Z"
        for s in np.datetime_as_string(
            ts.astype("datetime64[ns]").astype("datetime64[ms]"), unit="ms"
        )
    ]


def _iso_us(ts: np.ndarray) -> list[str]:
    return [
        s + "Z"
        for s in np.datetime_as_string(
            ts.astype("datetime64[ns]").astype("datetime64[us]"), unit="us"
        )
    ]


def _hex(rng: np.random.Generator, n: int) -> list[str]:
    return [f"{v:016x}" for v in rng.integers(0, 2**63 - 1, size=n, dtype="int64")]


def _backend_ts(clock: _Clock, streams: _Streams, inc: dict[str, Incident], scale: float) -> None:
    rng = clock.rng
    burst = inc.get("error_burst")
    traffic = TS_RATE_PER_MIN * scale * clock.diurnal * clock.rate_during(burst, 1.6)
    ts = clock.arrivals(traffic)
    n = ts.size
    names = list(TS_ROUTES)
    shares = np.array([TS_ROUTES[r][0] for r in names])
    route_idx = rng.choice(len(names), size=n, p=shares / shares.sum())
    medians = np.array([TS_ROUTES[r][2] for r in names])[route_idx]
    latency = medians * rng.lognormal(0.0, 0.45, size=n)
    latency[clock.active(ts, inc.get("latency_regression"))] *= 4.0
    status = np.where(rng.random(n) < 0.02, 429, 200)
    status[rng.random(n) < 0.004] = 500
    in_burst = clock.active(ts, burst)
    status[in_burst & (rng.random(n) < 0.85)] = 503
    outage = inc.get("outage")
    search = np.array([names[i] == "/api/search" for i in route_idx], dtype=bool)
    status[clock.active(ts, outage) & search] = 502
    tokens = np.maximum(1, rng.lognormal(0.0, 0.5, size=n)).astype("float64")
    model_draw = rng.random(n)
    trace = _hex(rng, n)
    stamps = _iso_ms(ts)
    lines: list[str] = []
    levels: list[str] = []
    for i in range(n):
        route = names[route_idx[i]]
        _, method, _, ai_kind = TS_ROUTES[route]
        code = int(status[i])
        level = "error" if code >= 500 else "warn" if code >= 400 else "info"
        record: dict[str, Any] = {
            "ts": stamps[i],
            "level": level,
            "msg": "request completed" if code < 500 else "request failed",
            "method": method,
            "route": route,
            "status": code,
            "latency_ms": round(float(latency[i]), 1),
            "trace_id": trace[i],
        }
        if ai_kind and code < 500:
            model = _pick_model(ai_kind, model_draw[i])
            count = int(tokens[i] * AI_TOKENS[ai_kind])
            record.update(model=model, tokens=count, cost_usd=round(count * MODEL_PRICE[model], 8))
        if code >= 500:
            record["error"] = _ts_error(code)
        lines.append(orjson.dumps(record).decode())
        levels.append(level)
    streams.add(ts, levels, "backend-ts", lines)
    _ts_probes(clock, streams)
    _ts_runaway(clock, streams, inc.get("budget_overrun"))


def _pick_model(kind: str, draw: float) -> str:
    acc = 0.0
    for model, share in AI_MODELS[kind]:
        acc += share
        if draw < acc:
            return model
    return AI_MODELS[kind][-1][0]


def _ts_error(code: int) -> str:
    return {
        502: "upstream backend-rag unavailable: connect ECONNREFUSED",
        503: "db connection pool exhausted (max=20)",
    }.get(code, "internal error")


def _ts_probes(clock: _Clock, streams: _Streams) -> None:
    ts = clock.every(PROBE_EVERY_S)
    stamps = _iso_ms(ts)
    lines = [
        orjson.dumps(
            {
                "ts": stamps[i],
                "level": "debug",
                "msg": "health check",
                "method": "GET",
                "route": "/healthz",
                "status": 200,
                "latency_ms": 1.2,
            }
        ).decode()
        for i in range(ts.size)
    ]
    streams.add(ts, ["debug"] * ts.size, "backend-ts", lines)


def _ts_runaway(clock: _Clock, streams: _Streams, incident: Incident | None) -> None:
    """A runaway agent loop calling gpt-4o; adds about BUDGET_OVERRUN_USD in total."""
    if incident is None:
        return
    rng = clock.rng
    minutes = (incident.end_ns - incident.start_ns) / MIN_NS
    calls_per_min = 40.0
    mean_cost = BUDGET_OVERRUN_USD / (calls_per_min * minutes)
    sigma = 0.3
    median_tokens = mean_cost / MODEL_PRICE["gpt-4o"] / np.exp(sigma**2 / 2)
    rates = np.where(
        (clock.minutes >= incident.start_ns) & (clock.minutes < incident.end_ns),
        calls_per_min,
        0.0,
    )
    ts = clock.arrivals(rates)
    tokens = (median_tokens * rng.lognormal(0.0, sigma, size=ts.size)).astype(int)
    latency = 900.0 * rng.lognormal(0.0, 0.3, size=ts.size)
    trace = _hex(rng, ts.size)
    stamps = _iso_ms(ts)
    lines = []
    for i in range(ts.size):
        record = {
            "ts": stamps[i],
            "level": "info",
            "msg": "request completed",
            "method": "POST",
            "route": "/api/agent/step",
            "status": 200,
            "latency_ms": round(float(latency[i]), 1),
            "trace_id": trace[i],
            "model": "gpt-4o",
            "tokens": int(tokens[i]),
            "cost_usd": round(int(tokens[i]) * MODEL_PRICE["gpt-4o"], 8),
        }
        lines.append(orjson.dumps(record).decode())
    streams.add(ts, ["info"] * ts.size, "backend-ts", lines)


def _backend_rag(clock: _Clock, streams: _Streams, inc: dict[str, Incident], scale: float) -> None:
    rng = clock.rng
    ts = clock.arrivals(RAG_RATE_PER_MIN * scale * clock.diurnal)
    n = ts.size
    vec = clock.active(ts, inc.get("vector_db_errors"))
    failed = (vec & (rng.random(n) < 0.6)) | (rng.random(n) < 0.003)
    latency = 260.0 * rng.lognormal(0.0, 0.4, size=n)
    retrieve = 0.35 * latency
    hits = rng.integers(3, 9, size=n)
    stamps_req = _iso_ms(ts)
    ts_ret = ts - (latency - retrieve).astype("int64") * 1_000_000
    stamps_ret = _iso_ms(ts_ret)
    all_ts: list[int] = []
    lines: list[str] = []
    levels: list[str] = []
    for i in range(n):
        lat = f"{latency[i]:.1f}"
        if failed[i]:
            all_ts.append(int(ts[i]))
            levels.append("error")
            lines.append(
                f'ts={stamps_req[i]} level=error msg="vector search failed" method=POST '
                f"route=/rag/query status=503 latency_ms={lat} collection=docs "
                f'error="qdrant: Service internal error: No space left on device"'
            )
            continue
        all_ts.append(int(ts_ret[i]))
        levels.append("info")
        lines.append(
            f'ts={stamps_ret[i]} level=info msg="retrieved chunks" collection=docs '
            f"top_k=8 hits={hits[i]} duration={retrieve[i]:.1f}ms"
        )
        all_ts.append(int(ts[i]))
        levels.append("info")
        lines.append(
            f'ts={stamps_req[i]} level=info msg="request completed" method=POST '
            f"route=/rag/query status=200 latency_ms={lat} collection=docs hits={hits[i]}"
        )
    probes = clock.every(PROBE_EVERY_S)
    probe_stamps = _iso_ms(probes)
    for i in range(probes.size):
        all_ts.append(int(probes[i]))
        levels.append("debug")
        lines.append(
            f'ts={probe_stamps[i]} level=debug msg="health check" method=GET '
            "route=/healthz status=200 latency_ms=0.8"
        )
    ts_all = np.asarray(all_ts, dtype="int64")
    keep = ~clock.active(ts_all, inc.get("outage")) & (ts_all >= clock.start_ns)
    streams.add(
        ts_all[keep],
        [lvl for lvl, k in zip(levels, keep, strict=True) if k],
        "backend-rag",
        [line for line, k in zip(lines, keep, strict=True) if k],
    )


def _qdrant(clock: _Clock, streams: _Streams, inc: dict[str, Incident], scale: float) -> None:
    rng = clock.rng
    incident = inc.get("vector_db_errors")
    search = clock.arrivals(RAG_RATE_PER_MIN * scale * clock.diurnal)
    probes = clock.every(PROBE_EVERY_S)
    sporadic = clock.arrivals(1.0 / 180.0)  # a stray client error every ~3 hours
    inside = clock.rate_during(incident, 0.0) == 0.0  # minutes of the incident
    burst = clock.arrivals(np.where(inside, 25.0, 0.0))
    ts_parts = [search, probes, sporadic, burst]
    stamps = [_iso_us(part) for part in ts_parts]
    lines: list[str] = []
    levels: list[str] = []
    failing = clock.active(search, incident)
    for i in range(search.size):
        code, size = (500, 87) if failing[i] else (200, int(rng.integers(900, 4000)))
        lines.append(
            f"{stamps[0][i]}  INFO actix_web::middleware::logger: 10.42.0.17 "
            f'"POST /collections/docs/points/query HTTP/1.1" {code} {size} "-" '
            f'"qdrant-client/1.12.1 python/3.11.9" {rng.uniform(0.002, 0.02):.6f}'
        )
        levels.append("info")
    for i in range(probes.size):
        lines.append(
            f"{stamps[1][i]}  INFO actix_web::middleware::logger: 10.42.0.1 "
            f'"GET /healthz HTTP/1.1" 200 26 "-" "kube-probe/1.30" 0.000105'
        )
        levels.append("info")
    for i in range(sporadic.size):
        lines.append(
            f"{stamps[2][i]} ERROR qdrant::actix::helpers: Error processing request: "
            "Wrong input: Vector dimension error: expected dim: 384, got 768"
        )
        levels.append("error")
    for i in range(burst.size):
        lines.append(
            f"{stamps[3][i]} ERROR qdrant::actix::helpers: Error processing request: "
            "Service internal error: RocksDB write error: No space left on device"
        )
        levels.append("error")
    streams.add(np.concatenate(ts_parts), levels, "qdrant", lines)


def _redis(clock: _Clock, streams: _Streams, scale: float) -> None:
    rng = clock.rng
    cycles = clock.every(60, jitter_ms=900)
    warns = clock.arrivals(1.0 / 120.0)
    ts: list[int] = []
    parts: list[tuple[str, str, str]] = []  # (role "pid:M|C", level mark, message)
    levels: list[str] = []
    pid = 4000
    for start in cycles.tolist():
        pid += 1
        changes = int(rng.integers(100, 2000) * max(scale, 0.1))
        steps = [
            (0, "1:M", "*", f"{changes} changes in 60 seconds. Saving..."),
            (1, "1:M", "*", f"Background saving started by pid {pid}"),
            (40, f"{pid}:C", "*", "DB saved on disk"),
            (41, f"{pid}:C", "*", "Fork CoW for RDB: current 1 MB, peak 1 MB, average 0 MB"),
            (90, "1:M", "*", "Background saving terminated with success"),
        ]
        for offset_ms, who, mark, text in steps:
            ts.append(start + offset_ms * 1_000_000)
            parts.append((who, mark, text))
            levels.append("info")
    for at in warns.tolist():
        ts.append(at)
        client = int(rng.integers(1000, 9999))
        parts.append(
            (
                "1:M",
                "#",
                f"Client id={client} addr=10.42.1.9:{client + 40000} laddr=10.42.0.9:6379 "
                "name= cmd=subscribe scheduled to be closed ASAP for overcoming of output "
                "buffer limits.",
            )
        )
        levels.append("warn")
    ts_arr = np.asarray(ts, dtype="int64")
    keep = ts_arr < clock.end_ns
    stamps = pd.to_datetime(ts_arr, unit="ns").strftime("%d %b %Y %H:%M:%S.%f")
    text = [
        f"{who} {stamp[:-3]} {mark} {msg}"
        for (who, mark, msg), stamp in zip(parts, stamps, strict=True)
    ]
    streams.add(
        ts_arr[keep],
        [lvl for lvl, k in zip(levels, keep, strict=True) if k],
        "redis",
        [t for t, k in zip(text, keep, strict=True) if k],
    )


def ground_truth_path_for(path: str | Path) -> Path:
    """``logs.jsonl`` → ``logs.truth.json`` (where :func:`simulate` writes the incidents)."""
    path = Path(path)
    stem = path.name.split(".")[0]
    return path.with_name(stem + ".truth.json")


def simulate(
    path: str | Path,
    start: Any,
    hours: float = 24,
    seed: int = 0,
    incidents: bool = True,
    scale: float = 1.0,
) -> SimulationResult:
    """Write ``hours`` of logs from ``start`` to ``path`` (JSONL) and a ground-truth file.

    ``scale`` multiplies request traffic (1.0 ≈ 80k lines a day; health probes and Redis
    saves stay fixed, so every service logs at least every 15-60 s). Above ~1.5 the
    baseline AI spend approaches the $2/day budget.
    """
    start_ns = to_ns(start)
    if hours <= 0:
        raise ConfigError(f"hours must be positive, got {hours}")
    if not 0 < scale <= 50:
        raise ConfigError(f"scale must be in (0, 50], got {scale}", hint="1.0 ≈ 80k lines/day")
    if incidents and hours < MIN_HOURS_WITH_INCIDENTS:
        raise ConfigError(
            f"{hours}h is too short to hold the five incidents",
            hint=f"use hours >= {MIN_HOURS_WITH_INCIDENTS} or incidents=False",
        )
    end_ns = start_ns + int(hours * 3600 * NS_PER_S)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    planned = plan_incidents(start_ns, end_ns) if incidents else []
    by_kind = {incident.kind: incident for incident in planned}
    clock = _Clock(np.random.default_rng(seed), start_ns, end_ns)
    streams = _Streams()
    _backend_ts(clock, streams, by_kind, scale)
    _backend_rag(clock, streams, by_kind, scale)
    _qdrant(clock, streams, by_kind, scale)
    _redis(clock, streams, scale)
    per_service = {
        svc: sum(len(chunk) for chunk in streams.labels if chunk and chunk[0]["service"] == svc)
        for svc in SERVICES
    }
    total = streams.write(path)
    truth_path = ground_truth_path_for(path)
    truth = {
        "path": str(path),
        "seed": seed,
        "scale": scale,
        "start": ns_to_rfc3339(start_ns),
        "end": ns_to_rfc3339(end_ns),
        "start_ns": start_ns,
        "end_ns": end_ns,
        "lines": total,
        "lines_per_service": per_service,
        "incidents": [asdict(incident) for incident in planned],
    }
    tmp = truth_path.with_name(truth_path.name + ".tmp")
    tmp.write_text(json.dumps(truth, indent=2) + "\n")
    os.replace(tmp, truth_path)
    return SimulationResult(
        path=path,
        ground_truth_path=truth_path,
        start_ns=start_ns,
        end_ns=end_ns,
        lines=total,
        lines_per_service=per_service,
        incidents=truth["incidents"],
    )


def load_ground_truth(path: str | Path) -> dict[str, Any]:
    """Read a ground-truth file written by :func:`simulate` (or one written by hand)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no ground-truth file at {path}")
    try:
        truth = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    incidents = truth.get("incidents") if isinstance(truth, dict) else None
    if not isinstance(incidents, list):
        raise ConfigError(f"{path} has no 'incidents' list")
    for item in incidents:
        for key in ("start", "end"):
            item[f"{key}_ns"] = to_ns(item.get(f"{key}_ns") or item[key])
        item.setdefault("alerts", [])
        item.setdefault("labels", {})
        item.setdefault("id", f"{item.get('kind', 'incident')}-{item['start_ns']}")
    return truth
