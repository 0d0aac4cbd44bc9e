"""A client for Loki's HTTP API with the same methods and return shapes as ``LocalLogs``.

What it adds over a bare ``requests.get``:

* tenant header (``X-Scope-OrgID``) and basic or bearer auth read from an environment
  variable *named* by the caller (the value never travels as a parameter);
* retries with exponential backoff on 429, 5xx, timeouts and refused connections,
  honouring ``Retry-After``;
* long ranges split into sub-ranges (Loki rejects queries longer than
  ``max_query_length``; smaller pieces also avoid its one-minute timeouts);
* log queries paged past ``limit`` / ``max_entries_limit_per_query`` the way logcli
  does: there is no cursor, so each page moves the window's edge to the last timestamp
  seen and drops the entries of that nanosecond that were already returned;
* Loki's own error text surfaced on 400 (parse errors, limits).

>>> loki = LokiHTTP("http://localhost:3100", tenant="team-a", auth_env="LOKI_AUTH")
>>> loki.query_range('sum by (service) (rate({env="prod"}[1m]))', "now-1h", "now", step="1m")
... # doctest: +SKIP
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import requests

from opsbook.errors import ConfigError, ServiceUnavailable, TransientError
from opsbook.loki.timeutil import NS_PER_S, parse_duration, to_ns
from opsbook.settings import secret

DEFAULT_PAGE_LIMIT = 5000  # Loki's default max_entries_limit_per_query
DEFAULT_SPLIT = "24h"
MAX_POINTS_PER_SERIES = 11_000  # Loki rejects range queries with more points per series


class LokiQueryError(ConfigError):
    """Loki rejected the query (HTTP 400): the message is Loki's own text."""


class LokiAuthError(ConfigError):
    """Loki answered 401/403: the credentials or the tenant are wrong."""


class LokiUnavailable(ServiceUnavailable):
    """Loki could not be reached or kept failing (429/5xx/timeouts) after retries."""


