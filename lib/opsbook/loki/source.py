"""One query interface, two backends: a live Loki or exported log files.

:func:`open_source` picks :class:`~opsbook.loki.http.LokiHTTP` for a URL and the embedded
``LocalLogs`` engine for files; the ``*_frame`` helpers run a query on either and return
the tidy frames of :mod:`opsbook.loki.frames`, so panels and rules never care which one
answered.

>>> src = open_source(log_paths=["exports/prod.jsonl"])  # doctest: +SKIP
>>> metric_frame(src, 'sum by (service) (rate({env="prod"}[1m]))', start, end, "1m")
... # doctest: +SKIP
"""

from __future__ import annotations

import glob
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from opsbook.errors import ConfigError
from opsbook.loki.frames import to_frame
from opsbook.loki.http import LokiHTTP
from opsbook.loki.timeutil import NS_PER_S, ns_to_rfc3339, parse_duration, to_ns
from opsbook.paths import resolve

LOG_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz")


class LogSource(Protocol):
    """What both backends offer (``LokiHTTP`` and ``LocalLogs``)."""

    def query_range(
        self,
        query: str,
        start: Any,
        end: Any,
        step: Any = None,
        limit: int = 100,
        direction: str = "backward",
    ) -> dict[str, Any]: ...

    def query(
        self, query: str, time: Any = None, limit: int = 100, direction: str = "backward"
    ) -> dict[str, Any]: ...

    def labels(self, start: Any = None, end: Any = None) -> list[str]: ...

    def label_values(self, name: str, start: Any = None, end: Any = None) -> list[str]: ...

    def series(self, match: Any, start: Any = None, end: Any = None) -> list[dict[str, str]]: ...


