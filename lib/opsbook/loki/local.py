"""LocalLogs: an embedded LogQL engine over exported Loki logs.

Reads, once, JSONL in logcli's ``--output=jsonl`` shape (``{"labels", "line",
"timestamp"}``), JSONL with ``{"ts", "labels", "line"}`` and Loki push / query JSON
(``{"streams": [...]}`` or ``{"data": {"resultType": "streams", "result": [...]}}``), and
keeps each stream columnar: a sorted ``int64`` numpy array of timestamps and its lines.
Structured metadata (Loki 3.x) is kept per entry, apart from the stream labels: the third
element of a push/query value (``[ts, line, {"trace_id": "..."}]``), the categorized query
form (``[ts, line, {"structuredMetadata": {...}, "parsed": {...}}]``, parsed labels join
the entry's labels) and a JSONL record's ``"structuredMetadata"`` object. A value or
record the loader does not understand is an error naming the file and the line (JSONL) or
the stream and value (JSON), never dropped.
Entries identical in stream, timestamp and line are stored once, as Loki's ingester
does; entries of a stream sharing a timestamp keep file order. Queries answer exactly
like Loki's HTTP ``data`` object.

logcli files, with or without ``structuredMetadata``, go through pyarrow's JSON reader:
no Python object per record (one dict per distinct metadata object), lines left
undecoded in arrow memory until a query needs their text (metric queries with ``| json``
mostly do not, see :mod:`opsbook.loki.logql.columnar`). Anything unusual in the file
falls back to a per-record loader with the same results and error messages.

>>> logs = LocalLogs([])
>>> logs.add_lines({"app": "api"}, [(1_000_000_000, "hello")])
>>> logs.query_range('count_over_time({app="api"}[1m])', 0, 60, step="60s")["result"][0]["values"]
[[60.0, '1']]
"""

from __future__ import annotations

import gc
import mmap
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from opsbook.errors import ConfigError
from opsbook.loki.logql import ast
from opsbook.loki.logql.engine import query_instant, query_range
from opsbook.loki.logql.evaluator import LabelsKey
from opsbook.loki.logql.parser import parse
from opsbook.loki.timeutil import to_ns

__all__ = ["LocalLogs"]

COLUMNAR_LOAD = True  # logcli JSONL through pyarrow (False: the per-record loader only)

Meta = dict[str, str]  # one entry's structured metadata
_NO_META: Meta = {}
_RECORD_KEYS = frozenset({"labels", "line", "timestamp", "ts", "structuredMetadata", "parsed"})


class RawLines:
    """Lines left inside pyarrow's column and decoded only when a query needs text.

    ``array`` is the file's whole ``line`` column, ``lengths`` the UTF-8 size of each of
    its rows, and ``index`` picks and orders this stream's rows.
    """

    __slots__ = ("array", "lengths", "index")

    def __init__(self, array: Any, lengths: np.ndarray, index: np.ndarray) -> None:
        self.array = array
        self.lengths = lengths
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def take(self, positions: np.ndarray) -> RawLines:
        return RawLines(self.array, self.lengths, self.index[positions])

    def arrow(self, lo: int, hi: int) -> Any:
        """Lines ``lo:hi`` as one contiguous pyarrow string array."""
        import pyarrow as pa

        return self.array.take(pa.array(self.index[lo:hi]))

    def tolist(self) -> list[str]:
        return self.arrow(0, len(self.index)).to_pylist()  # type: ignore[no-any-return]

    def line(self, i: int) -> str:
        return self.array[int(self.index[i])].as_py()  # type: ignore[no-any-return]

    def nbytes(self, lo: int, hi: int) -> np.ndarray:
        """UTF-8 length of lines ``lo:hi``."""
        return self.lengths[self.index[lo:hi]]


class _Stream:
    """One stream: sorted timestamps and its lines (a list, or undecoded :class:`RawLines`)."""

    __slots__ = ("labels", "key", "ts", "_lines", "raw", "cache", "meta")

    def __init__(
        self,
        labels: dict[str, str],
        key: LabelsKey,
        ts: np.ndarray,
        lines: list[str] | RawLines,
        meta: list[Meta] | None = None,
    ) -> None:
        self.labels = labels
        self.key = key
        self.ts = ts
        self.meta = meta  # structured metadata per entry (None: no entry has any)
        self._lines: list[str] | None = lines if isinstance(lines, list) else None
        self.raw: RawLines | None = lines if isinstance(lines, RawLines) else None
        self.cache: dict[Any, Any] = {}  # per-query-shape columns (see logql.columnar)

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            assert self.raw is not None
            self._lines = self.raw.tolist()
        return self._lines

    def line_source(self) -> list[str] | RawLines:
        return self._lines if self._lines is not None or self.raw is None else self.raw


