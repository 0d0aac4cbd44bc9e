"""A client for Loki's HTTP API with the same methods and return shapes as ``LocalLogs``.

What it adds over a bare ``requests.get``:

* tenant header (``X-Scope-OrgID``) and basic or bearer auth read from an environment
  variable *named* by the caller (the value never travels as a parameter);
* retries through urllib3's ``Retry`` (mounted on the requests session) on 429, 5xx,
  timeouts, refused connections and answers cut off mid-body, with exponential backoff from the first retry and
  ``Retry-After`` honoured in both of its forms (delta-seconds and HTTP-date), capped at
  ``max_backoff``; the sleep and the clock are injectable (:class:`LokiRetry`);
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

import email.utils
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from opsbook.errors import ConfigError, ServiceUnavailable
from opsbook.loki.timeutil import NS_PER_S, parse_duration, to_ns
from opsbook.settings import secret

DEFAULT_PAGE_LIMIT = 5000  # Loki's default max_entries_limit_per_query
DEFAULT_SPLIT = "24h"
MAX_POINTS_PER_SERIES = 11_000  # Loki rejects range queries with more points per series
RETRY_STATUSES = frozenset({429, *range(500, 600)})  # "slow down" and server-side failures


class LokiQueryError(ConfigError):
    """Loki rejected the query (HTTP 400): the message is Loki's own text."""


class LokiAuthError(ConfigError):
    """Loki answered 401/403: the credentials or the tenant are wrong."""


class LokiUnavailable(ServiceUnavailable):
    """Loki could not be reached or kept failing (429/5xx/timeouts) after retries."""


def retry_after_seconds(value: str, now: float) -> float | None:
    """Seconds to wait for a ``Retry-After`` value at time ``now`` (epoch seconds).

    Both forms of RFC 9110 section 10.2.3: delta-seconds (``"120"``) and an HTTP-date
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``, counted from ``now``). A date in the past gives
    0; a value that is neither gives None (the header is then ignored).

    >>> retry_after_seconds("120", now=0.0)
    120.0
    >>> retry_after_seconds("Thu, 01 Jan 1970 00:01:00 GMT", now=30.0)
    30.0
    """
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value):
        return float(value)
    when = email.utils.parsedate_tz(value)
    if when is None:
        return None
    return max(0.0, email.utils.mktime_tz(when) - now)


class LokiRetry(Retry):
    """urllib3's ``Retry`` with an injectable ``sleep`` and ``clock``, for Loki.

    Two differences from urllib3's defaults, both about being polite to a loaded Loki:
    the backoff starts with the first retry (urllib3 retries the first failure at once,
    which is exactly wrong after a 429), and the wait is the longer of the backoff and
    the server's ``Retry-After`` (capped at ``retry_after_max``), never the shorter.
    """

    def __init__(
        self,
        *args: Any,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.sleep_fn = sleep
        self.clock = clock

    def new(self, **kw: Any) -> LokiRetry:
        kw.setdefault("sleep", self.sleep_fn)
        kw.setdefault("clock", self.clock)
        return super().new(**kw)

    def parse_retry_after(self, retry_after: str) -> float:
        seconds = retry_after_seconds(retry_after, now=self.clock())
        if seconds is None:
            raise InvalidHeader(f"Invalid Retry-After header: {retry_after}")
        return min(seconds, self.retry_after_max)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """The capped ``Retry-After`` in seconds; None when absent or unreadable."""
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None

    def get_backoff_time(self) -> float:
        """``backoff_factor * 2**(n-1)`` for the n-th retry, capped, with 50-100% jitter."""
        failures = len(self.history)
        if failures == 0 or self.backoff_factor <= 0:
            return 0.0
        value = min(self.backoff_max, self.backoff_factor * 2 ** (failures - 1))
        return value * (0.5 + random.random() / 2)

    def wait_time(self, response: BaseHTTPResponse | None = None) -> float:
        """Seconds to wait before the next attempt after ``response`` (None: no answer)."""
        wait = self.get_backoff_time()
        if response is not None and self.respect_retry_after_header:
            wait = max(wait, self.get_retry_after(response) or 0.0)
        return wait

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = self.wait_time(response)
        if wait > 0:
            self.sleep_fn(wait)


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
        clock: Callable[[], float] = time.time,
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
        self._clock = clock
        self._headers = {
            "Accept": "application/json",
            # Loki 3.x: keep structured metadata apart from stream labels in log answers
            "X-Loki-Response-Encoding-Flags": "categorize-labels",
            **auth_header(auth_env),
        }
        if self.tenant:
            self._headers["X-Scope-OrgID"] = self.tenant
        self._session = session
        self._mounted = False

    def __repr__(self) -> str:
        return f"LokiHTTP({self.url!r}, tenant={self.tenant!r})"

    # -- transport -------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """The HTTP session, created on first use with the retrying adapter mounted."""
        if self._session is None:
            self._session = requests.Session()
        if not self._mounted:
            self._session.mount(self.url + "/", HTTPAdapter(max_retries=self.retry_policy()))
            self._mounted = True
        return self._session

    def retry_policy(self) -> LokiRetry:
        """The urllib3 ``Retry`` every request goes through (see :class:`LokiRetry`)."""
        return LokiRetry(
            total=self.retries,
            status_forcelist=RETRY_STATUSES,
            allowed_methods={"GET"},
            raise_on_status=False,  # the last 429/5xx answer comes back: its text is the message
            respect_retry_after_header=True,
            backoff_factor=self.backoff,
            backoff_max=self.max_backoff,
            retry_after_max=self.max_backoff,
            sleep=self._sleep,
            clock=self._clock,
        )

    def _get(self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]]) -> Any:
        """GET ``path`` and return the decoded JSON body (transient failures are retried by
        the session's :class:`LokiRetry`)."""
        policy = self.retry_policy()
        while True:
            try:
                response = self.session.get(
                    self.url + path, params=params, headers=self._headers, timeout=self.timeout
                )
                break
            except requests.exceptions.ChunkedEncodingError as exc:
                # The body broke off after the headers. requests reads the body after
                # urllib3's Retry has handed the response back, so the same policy (its
                # count, backoff and sleep) is applied here.
                try:
                    policy = policy.increment("GET", self.url + path, error=exc)
                except MaxRetryError:
                    raise self._unavailable("the answer was cut off mid-body") from None
                policy.sleep()
            except requests.RequestException as exc:
                raise self._unavailable(_transport_problem(exc, self.timeout)) from None
        status = response.status_code
        if status in RETRY_STATUSES:
            raise self._unavailable(f"HTTP {status}: {_error_text(response)}")
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

    def _unavailable(self, problem: str) -> LokiUnavailable:
        return LokiUnavailable(
            f"Loki at {self.url} kept failing: {problem}",
            hint=f"gave up after {self.retries} retries; check the server or "
            "retry later with a shorter range",
        )

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


def _transport_problem(exc: requests.RequestException, timeout: float) -> str:
    """What went wrong when no answer came back (after the retries)."""
    reason = exc.args[0].reason if exc.args and isinstance(exc.args[0], MaxRetryError) else exc
    if isinstance(exc, requests.Timeout) or "timed out" in str(reason).lower():
        return f"timed out after {timeout}s"
    return f"cannot connect ({reason.__class__.__name__})"