def expand_paths(log_paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Files named by ``log_paths``: files, directories (their log files) and globs."""
    items = [log_paths] if isinstance(log_paths, str | Path) else list(log_paths)
    found: list[Path] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(text))
            if not matches:
                raise ConfigError(f"no file matches {text!r}", hint="check the log_paths glob")
            found.extend(matches)
            continue
        path = resolve(text)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.name.endswith(LOG_SUFFIXES))
            if not files:
                raise ConfigError(
                    f"directory {path} holds no log files ({', '.join(LOG_SUFFIXES)})",
                    hint="export logs with `opsbook loki export` or point at the files",
                )
            found.extend(files)
        elif path.exists():
            found.append(path)
        else:
            raise ConfigError(f"log file {path} does not exist", hint="check log_paths")
    return found


def open_source(
    *,
    loki_url: str = "",
    log_paths: str | Path | Sequence[str | Path] = (),
    tenant: str = "",
    auth_env: str = "",
    **http_options: Any,
) -> Any:
    """Open a live Loki (``loki_url``) or exported logs (``log_paths``), never both.

    ``tenant`` and ``auth_env`` (the NAME of the env var holding ``user:password`` or a
    token) apply to Loki only.
    """
    paths = expand_paths(log_paths) if log_paths else []
    if loki_url and paths:
        raise ConfigError(
            "both loki_url and log_paths are set", hint="query a live Loki OR exported files"
        )
    if loki_url:
        return LokiHTTP(loki_url, tenant=tenant or None, auth_env=auth_env or None, **http_options)
    if not paths:
        raise ConfigError(
            "no log source: loki_url and log_paths are both empty",
            hint="pass loki_url='http://host:3100' or log_paths=['export.jsonl']",
        )
    from opsbook.loki.local import LocalLogs

    return LocalLogs([str(p) for p in paths])


def resolve_window(
    start: Any, end: Any, *, default_span: str = "6h", now: Any = "now"
) -> tuple[int, int]:
    """``(start_ns, end_ns)`` from user input; empty values default to the last 6 hours."""
    end_ns = to_ns(end) if end not in (None, "") else to_ns(now)
    start_ns = to_ns(start) if start not in (None, "") else end_ns - parse_duration(default_span)
    if end_ns <= start_ns:
        raise ConfigError(
            f"the window is empty: start {start!r} is not before end {end!r}",
            hint="pass start earlier than end (RFC3339, epoch seconds or ns)",
        )
    return start_ns, end_ns


def align(ts_ns: int, step_ns: int) -> int:
    """Round ``ts_ns`` up to a multiple of ``step_ns`` (evaluation times of a ruler)."""
    return -(-ts_ns // step_ns) * step_ns


def metric_frame(
    source: LogSource, query: str, start: Any, end: Any, step: Any = "1m"
) -> pd.DataFrame:
    """Tidy samples of a metric range query (``timestamp``, ``value``, ``series``, labels)."""
    data = source.query_range(query, to_ns(start), to_ns(end), step=step)
    frame = to_frame(data)
    if data.get("resultType") == "streams":
        raise ConfigError(f"{query!r} is a log query", hint="use logs_frame() for log queries")
    return frame


def instant_frame(source: LogSource, query: str, time: Any) -> pd.DataFrame:
    """Tidy samples of an instant metric query at ``time``."""
    return to_frame(source.query(query, time=to_ns(time)))


def logs_frame(
    source: LogSource,
    query: str,
    start: Any,
    end: Any,
    limit: int = 1000,
    direction: str = "backward",
) -> pd.DataFrame:
    """Log entries (``timestamp``, ``series``, ``labels``, ``line``, label columns)."""
    data = source.query_range(query, to_ns(start), to_ns(end), limit=limit, direction=direction)
    if data.get("resultType") != "streams":
        raise ConfigError(f"{query!r} is a metric query", hint="use metric_frame() instead")
    return to_frame(data)


def step_seconds(step: Any) -> float:
    """A step (``"1m"``, ``60``) in seconds."""
    if isinstance(step, int | float) and not isinstance(step, bool):
        return float(step)
    return parse_duration(str(step)) / NS_PER_S


DEMO_START = "2026-11-28T06:00:00Z"


@dataclass
class Analysis:
    """What a notebook analyses: a source, a window and the incidents known in it."""

    source: Any
    start_ns: int
    end_ns: int
    description: str
    incidents: list[dict[str, Any]] = field(default_factory=list)
    log_paths: list[str] = field(default_factory=list)

    @property
    def window(self) -> tuple[str, str]:
        return ns_to_rfc3339(self.start_ns), ns_to_rfc3339(self.end_ns)


def data_bounds(source: LogSource) -> tuple[int, int]:
    """First and last entry timestamps of all logs in ``source`` (two limit-1 queries)."""
    names = [n for n in source.labels() if not n.startswith("__")]
    if not names:
        raise ConfigError("the log source holds no entries", hint="check log_paths")
    selector = f'{{{names[0]}=~".+"}}'
    lo, hi = 0, to_ns("2200-01-01T00:00:00Z")
    first = to_frame(source.query_range(selector, lo, hi, limit=1, direction="forward"))
    last = to_frame(source.query_range(selector, lo, hi, limit=1, direction="backward"))
    return int(first["ts_ns"].min()), int(last["ts_ns"].max())


def open_analysis(
    *,
    loki_url: str = "",
    log_paths: str | Sequence[str] = (),
    start: Any = "",
    end: Any = "",
    tenant: str = "",
    auth_env: str = "",
    incidents_path: str = "",
    work_dir: str | Path | None = None,
    demo_hours: float = 4.0,
    demo_seed: int = 0,
) -> Analysis:
    """Open the notebook's source and settle its window.

    * ``loki_url``: a live Loki; the window defaults to the last 6 hours;
    * ``log_paths``: exported files; the window defaults to the span of the data;
    * neither: simulate ``demo_hours`` of logs with incidents into ``work_dir`` (a temp
      dir by default) and use its ground truth as the known incidents.

    ``incidents_path`` names a ground-truth JSON (as :func:`simulate` writes) to shade
    and score; without it a single log file's ``<name>.truth.json`` sibling is used
    when present, and the demo uses its own.
    """
    from opsbook.loki.simulate import load_ground_truth, simulate

    paths = [log_paths] if isinstance(log_paths, str) else list(log_paths)
    paths = [p for p in paths if str(p).strip()]
    incidents: list[dict[str, Any]] = []
    if not loki_url and not paths:
        folder = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="opsbook-loki-"))
        sim_start = start if start not in (None, "") else DEMO_START
        sim = simulate(folder / "demo-logs.jsonl", sim_start, hours=demo_hours, seed=demo_seed)
        paths = [str(sim.path)]
        incidents = load_ground_truth(sim.ground_truth_path)["incidents"]
        start, end = sim.start_ns, sim.end_ns
        description = (
            f"simulated demo: {sim.lines} lines over {demo_hours:g}h with "
            f"{len(incidents)} injected incidents, in {sim.path} (no loki_url or log_paths given)"
        )
    else:
        description = f"Loki at {loki_url}" if loki_url else f"exported logs: {', '.join(paths)}"
    source = open_source(loki_url=loki_url, log_paths=paths, tenant=tenant, auth_env=auth_env)
    if loki_url or (start not in (None, "") and end not in (None, "")):
        start_ns, end_ns = resolve_window(start, end)
    else:
        first, last = data_bounds(source)
        minute = 60 * NS_PER_S  # the data's span, widened to whole minutes
        start_ns = to_ns(start) if start not in (None, "") else first // minute * minute
        end_ns = to_ns(end) if end not in (None, "") else align(last + 1, minute)
        if end_ns <= start_ns:
            raise ConfigError(f"the window is empty: start {start!r}, end {end!r}")
    truth = Path(incidents_path) if incidents_path else _sibling_truth(paths)
    if truth is not None:
        incidents = load_ground_truth(resolve(truth))["incidents"]
        if not incidents_path:
            description += f"; known incidents from {truth}"
    return Analysis(source, start_ns, end_ns, description, incidents, [str(p) for p in paths])


def _sibling_truth(paths: Sequence[str]) -> Path | None:
    """The ground truth :func:`simulate` wrote next to a single log file, if any."""
    from opsbook.loki.simulate import ground_truth_path_for

    if len(paths) != 1 or any(ch in str(paths[0]) for ch in "*?["):
        return None
    candidate = ground_truth_path_for(resolve(paths[0]))
    return candidate if candidate.is_file() else None