class StreamSlice:
    """Entries of one stream inside a time range (what the evaluator reads).

    ``lines`` decodes on first use; ``arrow_lines()`` gives the lines to pyarrow without
    decoding, and ``cache``/``offset`` let the columnar path reuse parsed fields across
    queries (positions in the cache are positions in the whole stream).
    """

    __slots__ = ("labels", "ts", "stream", "offset", "_lines", "meta")

    def __init__(self, stream: _Stream, lo: int, hi: int) -> None:
        self.labels = stream.labels
        self.ts = stream.ts[lo:hi]
        self.stream = stream
        self.offset = lo
        self._lines: list[str] | None = None
        self.meta = stream.meta[lo:hi] if stream.meta is not None else None

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            lo = self.offset
            self._lines = self.stream.lines[lo : lo + len(self.ts)]
        return self._lines

    @property
    def cache(self) -> dict[Any, Any]:
        return self.stream.cache

    def arrow_lines(self) -> Any:
        """The lines as a pyarrow string array (no decoding when the file was columnar)."""
        raw = self.stream.raw
        if raw is not None and self._lines is None:
            return raw.arrow(self.offset, self.offset + len(self.ts))
        import pyarrow as pa

        return pa.array(self.lines, type=pa.string())

    def whole_arrow_lines(self) -> Any:
        """Every line of the stream (not only this slice) as a pyarrow string array."""
        raw = self.stream.raw
        if raw is not None and self.stream._lines is None:
            return raw.arrow(0, len(raw))
        import pyarrow as pa

        return pa.array(self.stream.lines, type=pa.string())

    def utf8_lengths(self) -> np.ndarray | None:
        """Byte length of each line when known without decoding (None otherwise)."""
        raw = self.stream.raw
        if raw is None:
            return None
        return raw.nbytes(self.offset, self.offset + len(self.ts)).astype(np.float64)


_Pending = tuple[
    dict[str, str], list[np.ndarray], list["list[str] | RawLines"], list["list[Meta] | None"]
]