class _Retryable(TransientError):
    """One attempt failed in a way worth retrying (internal)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def auth_header(auth_env: str | None) -> dict[str, str]:
    """Authorization header from the env var named ``auth_env``.

    ``user:password`` gives basic auth; ``Bearer <token>`` or a bare token gives bearer
    auth. An unset name means no auth.
    """
    value = secret(auth_env) if auth_env else None
    if auth_env and value is None:
        raise LokiAuthError(
            f"environment variable {auth_env} (auth_env) is not set",
            hint=f"export {auth_env}='user:password' (basic) or '<token>' (bearer), "
            "or pass auth_env='' for no auth",
        )
    if value is None:
        return {}
    if value.lower().startswith("bearer "):
        return {"Authorization": value}
    if ":" in value:
        import base64

        return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}
    return {"Authorization": f"Bearer {value}"}


def subranges(start: int, end: int, size: int, step: int | None = None) -> list[tuple[int, int]]:
    """Cut ``[start, end]`` into pieces of at most ``size`` ns.

    With a ``step`` the pieces hold whole steps and never share a step: each piece starts
    one step after the previous one ended, so evaluation times stay ``start + k*step``.
    """
    if end <= start or size <= 0:
        return [(start, end)]
    pieces: list[tuple[int, int]] = []
    if step:
        per = max(1, size // step) * step
        cursor = start
        while cursor <= end:
            last = min(end, cursor + per - step)
            pieces.append((cursor, last))
            cursor = last + step
        return pieces
    cursor = start
    while cursor < end:
        pieces.append((cursor, min(end, cursor + size)))
        cursor += size
    return pieces


class LokiHTTP:
    """Loki's HTTP API, returning the ``data`` objects ``LocalLogs`` returns."""

    def __init__(
        self,
        url: str,
        *,
        tenant: str | None = None,
        auth_env: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        page_limit: int = DEFAULT_PAGE_LIMIT,
        split: str = DEFAULT_SPLIT,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"invalid Loki URL {url!r}", hint="use the base URL, e.g. http://localhost:3100"
            )
        if page_limit < 1:
            raise ConfigError("page_limit must be at least 1")
        self.url = url.rstrip("/")
        self.tenant = tenant or None
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.page_limit = page_limit
        self.split_ns = parse_duration(split)
        self._sleep = sleep
        self._headers = {
            "Accept": "application/json",
            # Loki 3.x: keep structured metadata apart from stream labels in log answers
            "X-Loki-Response-Encoding-Flags": "categorize-labels",
            **auth_header(auth_env),
        }
        if self.tenant:
            self._headers["X-Scope-OrgID"] = self.tenant
        self._session = session
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"LokiHTTP({self.url!r}, tenant={self.tenant!r})"

    # -- transport -------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def _get(self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]]) -> Any:
        """GET ``path`` and return the decoded JSON body, retrying transient failures."""
        attempt = 0
        while True:
            try:
                return self._attempt(path, params)
            except _Retryable as exc:
                attempt += 1
                if attempt > self.retries:
                    raise LokiUnavailable(
                        f"Loki at {self.url} kept failing: {exc.message}",
                        hint=f"gave up after {self.retries} retries; check the server or "
                        "retry later with a shorter range",
                    ) from None
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                delay = delay * (0.5 + random.random() / 2)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.max_backoff))
                self._sleep(delay)

    def _attempt(self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]]) -> Any:
        self.requests_made += 1
        try:
            response = self.session.get(
                self.url + path, params=params, headers=self._headers, timeout=self.timeout
            )
        except requests.Timeout:
            raise _Retryable(f"timed out after {self.timeout}s") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise _Retryable(f"cannot connect ({exc.__class__.__name__})") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {_error_text(response)}", _retry_after(response))
        if status in (401, 403):
            raise LokiAuthError(
                f"Loki refused the request (HTTP {status}): {_error_text(response)}",
                hint="check auth_env (user:password or token) and the tenant (X-Scope-OrgID)",
            )
        if status == 404:
            raise ConfigError(
                f"{self.url}{path} does not exist (HTTP 404)",
                hint="loki_url must be Loki's base URL (http://host:3100), not a Grafana URL",
            )
        if status >= 400:
            raise LokiQueryError(
                f"Loki rejected the query (HTTP {status}): {_error_text(response)}"
            )
        try:
            body = response.json()
        except ValueError:
            raise LokiQueryError(f"Loki answered non-JSON: {response.text[:200]!r}") from None
        if isinstance(body, dict) and body.get("status") == "error":
            raise LokiQueryError(f"Loki error: {body.get('error', body)}")
        return body

    def _data(self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]]) -> Any:
        body = self._get(path, params)
        return body.get("data") if isinstance(body, dict) and "data" in body else body

    # -- queries ---------------------------------------------------------------------

    def query_range(
        self,
        query: str,
        start: Any,
        end: Any,
        step: Any = None,
        limit: int = 100,
        direction: str = "backward",
    ) -> dict[str, Any]:
        """Range query; metric results are merged over sub-ranges, logs are paged."""
        start_ns, end_ns = to_ns(start), to_ns(end)
        if end_ns < start_ns:
            raise ConfigError(f"end ({end}) is before start ({start})")
        _check_direction(direction)
        step_ns = _step_ns(step, start_ns, end_ns)
        if is_log_query(query):
            return self._log_range(query, start_ns, end_ns, step_ns, limit, direction)
        return self._metric_range(query, start_ns, end_ns, step_ns, limit, direction)

    def _range_once(
        self, query: str, start: int, end: int, step: int, limit: int, direction: str
    ) -> dict[str, Any]:
        params = {
            "query": query,
            "start": str(start),
            "end": str(end),
            "step": _fmt_step(step),
            "limit": str(limit),
            "direction": direction,
        }
        return self._data("/loki/api/v1/query_range", params)

    def _metric_range(
        self, query: str, start: int, end: int, step: int, limit: int, direction: str
    ) -> dict[str, Any]:
        merged: dict[tuple, dict[str, Any]] = {}
        kind = "matrix"
        size = min(self.split_ns, MAX_POINTS_PER_SERIES * step)
        for lo, hi in subranges(start, end, size, step):
            data = self._range_once(query, lo, hi, step, limit, direction)
            kind = data.get("resultType", kind)
            for item in data.get("result") or []:
                key = tuple(sorted((item.get("metric") or {}).items()))
                slot = merged.setdefault(key, {"metric": item.get("metric") or {}, "values": []})
                slot["values"].extend(item.get("values") or [])
        result = list(merged.values())
        for item in result:
            item["values"].sort(key=lambda sample: float(sample[0]))
        return {"resultType": kind, "result": result}

    def _log_range(
        self,
        query: str,
        start: int,
        end: int,
        step: int,
        limit: int,
        direction: str,
    ) -> dict[str, Any]:
        streams: dict[tuple, dict[str, Any]] = {}
        for labels, ts, line in self.iter_entries(query, start, end, direction, limit, step):
            key = tuple(sorted(labels.items()))
            slot = streams.setdefault(key, {"stream": labels, "values": []})
            slot["values"].append([str(ts), line])
        return {"resultType": "streams", "result": list(streams.values())}

    def iter_entries(
        self,
        query: str,
        start: Any,
        end: Any,
        direction: str = "forward",
        limit: int | None = None,
        step: int | None = None,
    ) -> Iterator[tuple[dict[str, str], int, str]]:
        """Yield ``(labels, ts_ns, line)`` of a log query in ``direction`` order, paging.

        ``labels`` are all of the entry's labels (stream, structured metadata, parsed), as
        Loki answers without ``categorize-labels``; :meth:`iter_records` keeps them apart.
        """
        for labels, ts, line, meta in self.iter_records(query, start, end, direction, limit, step):
            yield ({**labels, **meta} if meta else labels), ts, line

    def iter_records(
        self,
        query: str,
        start: Any,
        end: Any,
        direction: str = "forward",
        limit: int | None = None,
        step: int | None = None,
    ) -> Iterator[tuple[dict[str, str], int, str, dict[str, str]]]:
        """Yield ``(labels, ts_ns, line, structured_metadata)`` in ``direction`` order.

        ``labels`` are the stream labels plus any parsed labels; structured metadata comes
        from the categorized answer (``[ts, line, {"structuredMetadata": ...}]``).

        Pages hold at most ``page_limit`` entries. Like logcli, each page moves the
        window edge onto the last timestamp seen (``end`` is exclusive, ``start``
        inclusive) and drops the entries of that nanosecond already yielded.
        """
        _check_direction(direction)
        start_ns, end_ns = to_ns(start), to_ns(end)
        pieces = subranges(start_ns, end_ns, self.split_ns)
        if direction == "backward":
            pieces.reverse()
        edge = _Edge(direction)
        count = 0
        for lo, hi in pieces:
            while True:
                want = self.page_limit
                if limit is not None:
                    want = min(want, limit - count + edge.count)
                    if count >= limit:
                        return
                data = self._range_once(query, lo, hi, step or NS_PER_S, want, direction)
                entries = _entries(data, direction)
                fresh = edge.fresh(entries)
                for entry in fresh:
                    yield entry
                    count += 1
                    if limit is not None and count >= limit:
                        return
                if len(entries) < want:
                    break  # this window is exhausted
                if not fresh:
                    raise LokiQueryError(
                        f"more than {want} entries share the nanosecond {edge.ts}; "
                        "paging cannot get past it",
                        hint="raise page_limit up to Loki's max_entries_limit_per_query",
                    )
                if direction == "backward":
                    hi = edge.ts + 1  # end is exclusive: keep the edge nanosecond
                else:
                    lo = edge.ts

    def query(
        self, query: str, time: Any = None, limit: int = 100, direction: str = "backward"
    ) -> dict[str, Any]:
        """Instant query at ``time`` (default now)."""
        _check_direction(direction)
        params = {"query": query, "limit": str(limit), "direction": direction}
        if time is not None and time != "":
            params["time"] = str(to_ns(time))
        return self._data("/loki/api/v1/query", params)

    # -- metadata --------------------------------------------------------------------

    def labels(self, start: Any = None, end: Any = None) -> list[str]:
        """Label names seen in the range."""
        return list(self._data("/loki/api/v1/labels", _range_params(start, end)) or [])

    def label_values(self, name: str, start: Any = None, end: Any = None) -> list[str]:
        """Values of label ``name`` seen in the range."""
        if not name:
            raise ConfigError("label name is empty")
        path = f"/loki/api/v1/label/{requests.utils.quote(name, safe='')}/values"
        return list(self._data(path, _range_params(start, end)) or [])

    def series(
        self, match: str | Iterable[str], start: Any = None, end: Any = None
    ) -> list[dict[str, str]]:
        """Label sets of the streams matching one or more selectors."""
        matches = [match] if isinstance(match, str) else list(match)
        if not matches:
            raise ConfigError("series() needs at least one stream selector")
        params = [("match[]", m) for m in matches] + list(_range_params(start, end).items())
        return list(self._data("/loki/api/v1/series", params) or [])

    def stats(self, query: str, start: Any, end: Any) -> dict[str, int]:
        """Index statistics (streams, chunks, entries, bytes) for a selector."""
        params = {"query": query, **_range_params(start, end)}
        return dict(self._get("/loki/api/v1/index/stats", params))


