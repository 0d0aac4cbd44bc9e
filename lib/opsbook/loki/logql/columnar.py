"""Columnar extraction for the common metric pipeline shape.

``{selector} |= "x" | json | status >= 500 | unwrap latency_ms | __error__="" [5m]``
grouped ``by`` some labels is what dashboards and alert rules run over and over. The
general path pushes every entry through the compiled stages one at a time (a labels dict
per entry); here a stream's entries go through a stage at a time instead:

- line filters are evaluated once per line;
- the one parser stage (``json``, ``logfmt``, ``regexp``, ``pattern``) extracts only the
  labels the query reads (its parser hints), and they are cached on the stream by line
  position, so a repeated query (an alert backtest) parses nothing. ``| json``: a stream
  whose lines are all plain JSON objects is parsed by pyarrow's JSON reader in one call
  (the first query of a stream reads only the keys it wants, when no other key could set
  those labels: :func:`_narrow_table`), other streams line by line with orjson. ``logfmt``, ``regexp`` and ``pattern`` run as
  pyarrow RE2 kernels over the whole slice (``extract_regex``); the lines those cannot
  answer exactly (for logfmt: quotes, odd pairs, keys to sanitise, a wanted key written
  twice; for pattern: lines it does not fully match) go through the stage itself;
- label filters, ``unwrap`` conversions and comparisons run once per *distinct* value and
  are broadcast with numpy; labels compared only as numbers (``status >= 500``,
  ``unwrap latency_ms``) stay float64 arrays; ``__error__`` / ``__error_details__`` are
  columns set exactly where the per-entry path would set them;
- samples are grouped into series with integer codes;
- streams go through a plan on a few threads at once (:func:`run_streams`).

Results are identical to the per-entry path (same samples, same order, same errors);
whatever this module does not cover (other stages, odd JSON, a label named
``__error__`` on the stream) goes to the general path. This module uses only the public
interface of :mod:`opsbook.loki.logql.pipeline` (``parser_stage``, ``hinted_json_stage``,
``COMPARISONS``, ``label_filter_error``...), and ``tests/loki/test_logql_columnar.py``
runs one conformance table through both paths. ``FAST_PATH = False`` turns the
module off, ``ARROW_JSON = False`` its pyarrow parsing and ``NARROW_JSON = False`` the
narrow reading (the equivalence tests compare all of them).
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from opsbook.loki.logql import ast
from opsbook.loki.logql.pipeline import (
    COMPARISONS,
    ERROR,
    ERROR_DETAILS,
    JSON_ERR,
    LABEL_FILTER_ERR,
    LOGFMT_ERR,
    PARSER_STAGES,
    SAMPLE_ERR,
    Entry,
    Hints,
    compile_ip_matcher,
    compile_pattern,
    hinted_json_stage,
    label_filter_error,
    line_filter_predicate,
    parse_json_object,
    parser_stage,
    repeats_keys,
    sanitize_key,
)
from opsbook.loki.logql.regex import compile_re2
from opsbook.loki.logql.units import go_duration_ns, parse_bytes, parse_float

FAST_PATH = True
ARROW_JSON = True
NARROW_JSON = True  # pyarrow reads only the wanted keys (first table of a stream)
THREADS = min(4, os.cpu_count() or 1)  # streams parsed at once (1: one after the other)
PARALLEL_LINES = 50_000  # fewer lines in all: one thread (starting threads costs more)
MAX_CACHED_SHAPES = 8  # label sets cached per stream (each ~8-16 bytes a line a label)

LabelsKey = tuple[tuple[str, str], ...]
SeriesPart = tuple[LabelsKey, np.ndarray, np.ndarray]
_NOT_OBJECT = "Value looks like object, but can't find closing '}' symbol"


@dataclass(frozen=True)
class ColumnarPlan:
    """A range aggregation's log pipeline, checked to be within what this module covers.

    ``floats`` are the labels used only by ``>``-style number filters and a plain
    ``unwrap``: for those, Go's ``ParseFloat`` of the text ``| json`` would set equals the
    JSON number itself, so numbers never become text.
    """

    stages: tuple[ast.Stage, ...]
    hints: Hints | None  # the labels the query reads (when it has a parser stage)
    group: tuple[str, ...]  # sorted, distinct
    unwrap: ast.Unwrap | None
    by_bytes: bool
    floats: frozenset[str] = frozenset()
    unwrap_convert: Callable[[str], float | None] | None = field(default=None, compare=False)
    unwrap_error: Callable[[str], str] | None = field(default=None, compare=False)

    def run(self, stream: Any) -> list[SeriesPart] | None:
        """Samples of one stream grouped into series, or None to use the general path."""
        base: dict[str, str] = stream.labels
        if ERROR in base or ERROR_DETAILS in base:
            return None
        metas = getattr(stream, "meta", None)
        if metas is not None and any(ERROR in m or ERROR_DETAILS in m for m in metas):
            return None  # metadata posing as an error label: the general path decides
        return _StreamState(self, stream).execute()


def run_streams(plan: ColumnarPlan, streams: Sequence[Any]) -> list[list[SeriesPart] | None]:
    """``plan.run`` of each stream, in order (None: that stream takes the general path).

    With several streams and enough lines, streams run on ``THREADS`` threads: the
    parsing (pyarrow's JSON reader and RE2 kernels) releases the GIL, and each stream
    has its own cache, so they do not share state being written.
    """
    workers = min(THREADS, len(streams))
    if workers < 2 or sum(len(stream.ts) for stream in streams) < PARALLEL_LINES:
        return [plan.run(stream) for stream in streams]
    with ThreadPoolExecutor(workers, thread_name_prefix="logql") as pool:
        return list(pool.map(plan.run, streams))


def plan_for(
    node: ast.RangeAgg,
    group_by: tuple[str, ...] | None,
    hints: Hints | None,
    converter: Callable[[str], float | None] | None,
    unwrap_error: Callable[[str], str] | None,
) -> ColumnarPlan | None:
    """A plan when ``node``'s pipeline is within reach of this module, else None."""
    if not FAST_PATH or group_by is None:
        return None
    stages = node.range.selector.stages
    parsers = [s for s in stages if isinstance(s, PARSER_STAGES)]
    if len(parsers) > 1 or (parsers and (hints is None or _has_exprs(parsers[0]))):
        return None
    for stage in stages:
        if not isinstance(stage, (ast.LineFilterStage, ast.LabelFilterStage, *PARSER_STAGES)):
            return None
    unwrap = node.range.unwrap
    filters = [s.filter for s in stages if isinstance(s, ast.LabelFilterStage)]
    filters += list(unwrap.post_filters) if unwrap else []
    as_float: set[str] = set()
    as_text: set[str] = set()
    for flt in filters:
        _number_uses(flt, as_float, as_text)
    if unwrap is not None:
        (as_float if unwrap.conv == "" else as_text).add(unwrap.label)
    use_hints = hints if parsers else None
    floats = frozenset(as_float - as_text) & (use_hints.numeric if use_hints else frozenset())
    return ColumnarPlan(
        stages=stages,
        hints=use_hints,
        group=tuple(sorted(set(group_by))),
        unwrap=unwrap,
        by_bytes=node.op in ("bytes_over_time", "bytes_rate"),
        floats=floats,
        unwrap_convert=converter,
        unwrap_error=unwrap_error,
    )


def _has_exprs(stage: ast.Stage) -> bool:
    return bool(getattr(stage, "exprs", ()))


def _number_uses(flt: ast.LabelFilter, as_float: set[str], as_text: set[str]) -> None:
    if isinstance(flt, ast.LFAnd | ast.LFOr):
        _number_uses(flt.left, as_float, as_text)
        _number_uses(flt.right, as_float, as_text)
    elif isinstance(flt, ast.LFNumber):
        as_float.add(flt.name)
    elif isinstance(flt, ast.LFString):
        as_text.add(flt.matcher.name)
    else:
        as_text.add(flt.name)


class _StreamState:
    """State of one stream going through a plan: which entries are alive, set labels."""

    def __init__(self, plan: ColumnarPlan, stream: Any) -> None:
        self.plan = plan
        self.stream = stream
        self.base: dict[str, str] = stream.labels
        self.n = len(stream.ts)
        self.alive = np.ones(self.n, dtype=bool)
        # labels the pipeline set, per entry (None: not set, the stream's value shows);
        # ``nums`` holds the labels of ``plan.floats`` that | json set from JSON numbers
        self.cols: dict[str, np.ndarray] = {}
        self.nums: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.meta_cols(getattr(stream, "meta", None))

    def meta_cols(self, metas: list[dict[str, str]] | None) -> None:
        """Structured metadata as label columns, under the names the general path gives
        them (:func:`opsbook.loki.logql.pipeline.start_labels`); a parser writing the same
        name later overwrites them, as there."""
        if metas is None:
            return
        names = sorted({name for meta in metas for name in meta})
        for name in names:
            target = name + "_extracted" if name in self.base else name
            self.cols[target] = np.array([m.get(name) for m in metas], dtype=object)

    def meta_labels(self, row: int) -> dict[str, str]:
        """Structured metadata of one entry under its label names."""
        metas = getattr(self.stream, "meta", None)
        if metas is None:
            return {}
        return {
            (name + "_extracted" if name in self.base else name): value
            for name, value in metas[row].items()
        }

    # ------------------------------------------------------------------ label columns
    def col(self, name: str) -> np.ndarray:
        arr = self.cols.get(name)
        if arr is None:
            arr = self.cols[name] = np.full(self.n, None, dtype=object)
        return arr

    def values(self, name: str, rows: np.ndarray) -> np.ndarray:
        """``labels.get(name)`` of entries ``rows`` that hold no number (None: absent)."""
        base_value = self.base.get(name)
        arr = self.cols.get(name)
        if arr is None:
            return np.full(len(rows), base_value, dtype=object)
        out = arr[rows]
        if base_value is not None:
            out[pd.isna(out)] = base_value
        return out

    def numbers(self, name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values, has) of the JSON numbers ``| json`` set for ``name`` on ``rows``."""
        found = self.nums.get(name)
        if found is None:
            return np.zeros(len(rows)), np.zeros(len(rows), dtype=bool)
        if len(rows) == self.n:  # every entry (rows is then 0..n-1): no copy, read only
            return found[0], found[1]
        return found[0][rows], found[1][rows]

    def set_error(self, rows: np.ndarray, kind: str, details: np.ndarray | None) -> None:
        if not len(rows):
            return
        self.col(ERROR)[rows] = kind
        if details is not None:
            self.col(ERROR_DETAILS)[rows] = details

    def has_error(self, rows: np.ndarray) -> np.ndarray:
        """``ERROR in labels`` for entries ``rows``."""
        arr = self.cols.get(ERROR)
        if arr is None:
            return np.zeros(len(rows), dtype=bool)
        return ~pd.isna(arr[rows])

    # ------------------------------------------------------------------ stages
    def execute(self) -> list[SeriesPart] | None:
        plan = self.plan
        for stage in plan.stages:
            rows = np.flatnonzero(self.alive)
            if not len(rows):
                return []
            if isinstance(stage, ast.LineFilterStage):
                pred = line_filter_predicate(stage)
                lines = self.stream.lines
                keep = np.fromiter((pred(lines[i]) for i in rows.tolist()), bool, len(rows))
                self.alive[rows[~keep]] = False
            elif isinstance(stage, PARSER_STAGES):
                assert plan.hints is not None
                if not self.parse(stage, plan.hints, rows):
                    return None
            else:
                assert isinstance(stage, ast.LabelFilterStage)
                self.alive[rows] = self.label_filter(stage.filter, rows)
        rows = np.flatnonzero(self.alive)
        if plan.unwrap is not None:
            rows, values = self.unwrap(plan.unwrap, rows)
        elif plan.by_bytes:
            values = self.utf8_lengths(rows)
        else:
            values = np.ones(len(rows), dtype=np.float64)
        if not len(rows):
            return []
        return self.group(rows, values)

    def parse(self, stage: ast.Stage, hints: Hints, rows: np.ndarray) -> bool:
        """Labels the parser sets on ``rows`` (False: this stream needs the general path)."""
        if isinstance(stage, ast.JsonStage):
            view = _json_columns(self.stream, hints, self.plan.floats, rows)
        else:
            found = _text_columns(self.stream, stage, hints, self.plan.floats, rows)
            if found is None:
                return False
            view = found
        every = len(rows) == self.n
        for target, column in view.texts.items():
            if every and target not in self.cols and target not in (ERROR, ERROR_DETAILS):
                self.cols[target] = column  # shared with the cache: never written to
                continue
            found = rows[~pd.isna(column[rows])]
            if len(found):
                self.col(target)[found] = column[found]
        for target, (values, has) in view.nums.items():
            if every and target not in self.nums:
                self.nums[target] = (values, has)  # shared with the cache: read only
                continue
            found = rows[has[rows]]
            if len(found):
                current = self.nums.get(target)
                if current is None:
                    current = self.nums[target] = (
                        np.zeros(self.n, dtype=np.float64),
                        np.zeros(self.n, dtype=bool),
                    )
                current[0][found] = values[found]
                current[1][found] = True
        if view.errors is not None:
            failed = rows[~pd.isna(view.errors[rows])]
            self.set_error(failed, view.error_kind, view.errors[failed])
        return True

    def utf8_lengths(self, rows: np.ndarray) -> np.ndarray:
        lengths = getattr(self.stream, "utf8_lengths", lambda: None)()
        if lengths is not None:
            return np.asarray(lengths[rows], dtype=np.float64)
        lines = self.stream.lines
        return np.array([_utf8_len(lines[i]) for i in rows.tolist()], dtype=np.float64)

    # ------------------------------------------------------------------ label filters
    def label_filter(self, flt: ast.LabelFilter, rows: np.ndarray) -> np.ndarray:
        """The filter's verdict for entries ``rows`` (setting errors like the stage does)."""
        if isinstance(flt, ast.LFAnd):
            left = self.label_filter(flt.left, rows)
            right = self.label_filter(flt.right, rows)  # evaluated even when left failed
            return left & right
        if isinstance(flt, ast.LFOr):
            left = self.label_filter(flt.left, rows)
            out = left.copy()
            rest = ~left
            if rest.any():
                out[rest] = self.label_filter(flt.right, rows[rest])
            return out
        if isinstance(flt, ast.LFString):
            matcher = flt.matcher
            vals = self.values(matcher.name, rows)
            return _per_distinct(vals, lambda v: matcher.matches("" if v is None else v))
        if isinstance(flt, ast.LFIp):  # same rules as the pipeline's ip() label filter
            test = compile_ip_matcher(flt.pattern)
            equal = flt.op == "="
            verdict = _per_distinct(
                self.values(flt.name, rows), lambda v: v is not None and test(v) == equal
            )
            return verdict | self.has_error(rows)
        return self.converted_filter(flt, rows)

    def converted_filter(
        self, flt: ast.LFNumber | ast.LFDuration | ast.LFBytes, rows: np.ndarray
    ) -> np.ndarray:
        out = np.ones(len(rows), dtype=bool)  # entries with an error pass untouched
        todo = ~self.has_error(rows)
        if not todo.any():
            return out
        cmp = COMPARISONS[flt.op]
        target = float(flt.value)
        numbers, has = self.numbers(flt.name, rows[todo])
        result = np.zeros(int(todo.sum()), dtype=bool)
        if has.any():
            result[has] = _NP_CMP[flt.op](numbers[has], target)
        text = ~has
        if text.any():
            text_rows = rows[todo][text]
            vals = self.values(flt.name, text_rows)
            convert = _FILTER_CONVERTERS[type(flt)]
            codes, uniques = pd.factorize(vals, use_na_sentinel=True)
            converted = [convert(u) for u in uniques.tolist()]
            verdict = np.array(
                [c is not None and cmp(c, target) for c in converted] + [False], dtype=bool
            )
            failed = np.array([c is None for c in converted] + [False], dtype=bool)
            codes = np.where(codes < 0, len(uniques), codes)  # absent label: dropped
            sub = verdict[codes]
            bad = failed[codes]
            sub[bad] = True
            if bad.any():
                details = np.array(
                    [label_filter_error(flt, u) for u in uniques.tolist()] + [None], dtype=object
                )
                self.set_error(text_rows[bad], LABEL_FILTER_ERR, details[codes[bad]])
            result[text] = sub
        out[todo] = result
        return out

    # ------------------------------------------------------------------ unwrap
    def unwrap(self, unwrap: ast.Unwrap, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        numbers, has = self.numbers(unwrap.label, rows)
        if has.all():  # every value a number: nothing to convert or drop
            rows, values = rows, numbers.copy()  # (numbers may be the cache's own array)
        else:
            rows, values = self.unwrap_texts(unwrap, rows, numbers, has)
        for flt in unwrap.post_filters:
            if not len(rows):
                break
            passed = self.label_filter(flt, rows)
            rows, values = rows[passed], values[passed]
        return rows, values

    def unwrap_texts(
        self, unwrap: ast.Unwrap, rows: np.ndarray, numbers: np.ndarray, has: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and values of ``unwrap`` where some entries hold text (or nothing)."""
        convert = self.plan.unwrap_convert
        error_text = self.plan.unwrap_error
        assert convert is not None and error_text is not None
        keep = has.copy()
        values = np.where(has, numbers, 0.0)
        text_rows = rows[~has]
        if len(text_rows):
            vals = self.values(unwrap.label, text_rows)
            codes, uniques = pd.factorize(vals, use_na_sentinel=True)
            words = uniques.tolist()
            converted = [None if w == "" else convert(w) for w in words]
            present = np.array([w != "" for w in words] + [False], dtype=bool)
            failed = np.array(
                [w != "" and c is None for w, c in zip(words, converted, strict=True)] + [False],
                dtype=bool,
            )
            parsed = np.array([0.0 if c is None else c for c in converted] + [0.0], np.float64)
            codes = np.where(codes < 0, len(words), codes)
            keep[~has] = present[codes]
            values[~has] = parsed[codes]
            bad = failed[codes]
            if bad.any():
                details = np.array([error_text(w) for w in words] + [None], dtype=object)
                self.set_error(text_rows[bad], SAMPLE_ERR, details[codes[bad]])
        return rows[keep], values[keep]

    # ------------------------------------------------------------------ series
    def group(self, rows: np.ndarray, values: np.ndarray) -> list[SeriesPart]:
        error_col = self.cols.get(ERROR)
        if error_col is None:
            failed = np.zeros(len(rows), dtype=bool)
        else:
            errors = error_col[rows]
            failed = ~pd.isna(errors) & (errors != "")
        key_ids = np.zeros(len(rows), dtype=np.int64)
        keys: dict[LabelsKey, int] = {}
        ok = np.flatnonzero(~failed)
        if len(ok):
            codes = np.zeros(len(ok), dtype=np.int64)
            parts: dict[str, tuple[list[Any], np.ndarray]] = {}
            for name in self.plan.group:
                if name not in self.cols:  # the stream's own value (or none) on every entry
                    continue
                vals = self.values(name, rows[ok])
                sub, uniques = pd.factorize(vals, use_na_sentinel=True)
                words = [None, *uniques.tolist()]
                sub = sub.astype(np.int64) + 1
                codes = pd.factorize(codes * len(words) + sub)[0].astype(np.int64)
                parts[name] = (words, sub)
            # no label column to split on: one series, first seen on the first row
            first_rows = _first_rows(codes).tolist() if parts else [0]
            code_ids = np.zeros(len(first_rows), dtype=np.int64)
            for code, row in enumerate(first_rows):
                key = tuple(
                    (name, value)
                    for name in self.plan.group
                    if (
                        value := parts[name][0][parts[name][1][row]]
                        if name in parts
                        else self.base.get(name)
                    )
                )
                code_ids[code] = keys.setdefault(key, len(keys))
            key_ids[ok] = code_ids[codes]
        for i in np.flatnonzero(failed).tolist():
            key_ids[i] = keys.setdefault(self.full_key(int(rows[i])), len(keys))
        return self.split(rows, values, key_ids, keys)

    def full_key(self, row: int) -> LabelsKey:
        """Every label of one entry (errors keep them all), numbers as ``| json`` wrote them."""
        labels = dict(self.base)
        parser = next((s for s in self.plan.stages if isinstance(s, PARSER_STAGES)), None)
        if parser is not None and not isinstance(parser, ast.JsonStage):
            labels.update(self.meta_labels(row))
            # logfmt, regexp, pattern: not narrowed by hints, so every label the stage sets
            entry = Entry(0, self.stream.lines[row], {}, self.base)
            parser_stage(parser)(entry)
            labels.update(entry.labels)
            for name in (ERROR, ERROR_DETAILS):
                arr = self.cols.get(name)
                if arr is not None and arr[row] is not None:
                    labels[name] = arr[row]
            return tuple(sorted((k, v) for k, v in labels.items() if v != ""))
        for name, arr in self.cols.items():
            if arr[row] is not None:
                labels[name] = arr[row]
        numbers = [name for name, (_values, has) in self.nums.items() if has[row]]
        if numbers:  # their text: what the json stage itself writes for this line
            assert self.plan.hints is not None
            written = _reference_json(self.stream.lines[row], self.base, self.plan.hints)
            labels.update((name, written[name]) for name in numbers)
        return tuple(sorted((k, v) for k, v in labels.items() if v != ""))

    def split(
        self, rows: np.ndarray, values: np.ndarray, key_ids: np.ndarray, keys: dict[LabelsKey, int]
    ) -> list[SeriesPart]:
        ts = self.stream.ts[rows]
        by_id = list(keys)
        if len(by_id) == 1:
            return [(by_id[0], ts, values)]
        first = np.full(len(by_id), len(rows), dtype=np.int64)
        np.minimum.at(first, key_ids, np.arange(len(rows)))
        order = np.argsort(key_ids, kind="stable")
        bounds = np.searchsorted(key_ids[order], np.arange(len(by_id) + 1))
        out = []
        for kid in np.argsort(first, kind="stable").tolist():
            pick = order[bounds[kid] : bounds[kid + 1]]
            if len(pick):
                out.append((by_id[kid], ts[pick], values[pick]))
        return out


# ----------------------------------------------------------------------------- json


@dataclass
class _ParseView:
    """What a parser stage sets on each line of a slice (see :class:`_ParseCache`)."""

    texts: dict[str, np.ndarray]
    nums: dict[str, tuple[np.ndarray, np.ndarray]]
    errors: np.ndarray | None  # None: no line failed
    error_kind: str = JSON_ERR


@dataclass
class _ParseCache:
    """Labels a parser stage sets on a stream's lines for one set of hints (whole stream).

    ``texts[t][i]`` is the text of label ``t`` on line ``i`` (None: not set); for labels
    in ``floats`` a number is kept in ``nums[t]`` (values, has) instead (``| json``: a
    JSON number; other parsers: a text Go's ``ParseFloat`` reads); ``errors`` holds the
    ``__error_details__`` of lines the parser failed on (``error_kind``).
    """

    filled: np.ndarray
    texts: dict[str, np.ndarray]
    nums: dict[str, tuple[np.ndarray, np.ndarray]]
    errors: np.ndarray
    written: set[str] = field(default_factory=set)  # labels set on at least one line
    error_kind: str = JSON_ERR
    erred: bool = False  # some line failed (else ``errors`` is all None)

    @classmethod
    def empty(
        cls, size: int, names: frozenset[str], floats: frozenset[str], error_kind: str = JSON_ERR
    ) -> _ParseCache:
        return cls(
            np.zeros(size, dtype=bool),
            {name: np.full(size, None, dtype=object) for name in sorted(names)},
            {name: (np.zeros(size), np.zeros(size, dtype=bool)) for name in sorted(floats)},
            np.full(size, None, dtype=object),
            error_kind=error_kind,
        )

    def view(self, lo: int, hi: int) -> _ParseView:
        part = slice(lo, hi)
        return _ParseView(
            {name: col[part] for name, col in self.texts.items() if name in self.written},
            {name: (v[part], h[part]) for name, (v, h) in self.nums.items()},
            self.errors[part] if self.erred else None,
            self.error_kind,
        )


def _json_columns(
    stream: Any, hints: Hints, floats: frozenset[str], rows: np.ndarray
) -> _ParseView:
    """Labels ``| json`` sets on the slice's lines, parsing only what is not cached yet."""
    store = getattr(stream, "cache", None)
    offset = int(getattr(stream, "offset", 0)) if store is not None else 0
    n = len(stream.ts)
    floats = floats & hints.names
    key = ("json", hints.names, hints.numeric, floats)
    cache: _ParseCache | None = store.get(key) if store is not None else None
    if cache is None:
        size = len(stream.stream.ts) if store is not None else n
        cache = _ParseCache.empty(size, hints.names, floats)
        if store is not None:
            shapes = [k for k in store if k[0] in _PARSER_KEYS]
            for old in shapes[: max(0, len(shapes) + 1 - MAX_CACHED_SHAPES)]:
                del store[old]  # oldest first: rebuilt from the kept table when needed
            store[key] = cache
    todo = rows[~cache.filled[rows + offset]]
    if len(todo):
        done = False
        if ARROW_JSON and len(todo) > n // 2:
            done = _arrow_fill(cache, stream, offset, hints, floats)
        if not done:
            _orjson_fill(cache, stream.lines, todo, offset, stream.labels, hints, floats)
    return cache.view(offset, offset + n)


def _orjson_fill(
    cache: _ParseCache,
    lines: Sequence[str],
    todo: np.ndarray,
    offset: int,
    base: dict[str, str],
    hints: Hints,
    floats: frozenset[str],
) -> None:
    """Parse lines ``todo`` (slice positions) with orjson into the cache.

    Objects whose keys each give a different wanted label are read directly (nearly
    all); an object with a nested object that could flatten into a wanted label, keys
    colliding after sanitising, or a float whose exact digits are wanted goes through
    the json stage itself, and so does the error message of a line that is not an object.
    """
    names = hints.names
    exact = names - hints.numeric
    prefixes = tuple(n + "_" for n in names)
    reference = hinted_json_stage(hints)
    texts: dict[str, tuple[list[int], list[str]]] = {name: ([], []) for name in names}
    nums: dict[str, tuple[list[int], list[float]]] = {name: ([], []) for name in floats}
    errors = cache.errors
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    plans: dict[frozenset[str], _DirectPlan | None] = {}
    last_keys: frozenset[str] = frozenset(["\0"])
    plan: _DirectPlan | None = None
    for i in todo.tolist():
        line = lines[i]
        pos = i + offset
        try:
            obj = loads(line)
        except decode_error:
            obj = None
        if type(obj) is not dict:
            message = parse_json_object(line)
            errors[pos] = message if isinstance(message, str) else _NOT_OBJECT
            cache.erred = True
            continue
        keys = obj.keys()
        if keys != last_keys:
            last_keys = frozenset(keys)
            if last_keys not in plans:
                plans[last_keys] = _direct_plan(tuple(obj), base, names, exact, prefixes, floats)
            plan = plans[last_keys]
        if (
            plan is not None
            and not (plan.risky and _needs_stage(obj, plan.risky))
            and not repeats_keys(line, obj)  # a repeated key: the stage keeps the first
        ):
            for key, target, as_float in plan.entries:
                value = obj[key]
                kind = type(value)
                if kind is str:
                    text = value.replace("\ufffd", "") if "\ufffd" in value else value
                elif kind is float:
                    if as_float:
                        nums[target][0].append(pos)
                        nums[target][1].append(value)
                        continue
                    text = repr(value)
                elif kind is int:
                    if as_float:
                        nums[target][0].append(pos)
                        nums[target][1].append(_int_float(value))
                        continue
                    text = str(value)
                elif kind is bool:
                    text = "true" if value else "false"
                else:
                    continue
                texts[target][0].append(pos)
                texts[target][1].append(text)
            continue
        entry = Entry(0, line, {}, base)
        reference(entry)
        if ERROR in entry.labels:  # nested beyond what the stage can read
            errors[pos] = entry.labels.get(ERROR_DETAILS, "")
            cache.erred = True
            continue
        for name, text in entry.labels.items():
            texts[name][0].append(pos)
            texts[name][1].append(text)
    for name, (positions, words) in texts.items():
        if positions:
            cache.written.add(name)
            column = cache.texts[name]
            column[positions] = np.array(words, dtype=object)
            if name in cache.nums:  # a later text replaces an earlier number
                cache.nums[name][1][positions] = False
    for name, (positions, numbers) in nums.items():
        if positions:
            cache.nums[name][0][positions] = numbers
            cache.nums[name][1][positions] = True
    cache.filled[todo + offset] = True


def _needs_stage(obj: dict[str, Any], risky: tuple[tuple[str, tuple[type, ...]], ...]) -> bool:
    return any(type(obj[key]) in kinds for key, kinds in risky)


@dataclass(frozen=True)
class _DirectPlan:
    """How to read the wanted labels off objects with one set of keys.

    ``entries``: (key, label, keep-as-float); ``risky``: (key, types) whose value, when
    of one of those types, needs the json stage itself (a nested object that could
    flatten into a wanted label, a float whose exact digits are wanted).
    """

    entries: tuple[tuple[str, str, bool], ...]
    risky: tuple[tuple[str, tuple[type, ...]], ...]


def _direct_plan(
    keys: tuple[str, ...],
    base: dict[str, str],
    names: frozenset[str],
    exact: frozenset[str],
    prefixes: tuple[str, ...],
    floats: frozenset[str],
) -> _DirectPlan | None:
    """The plan for objects with ``keys``; None when two keys land on one label."""
    entries = []
    risky: list[tuple[str, tuple[type, ...]]] = []
    seen: set[str] = set()
    for key in keys:
        name = key if key.isascii() and key.isidentifier() else sanitize_key(key)
        kinds: tuple[type, ...] = ()
        if any(p.startswith(name + "_") for p in prefixes):
            kinds += (dict,)
        target = name + "_extracted" if name in base else name
        if target in names:
            if target in seen:
                return None
            seen.add(target)
            entries.append((key, target, target in floats))
            if target in exact:
                kinds += (float,)
        if kinds:
            risky.append((key, kinds))
    return _DirectPlan(tuple(entries), tuple(risky))


def _reference_json(line: str, base: dict[str, str], hints: Hints) -> dict[str, str]:
    """Labels the json stage itself sets on ``line`` (the exact texts)."""
    entry = Entry(0, line, {}, base)
    hinted_json_stage(hints)(entry)
    return entry.labels


def _int_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:  # Go's ParseFloat gives ±Inf for out-of-range digits
        return math.inf if value > 0 else -math.inf


# ----------------------------------------------------------------------------- logfmt, regexp, pattern

_PARSER_KEYS = frozenset({"json", "logfmt", "regexp", "pattern"})
_WS = "\\t\\n\\v\\f\\r "  # what Loki's logfmt scanner skips between pairs (ASCII lines)
# The lines the vectorised logfmt reading covers: ASCII, whitespace-separated pairs whose
# key is already a label name (no sanitising, so no two keys share a label) and whose
# value is bare or quoted without escapes. Any other line (a control character, an escape,
# a stray quote or ``=``, a key to sanitise...) is read by the stage itself, and so is a
# line where a wanted key is written twice (which one wins is the stage's business) or
# appears inside a quoted value.
_LOGFMT_PAIR = rf'[A-Za-z_][A-Za-z0-9_]*(?:=(?:"[^"\\]*"|[^{_WS}"=]*))?'
_LOGFMT_PLAIN = rf"^[{_WS}]*(?:{_LOGFMT_PAIR}(?:[{_WS}]+{_LOGFMT_PAIR})*)?[{_WS}]*$"
_LOGFMT_CONTROL = r"[\x00-\x08\x0e-\x1f]"


def _text_targets(
    stage: ast.Stage, base: dict[str, str], names: frozenset[str]
) -> dict[str, str] | None:
    """Wanted label → the logfmt key or capture name that sets it on this stream.

    None when that is ambiguous for logfmt (a wanted ``x_extracted`` where ``x`` is a
    stream label: both keys ``x`` and ``x_extracted`` would set it).
    """
    if isinstance(stage, ast.LogfmtStage):
        targets = {}
        for name in names:
            if name.endswith("_extracted") and name[: -len("_extracted")] in base:
                return None
            if name not in base:
                targets[name] = name
        return targets
    if isinstance(stage, ast.RegexpStage):
        captures = list(compile_re2(stage.pattern).groupindex)
    else:
        assert isinstance(stage, ast.PatternStage)
        captures = [text for kind, text in compile_pattern(stage.pattern) if kind == "cap"]
    out = {}
    for capture in captures:
        target = capture + "_extracted" if capture in base else capture
        if target in names and capture != "_":
            out[target] = capture
    return out


def _text_columns(
    stream: Any, stage: ast.Stage, hints: Hints, floats: frozenset[str], rows: np.ndarray
) -> _ParseView | None:
    """Labels a logfmt, regexp or pattern stage sets on the slice's lines (cached per stream).

    None when the stream needs the general path (see :func:`_text_targets`).
    """
    targets = _text_targets(stage, stream.labels, hints.names)
    if targets is None:
        return None
    store = getattr(stream, "cache", None)
    offset = int(getattr(stream, "offset", 0)) if store is not None else 0
    n = len(stream.ts)
    floats = floats & frozenset(targets)
    kind = type(stage).__name__.removesuffix("Stage").lower()
    key = (kind, stage, hints.names, floats)
    cache: _ParseCache | None = store.get(key) if store is not None else None
    if cache is None:
        size = len(stream.stream.ts) if store is not None else n
        cache = _ParseCache.empty(size, frozenset(targets), floats, LOGFMT_ERR)
        if store is not None:
            shapes = [k for k in store if k[0] in _PARSER_KEYS]
            for old in shapes[: max(0, len(shapes) + 1 - MAX_CACHED_SHAPES)]:
                del store[old]
            store[key] = cache
    todo = rows[~cache.filled[rows + offset]]
    if len(todo):
        done = len(todo) > n // 2 and _vector_fill(cache, stream, offset, stage, targets, floats)
        if not done:
            _stage_fill(cache, stream.lines, todo, offset, stream.labels, stage, targets)
    return cache.view(offset, offset + n)


def _stage_fill(
    cache: _ParseCache,
    lines: Sequence[str],
    todo: np.ndarray,
    offset: int,
    base: dict[str, str],
    stage: ast.Stage,
    targets: dict[str, str],
) -> None:
    """Run the stage itself on lines ``todo`` (slice positions) and keep what it sets."""
    run = parser_stage(stage)
    texts: dict[str, tuple[list[int], list[str]]] = {t: ([], []) for t in targets}
    for i in todo.tolist():
        entry = Entry(0, lines[i], {}, base)
        run(entry)
        labels = entry.labels
        pos = i + offset
        for target, (positions, words) in texts.items():
            value = labels.get(target)
            if value is not None:
                positions.append(pos)
                words.append(value)
        if ERROR in labels:
            cache.errors[pos] = labels.get(ERROR_DETAILS, "")
            cache.erred = True
    for target, (positions, words) in texts.items():
        if positions:
            _store_texts(cache, target, np.array(positions), np.array(words, dtype=object))
    cache.filled[todo + offset] = True


def _store_texts(cache: _ParseCache, target: str, positions: Any, words: np.ndarray) -> None:
    """Write label texts at ``positions`` (an index array or a slice; None: not set).

    For a label in ``cache.nums`` a text ``ParseFloat`` reads is kept as that number.
    """
    column = cache.texts[target]
    if target in cache.nums:
        values, has = cache.nums[target]
        codes, uniques = pd.factorize(words, use_na_sentinel=True)
        parsed = [parse_float(u) for u in uniques.tolist()]
        number = np.array([p is not None for p in parsed] + [False], dtype=bool)[codes]
        floats = np.array([0.0 if p is None else p for p in parsed] + [0.0], np.float64)[codes]
        values[positions] = floats
        has[positions] = number
        words = np.where(number, None, words)
    if not pd.isna(words).all():
        cache.written.add(target)
    column[positions] = words


def _vector_fill(
    cache: _ParseCache,
    stream: Any,
    offset: int,
    stage: ast.Stage,
    targets: dict[str, str],
    floats: frozenset[str],
) -> bool:
    """Fill the slice with pyarrow's RE2 kernels; the stage itself reads the lines they
    cannot answer exactly. False when pyarrow cannot take the lines or the pattern."""
    lines = _lines_of(stream, "arrow_lines")
    if lines is None or len(lines) == 0:
        return False
    try:
        found = _vector_read(lines, stage, targets)
    except (ValueError, NotImplementedError):  # pyarrow refuses (unnamed groups, ...)
        return False
    columns, odd = found
    part = slice(offset, offset + len(lines))
    for target, words in columns.items():
        _store_texts(cache, target, part, words)
    cache.filled[part] = True
    rest = np.flatnonzero(odd)
    if len(rest):
        for target in columns:  # forget what the vectorised reading made of these lines
            cache.texts[target][rest + offset] = None
            if target in cache.nums:
                cache.nums[target][1][rest + offset] = False
        _stage_fill(cache, stream.lines, rest, offset, stream.labels, stage, targets)
    return True


def _vector_read(
    lines: Any, stage: ast.Stage, targets: dict[str, str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(label → texts, lines the stage itself must read) for one parser over ``lines``."""
    import pyarrow.compute as pc

    columns: dict[str, np.ndarray] = {}
    if isinstance(stage, ast.LogfmtStage):
        if stage.keep_empty:
            raise ValueError("standalone keys set labels: read by the stage")
        odd = pc.or_(
            pc.invert(pc.string_is_ascii(lines)),
            pc.invert(pc.match_substring_regex(lines, _LOGFMT_PLAIN)),
        )
        risky = [_LOGFMT_CONTROL]
        for key in targets.values():
            risky.append(f"(?:^|[{_WS}]){key}=(?s:.*)[{_WS}]{key}=")  # written twice
            risky.append(f'^[^"]*"(?:[^"]*"[^"]*")*[^"]*[{_WS}]{key}=')  # inside quotes
        odd = pc.or_(odd, pc.match_substring_regex(lines, "|".join(risky)))
        for target, key in targets.items():
            value = rf'(?:^|[{_WS}]){key}=(?:"(?P<q>[^"]*)"|(?P<v>[^{_WS}"=]*))'
            found = pc.extract_regex(lines, value)
            columns[target] = _texts_of(found, "q", "v")
        return columns, _flags(odd)
    if not targets:  # regexp and pattern set no error: nothing to read
        return columns, np.zeros(len(lines), dtype=bool)
    if isinstance(stage, ast.RegexpStage):
        found = pc.extract_regex(lines, stage.pattern)
        for target, capture in targets.items():
            columns[target] = _texts_of(found, capture)
        return columns, np.zeros(len(lines), dtype=bool)
    assert isinstance(stage, ast.PatternStage)
    wanted = frozenset(targets.values())
    found = pc.extract_regex(lines, _pattern_regex(compile_pattern(stage.pattern), wanted))
    for target, capture in targets.items():
        columns[target] = _texts_of(found, capture)
    odd = pc.or_(pc.invert(pc.is_valid(found)), pc.equal(pc.utf8_length(lines), 0))
    return columns, _flags(odd)


def _pattern_regex(parts: list[tuple[str, str]], wanted: frozenset[str] | None = None) -> str:
    """An RE2 pattern capturing what Loki's pattern parser captures on lines it matches.

    Each capture takes the text up to the *first* occurrence of the next literal (a lazy
    group), the last one the rest of the line; lines this does not match (a literal
    missing) are left to the stage, which captures partially. Only ``wanted`` captures
    (default: all) are groups: fewer groups, faster matching.
    """
    out = ["(?s)^"]
    for index, (kind, text) in enumerate(parts):
        if kind == "lit":
            out.append("".join("\\" + c if c in _REGEX_PUNCT else c for c in text))
            continue
        last = index == len(parts) - 1
        body = ".*" if last else ".*?"
        keep = text != "_" and (wanted is None or text in wanted)
        out.append(f"(?P<{text}>{body})" if keep else f"(?:{body})")
    return "".join(out)


_REGEX_PUNCT = frozenset("\\.+*?()|[]{}^$#&-~!\"%',/:;<=>@`")


def _texts_of(found: Any, *names: str) -> np.ndarray:
    """Field ``name`` of ``extract_regex``'s result as an object array (None: no match).

    With several names, their texts joined (groups of alternatives: one takes part).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    field_values = [found.field(name) for name in names]
    if len(field_values) > 1:
        joined = pc.binary_join_element_wise(*field_values, pa.scalar(""))
    else:
        joined = field_values[0]
    values = pc.if_else(pc.is_valid(found), joined, None)
    encoded = pc.dictionary_encode(values)
    if hasattr(encoded, "combine_chunks"):
        encoded = encoded.combine_chunks()
    words = np.array(encoded.dictionary.to_pylist() + [None], dtype=object)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return words[codes]


def _flags(mask: Any) -> np.ndarray:
    return np.asarray(mask.fill_null(True).to_numpy(zero_copy_only=False), dtype=bool)


# ----------------------------------------------------------------------------- pyarrow json


def _arrow_fill(
    cache: _ParseCache, stream: Any, offset: int, hints: Hints, floats: frozenset[str]
) -> bool:
    """Fill the slice (or the whole stream) from a pyarrow JSON read; False unless exact.

    Exact means: every line is one JSON object (see :func:`_arrow_table`), every wanted
    label comes from exactly one top-level key, and its values have a type whose text the
    json stage writes predictably. When the slice is most of the stream, the whole
    stream is read and the table kept, so later queries with other labels parse nothing.
    """
    table, start = _stream_table(stream, offset, hints, floats)
    if table is None:
        return False
    sources = _arrow_sources(table.schema, stream.labels, hints)
    if sources is None:
        return False
    columns: dict[str, tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]] = {}
    for target, key in sources.items():
        converted = _arrow_column(table.column(key), target in floats, target in hints.numeric)
        if converted is None:
            return False
        columns[target] = converted
    part = slice(start, start + table.num_rows)
    for target, (texts, numbers) in columns.items():
        if texts is not None:
            if not pd.isna(texts).all():
                cache.written.add(target)
            cache.texts[target][part] = texts
        if numbers is not None:
            cache.nums[target][0][part] = numbers[0]
            cache.nums[target][1][part] = numbers[1]
    cache.filled[part] = True
    return True


def _stream_table(
    stream: Any, offset: int, hints: Hints, floats: frozenset[str]
) -> tuple[Any, int]:
    """(table of the lines' JSON, position of its first row) or (None, 0).

    The first table a stream needs is a narrow read (:func:`_narrow_table`: only the
    wanted keys, not kept); from the second set of wanted labels on, the whole table is
    read once and kept, so a dashboard's later queries parse nothing.
    """
    store = getattr(stream, "cache", None)
    whole = getattr(stream, "stream", None)
    if store is None or whole is None or 2 * len(stream.ts) < len(whole.ts):
        lines = _lines_of(stream, "arrow_lines")
        narrow = _narrow_table(lines, stream.labels, hints, floats)
        return (narrow if narrow is not None else _arrow_table(lines)), offset
    key = ("arrow-json",)
    if key not in store:
        lines = _lines_of(stream, "whole_arrow_lines")
        if ("arrow-json-narrow",) not in store:
            store[("arrow-json-narrow",)] = True  # the next other query reads everything
            narrow = _narrow_table(lines, stream.labels, hints, floats)
            if narrow is not None:
                return narrow, 0
        store[key] = _arrow_table(lines)
    return store[key], 0


def _lines_of(stream: Any, method: str) -> Any:
    """Lines as a pyarrow array, or None (no such method, or text pyarrow cannot hold)."""
    fetch = getattr(stream, method, None)
    if fetch is None:
        return None
    try:
        return fetch()
    except (UnicodeError, ValueError):  # lone surrogates: orjson reports them per line
        return None


def _arrow_table(lines: Any, schema: Any = None, guard: str | None = None) -> Any:
    """pyarrow's reading of ``lines`` as JSON objects, or None when it could differ.

    A line that starts with ``{`` and ends with ``}`` cannot leave an object open for
    the next line to close, so "as many rows as lines" proves one object per line;
    NaN / Infinity literals (pyarrow accepts them, orjson does not) are refused. With a
    ``schema`` only its keys are read (others are checked for JSON syntax, not kept), and
    a line matching the RE2 pattern ``guard`` gives None before any parsing.
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.json as pj
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return None
    if lines is None or len(lines) == 0:
        return None
    if not pc.all(pc.starts_with(lines, "{")).as_py():
        return None
    if not pc.all(pc.ends_with(lines, "}")).as_py():
        return None
    joined = pc.binary_join_element_wise(lines, pa.scalar(""), pa.scalar("\n"))
    _validity, offsets, data = joined.buffers()
    width = np.int64 if pa.types.is_large_string(joined.type) else np.int32
    ends = np.frombuffer(offsets, dtype=width)[joined.offset : joined.offset + len(joined) + 1]
    body = data.slice(int(ends[0]), int(ends[-1] - ends[0]))
    if guard is not None:  # one RE2 pass over all the text (a regex per line costs more)
        bounds = pa.py_buffer(np.array([0, body.size], dtype=np.int64).tobytes())
        text = pa.Array.from_buffers(pa.large_binary(), 1, [None, bounds, body])
        if pc.match_substring_regex(text, guard)[0].as_py():
            return None
    block = max(1 << 20, min(16 << 20, body.size // 4))  # fewer, larger blocks parse faster
    options = (
        pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        if schema is not None
        else pj.ParseOptions()
    )
    try:
        table = pj.read_json(
            pa.BufferReader(body),
            parse_options=options,
            read_options=pj.ReadOptions(block_size=block),
        )
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != len(lines) or not _all_finite(table.columns):
        return None
    return table


# A label the narrow read declares: it starts with a letter, so every key that ``| json``
# turns into it (or flattens into it: an object under a prefix of it) holds its first run
# of letters and digits as written (see :func:`_narrow_guard`).
_NARROW_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_KEY_REST = r'(?:[^"\\]|\\.)*"\s*:'  # the rest of a string followed by a colon: a key
# a letter or digit written as an escape (it could spell a wanted key), and the
# non-finite numbers pyarrow accepts and orjson refuses, wherever a value can start
_NARROW_ALWAYS = (
    r"\\u00(?:3[0-9]|4[1-9A-Fa-f]|5[0-9Aa]|6[1-9A-Fa-f]|7[0-9Aa])",
    r"[:\[,]\s*-?(?:NaN|Inf)",
)


def _narrow_table(lines: Any, base: dict[str, str], hints: Hints, floats: frozenset[str]) -> Any:
    """pyarrow's reading of only the keys that give the wanted labels, or None.

    Half the work of reading every key (no column is built for the others) and as exact:
    each wanted label (those of the stream excepted: ``| json`` never sets them) is
    declared with the type its first line shows (numbers read as floats: float64), so
    a line holding another type fails the read; a wanted key written twice fails it too
    (pyarrow refuses that); and :func:`_narrow_guard` refuses, before reading, any text
    where a key other than the label's own could set it. None (the full reading
    decides) when a wanted label is not a plain name, or is ``x_extracted`` for a stream
    label ``x``, or its first line holds a float to keep as text, an object or a list.
    """
    if not NARROW_JSON or lines is None or len(lines) == 0:
        return None
    import pyarrow as pa

    names = sorted(name for name in hints.names if name not in base)
    for name in names:
        if not _NARROW_NAME.fullmatch(name):
            return None
        if name.endswith("_extracted") and name.removesuffix("_extracted") in base:
            return None
    try:
        first = orjson.loads(lines[0].as_py())
    except (orjson.JSONDecodeError, UnicodeError):
        return None
    if type(first) is not dict:
        return None
    types = {str: pa.string(), bool: pa.bool_(), int: pa.int64(), type(None): pa.string()}
    fields = []
    for name in names:
        kind = pa.float64() if name in floats else types.get(type(first.get(name)))
        if kind is None:
            return None
        fields.append((name, kind))
    return _arrow_table(lines, pa.schema(fields), _narrow_guard(tuple(names)))


@functools.lru_cache(maxsize=64)
def _narrow_guard(names: tuple[str, ...]) -> str:
    """An RE2 pattern found in the text wherever a narrow read of ``names`` could differ.

    A key turns into label ``t`` (or flattens into it) only if, stripped, it begins
    with ``t``'s first run of letters and digits ``r``: so every key holding ``r`` must
    be exactly ``t``. Found: ``r`` in a key (a string followed by ``:``) after something
    other than the key's opening quote, or followed by anything but the rest of ``t``
    and the closing quote. Strings of values can match too (harmless: the full reading
    decides).
    """
    alternatives = list(_NARROW_ALWAYS)
    for name in names:
        run = re.match(r"[A-Za-z0-9]+", name)
        assert run is not None
        head, rest = run.group(), name[run.end() :]
        alternatives.append(f'[^"]{head}{_KEY_REST}')  # after something else
        for j, char in enumerate(rest):
            alternatives.append(f'{head}{rest[:j]}"\\s*:')  # a shorter key
            other = f'(?:[^{char}"\\\\]|\\\\.)'
            alternatives.append(f"{head}{rest[:j]}{other}{_KEY_REST}")  # a different one
        alternatives.append(f'{head}{rest}(?:[^"\\\\]|\\\\.){_KEY_REST}')  # a longer one
    return "|".join(alternatives)


def _all_finite(columns: Sequence[Any]) -> bool:
    """No NaN or infinity among the numbers of these columns (nested ones included)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for column in columns:
        kind = column.type
        if pa.types.is_floating(kind):
            if column.null_count < len(column) and not pc.all(pc.is_finite(column)).as_py():
                return False
        elif pa.types.is_struct(kind):
            combined = column.combine_chunks() if hasattr(column, "combine_chunks") else column
            children = [combined.field(i) for i in range(kind.num_fields)]
            if not _all_finite(children):
                return False
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            combined = column.combine_chunks() if hasattr(column, "combine_chunks") else column
            if not _all_finite([combined.flatten()]):
                return False
    return True


def _arrow_sources(schema: Any, base: dict[str, str], hints: Hints) -> dict[str, str] | None:
    """Wanted label → the one top-level key it comes from; None when that is not clear."""
    import pyarrow as pa

    prefixes = tuple(n + "_" for n in hints.names)
    sources: dict[str, str] = {}
    for fld in schema:
        key = fld.name
        name = key if key.isascii() and key.isidentifier() else sanitize_key(key)
        nested = any(p.startswith(name + "_") for p in prefixes)
        if nested and pa.types.is_struct(fld.type):
            return None  # an object that could flatten into a wanted label
        target = name + "_extracted" if name in base else name
        if target not in hints.names:
            continue
        if target in sources:
            return None  # two keys land on one label: the last one written wins
        sources[target] = key
    return sources


def _arrow_column(
    column: Any, as_float: bool, numeric: bool
) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray] | None] | None:
    """(texts, (numbers, has)) of one column as the json stage would set them, or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks()
    kind = column.type
    n = len(column)
    present = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_null(kind):
        return np.full(n, None, dtype=object), None
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if pa.types.is_floating(kind) and not (as_float or numeric):
            return None  # the text would be the number's exact digits: not kept by pyarrow
        if as_float:
            values = column.to_numpy(zero_copy_only=False).astype(np.float64)
            numbers = np.where(present, values, 0.0)
            return np.full(n, None, dtype=object), (numbers, present)
        if pa.types.is_floating(kind):
            return None  # a float column may hold integers written without a point
        exact = pc.fill_null(column, 0).to_numpy(zero_copy_only=False)  # int64, no nulls
        words = _distinct_texts(exact[present], lambda v: str(int(v)))
        texts = np.full(n, None, dtype=object)
        texts[present] = words
        return texts, None
    if pa.types.is_boolean(kind):
        texts = np.full(n, None, dtype=object)
        flags = column.to_numpy(zero_copy_only=False)
        texts[present] = np.array(["false", "true"], dtype=object)[
            flags[present].astype(bool).astype(np.int64)
        ]
        return texts, None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        cleaned = pc.replace_substring(column, "\ufffd", "")
        encoded = pc.dictionary_encode(cleaned)
        words = np.array(encoded.dictionary.to_pylist() + [None], dtype=object)
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return words[codes], None
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return np.full(n, None, dtype=object), None  # arrays are not extracted
    return None


def _distinct_texts(values: np.ndarray, fmt: Callable[[Any], str]) -> np.ndarray:
    codes, uniques = pd.factorize(values)
    words = np.array([fmt(u) for u in uniques.tolist()], dtype=object)
    return words[codes]


# ----------------------------------------------------------------------------- helpers


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """Row of each code's first appearance (codes numbered in order of appearance)."""
    running = np.maximum.accumulate(codes)
    return np.flatnonzero(np.diff(running, prepend=-1) > 0)


def _per_distinct(vals: np.ndarray, test: Callable[[Any], bool]) -> np.ndarray:
    codes, uniques = pd.factorize(vals, use_na_sentinel=True)
    verdict = np.array([test(u) for u in uniques.tolist()] + [test(None)], dtype=bool)
    return verdict[np.where(codes < 0, len(uniques), codes)]


def _utf8_len(line: str) -> int:
    return len(line) if line.isascii() else len(line.encode("utf-8", "surrogatepass"))


_FILTER_CONVERTERS: dict[type, Callable[[str], float | int | None]] = {
    ast.LFNumber: parse_float,
    ast.LFDuration: go_duration_ns,
    ast.LFBytes: parse_bytes,
}
_NP_CMP: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}