class LocalLogs:
    """Exported logs held in memory, queried with LogQL.

    ``paths`` is one path or a list of paths. ``max_query_series`` and
    ``max_entries_limit`` reproduce Loki's limits (off by default for local analysis).
    ``align_queries_with_step`` reproduces the query frontend option of that name: range
    queries evaluate at multiples of ``step`` (Loki's default, and ours, is ``start``,
    ``start + step``, ... exactly).
    """

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = (),
        *,
        max_query_series: int | None = None,
        max_entries_limit: int | None = None,
        align_queries_with_step: bool = False,
    ) -> None:
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        self.max_query_series = max_query_series
        self.max_entries_limit = max_entries_limit
        self.align_queries_with_step = align_queries_with_step
        self._streams: dict[LabelsKey, _Stream] = {}
        self._pending: dict[LabelsKey, _Pending] = {}
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of small dicts: generational GC passes would dominate loading
        try:
            for path in paths:
                self._load(Path(path))
            self._finalize()
        finally:
            if gc_was_enabled:
                gc.enable()

    # ------------------------------------------------------------------ loading
    def _load(self, path: Path) -> None:
        if not path.exists():
            raise ConfigError(f"log file not found: {path}", hint="check log_paths")
        if not path.is_file():  # a FIFO or a device would block or never end
            raise ConfigError(
                f"{path} is not a regular file (a directory, FIFO, socket or device)",
                hint="export the logs to a file first (opsbook loki export)",
            )
        data = _map_file(path)  # read-only mapping: no copy of a large export
        if not _NOT_BLANK.search(data):
            return
        doc = _whole_document(data)
        if isinstance(doc, dict) and ("streams" in doc or "data" in doc):
            self._load_streams_doc(doc, path)
            return
        if isinstance(doc, list):
            raise ConfigError(
                f"{path}: a JSON array is not a supported log export",
                hint="use logcli --output=jsonl, or Loki push/query JSON",
            )
        self._load_jsonl(data, path)

    def _load_streams_doc(self, doc: dict[str, Any], path: Path) -> None:
        if "data" in doc:
            data = doc["data"]
            if not isinstance(data, dict) or data.get("resultType") != "streams":
                raise ConfigError(
                    f"{path}: query JSON must have resultType 'streams'",
                    hint="export a log query, not a metric query",
                )
            streams = data.get("result", [])
        else:
            streams = doc["streams"]
        if not isinstance(streams, list):
            raise ConfigError(f"{path}: 'streams' / 'result' must be a list of streams")
        for number, item in enumerate(streams):
            where = f"{path}: stream {number + 1}"
            labels = item.get("stream") or item.get("labels") if isinstance(item, dict) else None
            values = item.get("values") if isinstance(item, dict) else None
            if not isinstance(labels, dict) or not isinstance(values, list):
                raise ConfigError(f"{where} needs 'stream' labels and 'values'")
            if not values:
                continue
            base = _clean_labels(labels, path)
            groups: dict[LabelsKey, tuple[list[int], list[str], list[Meta]]] = {}
            for index, value in enumerate(values):
                ts, line, meta, parsed = _stream_value(value, f"{where}, value {index + 1}")
                slot = groups.setdefault(tuple(sorted(parsed.items())), ([], [], []))
                slot[0].append(ts)
                slot[1].append(line)
                slot[2].append(meta)
            for parsed_key, (stamps, lines, metas) in groups.items():
                merged = {**base, **dict(parsed_key)}
                self._append(merged, np.array(stamps, dtype=np.int64), lines, metas)

    def _load_jsonl(self, data: Any, path: Path) -> None:
        if self._load_jsonl_columnar(data, path):
            return
        data = bytes(data)
        raw_lines = data.split(b"\n")
        if raw_lines and not raw_lines[-1].strip():
            raw_lines.pop()
        try:
            records = list(map(orjson.loads, raw_lines))
            labels_list = [r["labels"] for r in records]
            lines = [r["line"] for r in records]
            stamps = [r["timestamp"] if "timestamp" in r else r["ts"] for r in records]
            numbers = list(range(1, len(records) + 1))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            numbered = list(_numbered(data))
            numbers = [number for number, _line in numbered]
            records = [self._parse_line(line, number, path) for number, line in numbered]
            labels_list, lines, stamps = self._fields(records, path, numbers)
        metas = _record_extras(records, labels_list, numbers, path)
        keys = [tuple(labels.items()) for labels in labels_list]
        if not all(type(line) is str for line in lines):
            lines = [line if isinstance(line, str) else str(line) for line in lines]
        try:
            cleaned = {key: _clean_labels(dict(key), path) for key in dict.fromkeys(keys)}
        except TypeError:  # a label value that is an object or a list
            raise ConfigError(
                f"{path}: label values must be strings (found an object or a list)",
                hint='labels look like {"app": "api", "env": "prod"}',
            ) from None
        # one slot per cleaned label set: entries of a stream keep file order whatever the
        # order or empty values of their labels (the columnar loader groups the same way)
        clean_slots: dict[LabelsKey, int] = {}
        slots = {
            key: clean_slots.setdefault(tuple(sorted(labels.items())), len(clean_slots))
            for key, labels in cleaned.items()
        }
        label_sets = list({slots[key]: labels for key, labels in cleaned.items()}.values())
        stream_of = np.fromiter((slots[key] for key in keys), dtype=np.int64, count=len(keys))
        ts_all = _timestamps(stamps, path, numbers)
        order = np.argsort(stream_of, kind="stable")
        bounds = np.searchsorted(stream_of[order], np.arange(len(label_sets) + 1))
        if len(label_sets) == 1:
            self._append(label_sets[0], ts_all, lines, metas)
            return
        line_arr = np.array(lines, dtype=object)
        for slot, labels in enumerate(label_sets):
            idx = order[bounds[slot] : bounds[slot + 1]]
            part = [metas[i] for i in idx.tolist()] if metas is not None else None
            self._append(labels, ts_all[idx], line_arr[idx].tolist(), part)

    def _load_jsonl_columnar(self, data: Any, path: Path) -> bool:
        """Load logcli JSONL with pyarrow's JSON reader (no Python object per record).

        Returns False, having loaded nothing, unless every record is exactly
        ``{"labels": {str: str}, "line": str, "timestamp": str}`` on its own line,
        optionally with ``"structuredMetadata": {str: str}``; the general loader then
        decides (and reports errors) as before.
        """
        found = _read_logcli_table(data) if COLUMNAR_LOAD else None
        if found is None:
            return False
        table, starts = found
        metas: list[Meta] | None = None
        if "structuredMetadata" in table.column_names:
            metas = _arrow_metas(table.column("structuredMetadata"), data, starts)
            if metas is None:
                return False
        labels_col = table.column("labels").combine_chunks()
        stream_of, label_sets = _stream_codes(labels_col)
        if stream_of is None:
            return False
        import pyarrow.compute as pc

        line_col = table.column("line").combine_chunks()  # one array: cheap takes later
        lengths = pc.binary_length(line_col).to_numpy().astype(np.int64)
        ts_all = _arrow_timestamps(table.column("timestamp").combine_chunks(), path)
        order = np.argsort(stream_of, kind="stable")
        bounds = np.searchsorted(stream_of[order], np.arange(len(label_sets) + 1))
        for slot, labels in enumerate(label_sets):
            idx = order[bounds[slot] : bounds[slot + 1]]
            part = None if metas is None else [metas[i] for i in idx.tolist()]
            self._append(labels, ts_all[idx], RawLines(line_col, lengths, idx), part)
        return True

    @staticmethod
    def _fields(
        records: list[Any], path: Path, numbers: list[int]
    ) -> tuple[list[Any], list[Any], list[Any]]:
        labels_list, lines, stamps = [], [], []
        for index, record in enumerate(records):
            try:
                labels_list.append(dict(record["labels"]))
                lines.append(record["line"])
                stamps.append(record["timestamp"] if "timestamp" in record else record["ts"])
            except (KeyError, TypeError, ValueError):
                raise ConfigError(
                    f"{path}:{numbers[index]}: record lacks labels/line/timestamp",
                    hint='each line must look like {"labels": {...}, "line": "...", '
                    '"timestamp": "RFC3339"} or {"ts": <ns>, ...}',
                ) from None
        return labels_list, lines, stamps

    @staticmethod
    def _parse_line(line: bytes, number: int, path: Path) -> Any:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}:{number}: invalid JSON ({exc})",
                hint="each line must be one JSON object (logcli --output=jsonl)",
            ) from None

    def _append(
        self,
        labels: dict[str, str],
        ts: np.ndarray,
        lines: list[str] | RawLines,
        meta: list[Meta] | None = None,
    ) -> None:
        key = tuple(sorted(labels.items()))
        slot = self._pending.get(key)
        if slot is None:
            existing = self._streams.pop(key, None)
            slot = self._pending[key] = (labels, [], [], [])
            if existing is not None:
                slot[1].append(existing.ts)
                slot[2].append(existing.line_source())
                slot[3].append(existing.meta)
        slot[1].append(ts)
        slot[2].append(lines)
        slot[3].append(meta if meta is not None and any(meta) else None)

    def _finalize(self) -> None:
        for key, (labels, ts_parts, line_parts, meta_parts) in self._pending.items():
            ts = np.concatenate(ts_parts) if len(ts_parts) > 1 else ts_parts[0]
            lines: list[str] | RawLines
            if len(line_parts) == 1:
                lines = line_parts[0]
            else:
                lines = [line for part in line_parts for line in _as_list(part)]
            meta = _join_meta(meta_parts, [len(t) for t in ts_parts])
            if len(ts) > 1 and np.any(ts[1:] < ts[:-1]):
                order = np.argsort(ts, kind="stable")
                ts = ts[order]
                lines = _take(lines, order)
                meta = [meta[i] for i in order.tolist()] if meta is not None else None
            keep = _dedupe(ts, lines, meta)
            if keep is not None:
                ts, lines = ts[keep], _take(lines, keep)
                meta = [meta[i] for i in keep.tolist()] if meta is not None else None
            self._streams[key] = _Stream(labels, key, ts, lines, meta)
        self._pending = {}

    def add_lines(
        self,
        labels: dict[str, str],
        entries: Iterable[tuple[int, str] | tuple[int, str, dict[str, str]]],
    ) -> None:
        """Append entries ``(ts_ns, line)`` or ``(ts_ns, line, structured_metadata)`` to the
        stream with ``labels`` (in memory)."""
        rows = list(entries)
        if not rows:
            return
        where = "<add_lines>"
        ts = np.array(
            [row[0] if isinstance(row[0], int) else to_ns(row[0]) for row in rows], dtype=np.int64
        )
        metas = [
            _string_map(row[2], "structured metadata", f"{where} entry {i + 1}")
            if len(row) > 2
            else _NO_META
            for i, row in enumerate(rows)
        ]
        lines = [row[1] for row in rows]
        self._append(_clean_labels(labels, Path(where)), ts, lines, metas)
        self._finalize()

    # ------------------------------------------------------------------ store protocol
    def select(
        self, matchers: tuple[ast.Matcher, ...], start_ns: int, end_ns: int
    ) -> Iterator[StreamSlice]:
        """Streams matching every matcher, with entries in ``[start_ns, end_ns)``."""
        for stream in self._streams.values():
            labels = stream.labels
            if not all(m.matches(labels.get(m.name, "")) for m in matchers):
                continue
            lo = int(np.searchsorted(stream.ts, start_ns, side="left"))
            hi = int(np.searchsorted(stream.ts, end_ns, side="left"))
            if hi > lo:
                yield StreamSlice(stream, lo, hi)

    # ------------------------------------------------------------------ query API
    def query_range(
        self,
        query: str,
        start: Any,
        end: Any,
        step: Any = None,
        limit: int = 100,
        direction: str = "backward",
        *,
        categorize_labels: bool = False,
    ) -> dict[str, Any]:
        """Loki ``/query_range``: returns the ``data`` object (streams or matrix).

        ``categorize_labels`` answers a log query as Loki does for the header
        ``X-Loki-Response-Encoding-Flags: categorize-labels`` (see
        :func:`opsbook.loki.logql.engine.log_query`).
        """
        self._check_limit(limit)
        return query_range(
            self,
            query,
            start,
            end,
            step,
            limit,
            direction,
            max_series=self.max_query_series,
            align=self.align_queries_with_step,
            categorize_labels=categorize_labels,
        )

    def query(
        self, query: str, time: Any = None, limit: int = 100, direction: str = "backward"
    ) -> dict[str, Any]:
        """Loki ``/query`` (instant): returns the ``data`` object (vector or scalar)."""
        self._check_limit(limit)
        return query_instant(self, query, time, limit, direction, max_series=self.max_query_series)

    def _check_limit(self, limit: int) -> None:
        if self.max_entries_limit is not None and limit > self.max_entries_limit:
            from opsbook.loki.logql.errors import LogQLEvalError

            raise LogQLEvalError(
                f"max entries limit per query exceeded, limit > max_entries_limit "
                f"({limit} > {self.max_entries_limit})",
                hint="page through the range with smaller limits",
            )

    def _in_range(self, start: Any, end: Any) -> Iterator[_Stream]:
        start_ns = to_ns(start) if start is not None else None
        end_ns = to_ns(end) if end is not None else None
        for stream in self._streams.values():
            if not len(stream.ts):
                continue
            if start_ns is not None and stream.ts[-1] < start_ns:
                continue
            if end_ns is not None and stream.ts[0] >= end_ns:
                continue
            if start_ns is not None and end_ns is not None:
                lo = np.searchsorted(stream.ts, start_ns, side="left")
                hi = np.searchsorted(stream.ts, end_ns, side="left")
                if hi <= lo:
                    continue
            yield stream

    def labels(self, start: Any = None, end: Any = None) -> list[str]:
        """Label names of streams with entries in ``[start, end)`` (all when None)."""
        names = {name for stream in self._in_range(start, end) for name in stream.labels}
        return sorted(names)

    def label_values(self, name: str, start: Any = None, end: Any = None) -> list[str]:
        """Values of label ``name`` over streams with entries in the range."""
        values = {s.labels[name] for s in self._in_range(start, end) if name in s.labels}
        return sorted(values)

    def series(
        self, match: Sequence[str] | str, start: Any = None, end: Any = None
    ) -> list[dict[str, str]]:
        """Label sets of streams matching any of the selectors in ``match``."""
        selectors = [match] if isinstance(match, str) else list(match)
        groups = [_selector_matchers(text) for text in selectors]
        out = []
        for stream in self._in_range(start, end):
            labels = stream.labels
            if any(all(m.matches(labels.get(m.name, "")) for m in group) for group in groups):
                out.append(dict(stream.key))
        return sorted(out, key=lambda d: tuple(sorted(d.items())))

    def stats(self, query: str, start: Any, end: Any) -> dict[str, int]:
        """Like ``/index/stats``: streams, chunks, entries and bytes the selectors touch.

        Chunks are counted as one per stream with data in the range (exported logs carry
        no chunk boundaries).
        """
        groups = _query_matchers(parse(query))
        start_ns, end_ns = to_ns(start), to_ns(end)
        streams = entries = size = 0
        for stream in self._streams.values():
            labels = stream.labels
            if not any(all(m.matches(labels.get(m.name, "")) for m in g) for g in groups):
                continue
            lo = int(np.searchsorted(stream.ts, start_ns, side="left"))
            hi = int(np.searchsorted(stream.ts, end_ns, side="left"))
            if hi <= lo:
                continue
            streams += 1
            entries += hi - lo
            if stream.raw is not None:
                size += int(stream.raw.nbytes(lo, hi).sum())
            else:
                size += sum(len(line.encode("utf-8")) for line in stream.lines[lo:hi])
        return {"streams": streams, "chunks": streams, "entries": entries, "bytes": size}

    @property
    def entry_count(self) -> int:
        """Number of stored entries across all streams."""
        return sum(len(s.ts) for s in self._streams.values())