class _Edge:
    """The last timestamp seen while paging and the entries already returned at it."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.ts: int | None = None
        self._seen: set[tuple] = set()

    @property
    def count(self) -> int:
        return len(self._seen)

    def fresh(self, entries: list[_Record]) -> list[_Record]:
        """Entries not returned before; updates the edge."""
        out = []
        for labels, ts, line, meta in entries:
            key = (tuple(sorted(labels.items())), ts, line, tuple(sorted(meta.items())))
            if ts == self.ts and key in self._seen:
                continue
            if self.ts is None or (ts < self.ts if self.direction == "backward" else ts > self.ts):
                self.ts = ts
                self._seen = set()
            if ts == self.ts:
                self._seen.add(key)
            out.append((labels, ts, line, meta))
        return out


_Record = tuple[dict[str, str], int, str, dict[str, str]]


def _entries(data: Mapping[str, Any], direction: str) -> list[_Record]:
    """Entries of a streams result merged across streams in ``direction`` order.

    A categorized value ``[ts, line, {"structuredMetadata": {...}, "parsed": {...}}]``
    gives its parsed labels to the entry's labels and its metadata apart.
    """
    rows: list[_Record] = []
    for stream in data.get("result") or []:
        base = dict(stream.get("stream") or {})
        for value in stream.get("values") or []:
            ts, line = int(value[0]), value[1]
            extra = value[2] if len(value) > 2 and isinstance(value[2], dict) else {}
            parsed = extra.get("parsed") or {}
            meta = dict(extra.get("structuredMetadata") or {})
            rows.append(({**base, **parsed} if parsed else base, ts, line, meta))
    rows.sort(key=lambda row: row[1], reverse=direction == "backward")
    return rows


def is_log_query(query: str) -> bool:
    """True for a log query (``{...} | ...``), False for a metric query.

    Per Loki's grammar a log query is a stream selector, optionally in parentheses,
    while every metric query starts with a function, a number or ``vector(``.
    """
    return query.lstrip("( \t\r\n").startswith("{")


def _check_direction(direction: str) -> None:
    if direction not in ("backward", "forward"):
        raise ConfigError(f"direction must be 'backward' or 'forward', not {direction!r}")


def _step_ns(step: Any, start: int, end: int) -> int:
    """Step in ns; Loki's default is range/250 rounded to seconds (at least 1s)."""
    if step is None or step == "":
        return max(NS_PER_S, ((end - start) // 250) // NS_PER_S * NS_PER_S)
    if isinstance(step, int | float) and not isinstance(step, bool):
        value = int(step * NS_PER_S)
    else:
        text = str(step)
        value = int(float(text) * NS_PER_S) if _is_number(text) else parse_duration(text)
    if value <= 0:
        raise ConfigError(f"step must be positive, got {step!r}")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fmt_step(step_ns: int) -> str:
    seconds = step_ns / NS_PER_S
    return f"{seconds:g}s" if step_ns % 1_000_000 == 0 else f"{step_ns}ns"


def _range_params(start: Any, end: Any) -> dict[str, str]:
    params: dict[str, str] = {}
    if start is not None and start != "":
        params["start"] = str(to_ns(start))
    if end is not None and end != "":
        params["end"] = str(to_ns(end))
    return params


def _error_text(response: requests.Response) -> str:
    text = response.text.strip()
    try:
        body = response.json()
    except ValueError:
        return text[:500] or response.reason or ""
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or text)[:500]
    return text[:500]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