_NON_SPACE = re.compile(rb"[^ \t\r\n]")


_NOT_BLANK = re.compile(rb"[^ \t\n\r\x0b\x0c]")


def _map_file(path: Path) -> Any:
    """The file's bytes as a read-only memory map (``b""`` when empty)."""
    with path.open("rb") as handle:
        try:
            if os.fstat(handle.fileno()).st_size == 0:
                return handle.read()  # empty, or a pipe / special file that reports 0
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # not mappable: read it
            return handle.read()


def _whole_document(data: Any) -> Any:
    """``orjson.loads(data)``, or None when the file is not one JSON document.

    A first line that is a complete JSON value followed by more content means JSONL: the
    whole-file parse would fail anyway, so it is not attempted (it costs a full pass).
    """
    newline = data.find(b"\n")
    if newline >= 0 and _NON_SPACE.search(data, newline):
        try:
            orjson.loads(data[:newline])
            return None
        except orjson.JSONDecodeError:
            pass
    try:
        return orjson.loads(memoryview(data))
    except orjson.JSONDecodeError:
        return None


def _string_map(value: Any, what: str, where: str) -> Meta:
    """A JSON object of strings (structured metadata, parsed labels), else a clear error."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(
            f"{where}: {what} must be an object of strings, found {_shown(value)}",
            hint='structured metadata looks like {"trace_id": "abc"}',
        )
    if "" in value.values():
        return {str(k): v for k, v in value.items() if v != ""}
    return value  # parsed JSON: keys are strings already


def _shown(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _stream_value(value: Any, where: str) -> tuple[int, str, Meta, Meta]:
    """``[ts, line]``, ``[ts, line, {metadata}]`` or the categorized
    ``[ts, line, {"structuredMetadata": {...}, "parsed": {...}}]`` of a push/query value.

    Returns (ts_ns, line, structured metadata, parsed labels); any other shape is an error
    naming the stream and value (nothing is dropped).
    """
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise ConfigError(
            f"{where}: a value must be [ts, line] or [ts, line, {{metadata}}], "
            f"found {_shown(value)}",
            hint="export with Loki's push or query_range JSON",
        )
    ts = _entry_ts(value[0], where)
    if not isinstance(value[1], str):
        raise ConfigError(f"{where}: the log line must be a string, found {_shown(value[1])}")
    if len(value) == 2:
        return ts, value[1], _NO_META, _NO_META
    extra = value[2]
    if _is_categorized(extra):
        meta = _string_map(extra.get("structuredMetadata", {}), "structuredMetadata", where)
        parsed = _string_map(extra.get("parsed", {}), "parsed", where)
        return ts, value[1], meta, parsed
    return ts, value[1], _string_map(extra, "structured metadata", where), _NO_META


def _is_categorized(extra: Any) -> bool:
    """``{"structuredMetadata": {...}, "parsed": {...}}`` (either part may be absent)."""
    return (
        isinstance(extra, dict)
        and bool(extra)
        and extra.keys() <= {"structuredMetadata", "parsed"}
        and all(isinstance(v, dict) for v in extra.values())
    )


def _entry_ts(raw: Any, where: str) -> int:
    """Epoch ns of a push/query value's timestamp (a string of digits, as Loki sends)."""
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return _checked_ns(int(raw), where)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return _checked_ns(raw, where)
    raise ConfigError(
        f"{where}: invalid timestamp {_shown(raw)}",
        hint='timestamps are nanoseconds since the epoch as a string, e.g. "1700000000000000000"',
    )


def _checked_ns(value: int, where: str) -> int:
    if not -(2**63) <= value < 2**63:
        raise ConfigError(f"{where}: timestamp {value} is out of range (int64 nanoseconds)")
    return value


def _numbered(data: bytes) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.strip():
            yield number, line


def _clean_labels(labels: Any, path: Path) -> dict[str, str]:
    if not isinstance(labels, dict):
        raise ConfigError(f"{path}: labels must be a JSON object")
    return {str(k): str(v) for k, v in labels.items() if v is not None and str(v) != ""}


def _record_extras(
    records: list[Any], labels_list: list[Any], numbers: list[int], path: Path
) -> list[Meta] | None:
    """Structured metadata of each JSONL record (None when no record has any).

    ``parsed`` labels (a categorized query export) join the record's labels, as Loki's
    uncategorized answer shows them. A field the loader does not know, or metadata that is
    not an object of strings, is an error naming the file and line.
    """
    metas: list[Meta] | None = None
    known = _RECORD_KEYS
    for index, record in enumerate(records):
        if len(record) <= 3:
            if not record.keys() <= known:
                _unknown_fields(record, path, numbers[index])
            continue
        if not record.keys() <= known:
            _unknown_fields(record, path, numbers[index])
        if "parsed" in record:
            parsed = _string_map(record["parsed"], "parsed", f"{path}:{numbers[index]}")
            labels_list[index] = {**labels_list[index], **parsed}
        if "structuredMetadata" in record:
            meta = record["structuredMetadata"]
            if not _plain_strings(meta):
                where = f"{path}:{numbers[index]}"
                meta = _string_map(meta, "structuredMetadata", where)
            if meta:
                if metas is None:
                    metas = [_NO_META] * len(records)
                metas[index] = meta
    return metas


def _plain_strings(value: Any) -> bool:
    """A dict of non-empty strings, usable as metadata as it is."""
    return (
        type(value) is dict
        and all(type(v) is str for v in value.values())
        and "" not in value.values()
    )


def _unknown_fields(record: dict[str, Any], path: Path, number: int) -> None:
    unknown = sorted(set(record) - _RECORD_KEYS)
    raise ConfigError(
        f"{path}:{number}: unknown field(s) {', '.join(map(repr, unknown))} in a log record",
        hint="records hold labels, line, timestamp (or ts) and optionally structuredMetadata",
    )


def _timestamps(stamps: list[Any], path: Path, numbers: list[int] | None = None) -> np.ndarray:
    if not stamps:
        return np.empty(0, dtype=np.int64)
    first = stamps[0]
    if isinstance(first, str) and first.endswith("Z") and "T" in first:
        try:
            if all(isinstance(s, str) and s.endswith("Z") for s in stamps):
                arr = np.array([s[:-1] for s in stamps], dtype="datetime64[ns]")
                return arr.astype(np.int64)
        except ValueError:
            pass
    if isinstance(first, str) and "T" in first:
        try:
            import pandas as pd

            parsed = pd.to_datetime(pd.Series(stamps), utc=True, format="ISO8601")
            return parsed.astype("int64").to_numpy()
        except (ValueError, TypeError):
            pass
    out = np.empty(len(stamps), dtype=np.int64)
    for index, stamp in enumerate(stamps):
        number = numbers[index] if numbers is not None else index + 1
        try:
            value = to_ns(stamp)
            if not -(2**63) <= value < 2**63:
                raise OverflowError
            out[index] = value
        except (ConfigError, ValueError, OverflowError, TypeError) as exc:
            detail = exc.message if isinstance(exc, ConfigError) else str(exc) or "out of range"
            raise ConfigError(
                f"{path}:{number}: invalid timestamp {_shown(stamp)} ({detail})",
                hint='use RFC3339 ("2026-11-28T06:00:00Z") or nanoseconds since the epoch',
            ) from None
    return out


def _as_list(lines: list[str] | RawLines) -> list[str]:
    return lines if isinstance(lines, list) else lines.tolist()


def _take(lines: list[str] | RawLines, positions: np.ndarray) -> list[str] | RawLines:
    if isinstance(lines, RawLines):
        return lines.take(positions)
    return [lines[i] for i in positions.tolist()]


def _line_getter(lines: list[str] | RawLines) -> Any:
    return lines.__getitem__ if isinstance(lines, list) else lines.line


def _join_meta(parts: list[list[Meta] | None], sizes: list[int]) -> list[Meta] | None:
    """Structured metadata of concatenated parts (None when no part carries any)."""
    if all(part is None for part in parts):
        return None
    out: list[Meta] = []
    for part, size in zip(parts, sizes, strict=True):
        out.extend(part if part is not None else [_NO_META] * size)
    return out


def _dedupe(
    ts: np.ndarray, lines: list[str] | RawLines, meta: list[Meta] | None = None
) -> np.ndarray | None:
    """Positions to keep when entries repeat (same timestamp, line and metadata), else None.

    Within a run of equal timestamps the first of identical entries is kept.
    """
    if len(ts) < 2:
        return None
    same = np.flatnonzero(ts[1:] == ts[:-1])
    if not len(same):
        return None
    line_at = _line_getter(lines)
    drop: set[int] = set()
    idx = 0
    positions = (same + 1).tolist()
    # walk runs of equal timestamps and keep the first of identical lines
    while idx < len(positions):
        pos = positions[idx]
        start = pos - 1
        end = pos
        while idx < len(positions) and positions[idx] == end:
            end += 1
            idx += 1
        seen: set[Any] = set()
        for i in range(start, end):
            line = line_at(i)
            if meta is not None:
                line = (line, tuple(sorted(meta[i].items())))
            if line in seen:
                drop.add(i)
            seen.add(line)
    if not drop:
        return None
    mask = np.ones(len(ts), dtype=bool)
    mask[sorted(drop)] = False
    return np.flatnonzero(mask)


def _selector_matchers(text: str) -> tuple[ast.Matcher, ...]:
    expr = parse(text)
    if not isinstance(expr, ast.LogSelector) or expr.stages:
        raise ConfigError(f'series match must be a stream selector like {{app="x"}}: {text}')
    return expr.matchers


def _query_matchers(expr: ast.Expr) -> list[tuple[ast.Matcher, ...]]:
    if isinstance(expr, ast.LogSelector):
        return [expr.matchers]
    if isinstance(expr, ast.RangeAgg):
        return [expr.range.selector.matchers]
    if isinstance(expr, ast.VectorAgg | ast.LabelReplace):
        return _query_matchers(expr.expr)
    if isinstance(expr, ast.BinOp):
        return _query_matchers(expr.lhs) + _query_matchers(expr.rhs)
    return []


# ----------------------------------------------------------------------------- columnar loading


def _read_logcli_table(data: Any) -> tuple[Any, np.ndarray] | None:
    """(pyarrow table, byte offset where each record starts) of a logcli JSONL file, or
    None when the file is not plainly that shape.

    Each record must sit on its own line (see :func:`_line_starts`) with exactly the
    ``labels``, ``line`` and ``timestamp`` fields, none missing, and optionally
    ``structuredMetadata``; anything else (blank lines, ``ts`` records, numbers where
    strings belong, unknown fields, invalid JSON) is left to the general loader, which
    also owns the error messages.
    """
    try:
        import pyarrow as pa
        import pyarrow.json as pj
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return None
    starts = _line_starts(data)
    if starts is None:
        return None
    fields = [("timestamp", pa.string()), ("line", pa.string())]
    first = _first_labels(data)
    if first:  # declaring the label struct spares pyarrow inferring it (half the time)
        fields.append(("labels", pa.struct([(name, pa.string()) for name in first])))
    schema = pa.schema(fields)
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    block = max(1 << 20, min(16 << 20, len(data) // 8))  # large blocks: less overhead
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            parse_options=options,
            read_options=pj.ReadOptions(block_size=block),
        )
    except (pa.ArrowException, UnicodeError, ValueError):
        return None
    names = set(table.column_names)
    if table.num_rows != len(starts) or not (
        {"labels", "line", "timestamp"} <= names <= _COLUMNAR_FIELDS
    ):
        return None
    if any(table.column(name).null_count for name in ("labels", "line", "timestamp")):
        return None
    if not pa.types.is_struct(table.column("labels").type):
        return None
    return table, starts


_COLUMNAR_FIELDS = frozenset({"labels", "line", "timestamp", "structuredMetadata"})
# a member whose value is null: a quote no backslash escapes (inside a JSON string every
# quote is escaped), then ``: null``
_NULL_MEMBER = r'(?:^|[^\\])(?:\\\\)*"[ \t\r]*:[ \t\r]*null'


def _first_labels(data: Any) -> list[str]:
    """Label names of the first record when they all hold strings (else [])."""
    newline = data.find(b"\n")
    try:
        record = orjson.loads(data[:newline] if newline >= 0 else data)
    except orjson.JSONDecodeError:
        return []
    labels = record.get("labels") if isinstance(record, dict) else None
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        return []
    return list(labels)


def _line_starts(data: Any) -> np.ndarray | None:
    """Byte offset of every line, or None unless every line starts with ``{`` and ends
    with ``}`` (a ``\\r`` before the newline allowed).

    A JSON value cannot hold a raw newline inside a string (the reader refuses control
    characters there), and ``}`` then ``{`` is valid JSON only between two top-level
    objects: so with that shape each line holds whole records, and "as many rows as
    lines" proves one record per line (blank lines fail too). One vectorised pass over
    the bytes.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    size = len(buf)
    if not size or buf[0] != ord("{"):
        return None
    chunk = 1 << 25
    parts = [np.flatnonzero(buf[lo : lo + chunk] == ord("\n")) + lo for lo in range(0, size, chunk)]
    newlines = np.concatenate(parts) if len(parts) > 1 else parts[0]
    ends = newlines
    if not len(newlines) or newlines[-1] != size - 1:
        ends = np.append(newlines, size)  # the last line has no newline
    last = buf[ends - 1]
    if len(ends) and not (last == ord("}")).all():
        crlf = ends[last == ord("\r")]
        if len(crlf) + int((last == ord("}")).sum()) != len(ends):
            return None
        if (crlf < 2).any() or not (buf[crlf - 2] == ord("}")).all():
            return None
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    if not (buf[starts] == ord("{")).all():
        return None
    return starts


def _arrow_metas(column: Any, data: Any, starts: np.ndarray) -> list[Meta] | None:
    """Structured metadata of each record from pyarrow's ``structuredMetadata`` column.

    None (the general loader decides, and names the record at fault) unless every value
    is an object of strings. A null the reader shows is either an absent field or a JSON
    ``null`` (an error): records with such a null and a member whose value is ``null``
    go to the general loader too. Records with the same metadata share one dict.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    n = len(column)
    if not (pa.types.is_struct(column.type) or pa.types.is_null(column.type)):
        return None
    valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    unclear = ~valid
    children: list[tuple[str, Any]] = []
    for i in range(column.type.num_fields):
        child, values = column.type.field(i), column.field(i)
        if not (pa.types.is_string(child.type) or pa.types.is_null(child.type)):
            return None
        unclear |= valid & np.asarray(values.is_null().to_numpy(zero_copy_only=False), bool)
        if pa.types.is_string(child.type):
            children.append((child.name, values))
    if unclear.any():
        offsets = pa.py_buffer(np.append(starts, len(data)).astype(np.int64).tobytes())
        records = pa.Array.from_buffers(pa.large_binary(), n, [None, offsets, pa.py_buffer(data)])
        has_null = pc.match_substring_regex(records.filter(pa.array(unclear)), _NULL_MEMBER)
        if pc.any(has_null).as_py():
            return None
    if not children:
        return [_NO_META] * n
    codes = np.zeros(n, dtype=np.int64)
    parts: list[tuple[str, list[str | None], np.ndarray]] = []
    for name, values in children:
        encoded = pc.dictionary_encode(values)
        words = [None] + [w or None for w in encoded.dictionary.to_pylist()]  # "": absent
        sub = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + 1
        codes = pd.factorize(codes * len(words) + sub)[0].astype(np.int64)
        parts.append((name, words, sub))
    first = _first_rows(codes)
    distinct = np.empty(len(first), dtype=object)
    for code, row in enumerate(first.tolist()):
        meta = {name: word for name, words, sub in parts if (word := words[sub[row]]) is not None}
        distinct[code] = meta or _NO_META
    out = distinct[codes]
    out[~valid] = _NO_META
    return out.tolist()  # type: ignore[no-any-return]


def _stream_codes(labels_col: Any) -> tuple[np.ndarray | None, list[dict[str, str]]]:
    """Stream number of every row (in order of first appearance) and each stream's labels.

    Null and empty label values count as absent, like :func:`_clean_labels`; the order
    the labels were written in does not matter. ``(None, [])`` when a value is not a string.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    codes = np.zeros(len(labels_col), dtype=np.int64)
    fields: list[tuple[str, list[str | None], np.ndarray]] = []
    for i in range(labels_col.type.num_fields):
        field = labels_col.type.field(i)
        if pa.types.is_null(field.type):
            continue
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            return None, []
        encoded = pc.dictionary_encode(labels_col.field(i))
        words: list[str | None] = [None, *encoded.dictionary.to_pylist()]
        remap = np.array([0] + [0 if w == "" else j for j, w in enumerate(words) if j], np.int64)
        child = remap[encoded.indices.fill_null(-1).to_numpy().astype(np.int64) + 1]
        codes = pd.factorize(codes * len(words) + child)[0].astype(np.int64)
        fields.append((field.name, words, child))
    stream_of = codes  # factorized: numbered in order of first appearance
    label_sets = []
    for row in _first_rows(stream_of).tolist():
        labels = {}
        for name, words, child in fields:
            word = words[int(child[row])]
            if word is not None:
                labels[name] = word
        label_sets.append(labels)
    return stream_of, label_sets


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """Row of each code's first appearance, for codes numbered in order of appearance."""
    if not len(codes):
        return np.empty(0, dtype=np.int64)
    running = np.maximum.accumulate(codes)
    return np.flatnonzero(np.diff(running, prepend=-1) > 0)


def _arrow_timestamps(column: Any, path: Path) -> np.ndarray:
    """Epoch ns of RFC3339 strings, parsed by numpy straight from pyarrow's buffer.

    Same parser and same fallbacks as :func:`_timestamps` (numpy when every stamp ends in
    ``Z``, then pandas, then :func:`to_ns`), without a Python string per row.
    """
    import pandas as pd
    import pyarrow.compute as pc

    n = len(column)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    first = column[0].as_py()
    if "T" in first and first.endswith("Z"):
        lengths = pc.binary_length(column).to_numpy()
        out = np.empty(n, dtype=np.int64)
        try:
            for width in sorted(pd.unique(lengths).tolist()):
                rows = np.flatnonzero(lengths == width)
                part = column.take(rows) if len(rows) != n else column
                if not _parse_fixed_width(part, int(width), out, rows):
                    break
            else:
                return out
        except ValueError:
            pass
    return _timestamps(column.to_pylist(), path)


def _parse_fixed_width(part: Any, width: int, out: np.ndarray, rows: np.ndarray) -> bool:
    """Parse equal-width stamps ending in ``Z`` into ``out[rows]``; False if one does not."""
    if width < 2:
        return False
    _validity, offsets_buf, data_buf = part.buffers()
    start = int(np.frombuffer(offsets_buf, dtype=np.int32)[part.offset])
    raw = np.frombuffer(data_buf, dtype=np.uint8)[start : start + width * len(part)]
    grid = raw.reshape(len(part), width)
    if not (grid[:, -1] == ord("Z")).all():
        return False
    stamps = np.ndarray(
        shape=(len(part),), dtype=f"S{width - 1}", buffer=raw.data, strides=(width,)
    )
    out[rows] = stamps.astype("datetime64[ns]").astype(np.int64)
    return True
