"""Columnar extraction for the common metric pipeline shape.

``{selector} |= "x" | json | status >= 500 | unwrap latency_ms | __error__="" [5m]``
grouped ``by`` some labels is what dashboards and alert rules run over and over. The
general path pushes every entry through the compiled stages one at a time (a labels dict
per entry); here a stream's entries are processed a stage at a time instead:

- line filters are evaluated once per line;
- ``| json`` parses each line once with orjson and keeps only the labels the query reads
  (its parser hints), and the parsed fields are cached on the stream, keyed by line
  position, so a repeated query (or an alert rule backtest) does not parse again;
- label filters, ``unwrap`` conversions and comparisons run once per *distinct* value and
  are broadcast to the lines with numpy; ``__error__`` / ``__error_details__`` are columns
  set exactly where the per-entry path would set them;
- samples are grouped into series with integer codes.

Results are identical to the per-entry path (same samples, same order, same errors); any
stage, filter or stream this module does not cover makes :func:`plan_for` (or
:meth:`ColumnarPlan.run`) return None and the evaluator takes the general path.
``FAST_PATH = False`` turns the module off (the equivalence tests compare both paths).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from opsbook.loki.logql import ast
from opsbook.loki.logql.pipeline import (
    _CMP,
    ERROR,
    ERROR_DETAILS,
    JSON_ERR,
    LABEL_FILTER_ERR,
    SAMPLE_ERR,
    Hints,
    _conversion_error,
    _flatten,
    _json_value,
    _loads_exact,
    compile_ip_matcher,
    line_filter_predicate,
    parse_json_object,
    sanitize_key,
)
from opsbook.loki.logql.units import go_duration_ns, parse_bytes, parse_float

FAST_PATH = True

LabelsKey = tuple[tuple[str, str], ...]
SeriesPart = tuple[LabelsKey, np.ndarray, np.ndarray]
_NOT_OBJECT = "Value looks like object, but can't find closing '}' symbol"


@dataclass(frozen=True)
class ColumnarPlan:
    """A range aggregation's log pipeline, checked to be within what this module covers."""

    stages: tuple[ast.Stage, ...]
    hints: Hints | None
    group: tuple[str, ...]  # sorted, distinct
    unwrap: ast.Unwrap | None
    by_bytes: bool
    unwrap_convert: Callable[[str], float | None] | None = field(default=None, compare=False)
    unwrap_error: Callable[[str], str] | None = field(default=None, compare=False)

    def run(self, stream: Any) -> list[SeriesPart] | None:
        """Samples of one stream grouped into series, or None to use the general path."""
        base: dict[str, str] = stream.labels
        if ERROR in base or ERROR_DETAILS in base:
            return None
        return _Run(self, stream).execute()


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
    json_stages = [s for s in stages if isinstance(s, ast.JsonStage)]
    if len(json_stages) > 1 or (json_stages and (json_stages[0].exprs or hints is None)):
        return None
    for stage in stages:
        if not isinstance(stage, ast.LineFilterStage | ast.JsonStage | ast.LabelFilterStage):
            return None
    return ColumnarPlan(
        stages=stages,
        hints=hints if json_stages else None,
        group=tuple(sorted(set(group_by))),
        unwrap=node.range.unwrap,
        by_bytes=node.op in ("bytes_over_time", "bytes_rate"),
        unwrap_convert=converter,
        unwrap_error=unwrap_error,
    )


class _Run:
    """State of one stream going through a plan: which entries are alive, set labels."""

    def __init__(self, plan: ColumnarPlan, stream: Any) -> None:
        self.plan = plan
        self.stream = stream
        self.base: dict[str, str] = stream.labels
        self.n = len(stream.ts)
        self.alive = np.ones(self.n, dtype=bool)
        # labels set by the pipeline, per entry (None: not set, the stream's value shows)
        self.cols: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ label columns
    def col(self, name: str) -> np.ndarray:
        arr = self.cols.get(name)
        if arr is None:
            arr = self.cols[name] = np.full(self.n, None, dtype=object)
        return arr

    def values(self, name: str, rows: np.ndarray) -> np.ndarray:
        """``labels.get(name)`` of entries ``rows`` (None when absent)."""
        base_value = self.base.get(name)
        arr = self.cols.get(name)
        if arr is None:
            return np.full(len(rows), base_value, dtype=object)
        out = arr[rows]
        if base_value is not None:
            out[pd.isna(out)] = base_value
        return out

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
            elif isinstance(stage, ast.JsonStage):
                assert plan.hints is not None
                self.json(plan.hints, rows)
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

    def json(self, hints: Hints, rows: np.ndarray) -> None:
        columns, errors = _json_columns(self.stream, hints, rows)
        for target, column in columns.items():
            found = rows[~pd.isna(column[rows])]
            if len(found):
                self.col(target)[found] = column[found]
        failed = rows[~pd.isna(errors[rows])]
        self.set_error(failed, JSON_ERR, errors[failed])

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
        if isinstance(flt, ast.LFIp):
            test = compile_ip_matcher(flt.pattern)
            hit = _per_distinct(
                self.values(flt.name, rows), lambda v: v is not None and bool(test(v))
            )
            return hit if flt.op == "=" else ~hit
        return self.converted_filter(flt, rows)

    def converted_filter(
        self, flt: ast.LFNumber | ast.LFDuration | ast.LFBytes, rows: np.ndarray
    ) -> np.ndarray:
        out = np.ones(len(rows), dtype=bool)  # entries with an error pass untouched
        todo = ~self.has_error(rows)
        if not todo.any():
            return out
        vals = self.values(flt.name, rows[todo])
        convert = _FILTER_CONVERTERS[type(flt)]
        cmp = _CMP[flt.op]
        target = float(flt.value)
        codes, uniques = pd.factorize(vals, use_na_sentinel=True)
        converted = [convert(u) for u in uniques.tolist()]
        verdict = np.array(
            [c is not None and cmp(c, target) for c in converted] + [False], dtype=bool
        )
        failed = np.array([c is None for c in converted] + [False], dtype=bool)
        codes = np.where(codes < 0, len(uniques), codes)  # absent label: dropped
        result = verdict[codes]
        bad = failed[codes]
        result[bad] = True
        if bad.any():
            details = np.array(
                [_conversion_error(flt, u) for u in uniques.tolist()] + [None], dtype=object
            )
            bad_rows = rows[todo][bad]
            self.set_error(bad_rows, LABEL_FILTER_ERR, details[codes[bad]])
        out[todo] = result
        return out

    # ------------------------------------------------------------------ unwrap
    def unwrap(self, unwrap: ast.Unwrap, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        convert = self.plan.unwrap_convert
        error_text = self.plan.unwrap_error
        assert convert is not None and error_text is not None
        vals = self.values(unwrap.label, rows)
        codes, uniques = pd.factorize(vals, use_na_sentinel=True)
        words = uniques.tolist()
        converted = [None if w == "" else convert(w) for w in words]
        present = np.array([w != "" for w in words] + [False], dtype=bool)
        failed = np.array(
            [w != "" and c is None for w, c in zip(words, converted, strict=True)] + [False],
            dtype=bool,
        )
        numbers = np.array([0.0 if c is None else c for c in converted] + [0.0], np.float64)
        codes = np.where(codes < 0, len(words), codes)
        keep = present[codes]
        rows, codes = rows[keep], codes[keep]
        bad = failed[codes]
        if bad.any():
            details = np.array([error_text(w) for w in words] + [None], dtype=object)
            self.set_error(rows[bad], SAMPLE_ERR, details[codes[bad]])
        values = numbers[codes]
        for flt in unwrap.post_filters:
            if not len(rows):
                break
            passed = self.label_filter(flt, rows)
            rows, values = rows[passed], values[passed]
        return rows, values

    # ------------------------------------------------------------------ series
    def group(self, rows: np.ndarray, values: np.ndarray) -> list[SeriesPart]:
        errors = self.values(ERROR, rows)
        failed = np.array([bool(e) for e in errors.tolist()], dtype=bool)
        key_ids = np.zeros(len(rows), dtype=np.int64)
        keys: dict[LabelsKey, int] = {}
        ok = np.flatnonzero(~failed)
        if len(ok):
            codes = np.zeros(len(ok), dtype=np.int64)
            parts: list[tuple[str, list[Any], np.ndarray]] = []
            for name in self.plan.group:
                vals = self.values(name, rows[ok])
                sub, uniques = pd.factorize(vals, use_na_sentinel=True)
                words = [None, *uniques.tolist()]
                sub = sub.astype(np.int64) + 1
                codes = pd.factorize(codes * len(words) + sub)[0].astype(np.int64)
                parts.append((name, words, sub))
            first_rows = np.unique(codes, return_index=True)[1].tolist()
            code_ids = np.zeros(len(first_rows), dtype=np.int64)
            for code, row in enumerate(first_rows):
                key = tuple(
                    (name, words[sub[row]]) for name, words, sub in parts if words[sub[row]]
                )
                code_ids[code] = keys.setdefault(key, len(keys))
            key_ids[ok] = code_ids[codes]
        for i in np.flatnonzero(failed).tolist():
            key_ids[i] = keys.setdefault(self.full_key(int(rows[i])), len(keys))
        return self.split(rows, values, key_ids, keys)

    def full_key(self, row: int) -> LabelsKey:
        labels = dict(self.base)
        for name, arr in self.cols.items():
            if arr[row] is not None:
                labels[name] = arr[row]
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
class _JsonCache:
    """Labels ``| json`` set on a stream's lines for one set of hints (whole stream)."""

    filled: np.ndarray
    columns: dict[str, np.ndarray]
    errors: np.ndarray


def _json_columns(
    stream: Any, hints: Hints, rows: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-line labels ``| json`` sets (and parse errors), for the slice's positions.

    Parsed fields are cached on the stream by absolute line position when the store
    offers a cache; only lines not parsed yet for these hints are parsed.
    """
    cache_store = getattr(stream, "cache", None)
    offset = int(getattr(stream, "offset", 0))
    n = len(stream.ts)
    key = ("json", hints.names, hints.numeric)
    cache: _JsonCache | None = cache_store.get(key) if cache_store is not None else None
    if cache is None:
        total = len(stream.stream.ts) if cache_store is not None else n
        cache = _JsonCache(
            np.zeros(total, dtype=bool),
            {name: np.full(total, None, dtype=object) for name in sorted(hints.names)},
            np.full(total, None, dtype=object),
        )
        if cache_store is not None:
            cache_store[key] = cache
    if cache_store is None:
        offset = 0
    todo = rows[~cache.filled[rows + offset]]
    if len(todo):
        inputs = stream.parse_inputs() if hasattr(stream, "parse_inputs") else stream.lines
        _parse_into(cache, inputs, todo, offset, stream.labels, hints)
    view = slice(offset, offset + n)
    return {name: col[view] for name, col in cache.columns.items()}, cache.errors[view]


def _parse_into(
    cache: _JsonCache,
    inputs: Sequence[str | memoryview],
    todo: np.ndarray,
    offset: int,
    base: dict[str, str],
    hints: Hints,
) -> None:
    """Parse lines ``todo`` (slice positions) into the cache, like the hinted json stage."""
    names = hints.names
    exact = names - hints.numeric
    prefixes = tuple(n + "_" for n in names)
    columns = cache.columns
    errors = cache.errors
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    plans: dict[tuple[str, ...], list[tuple[str, str | None, str, bool, bool]]] = {}
    for i in todo.tolist():
        line = inputs[i]
        pos = i + offset
        try:
            obj = loads(line)
        except decode_error:
            obj = parse_json_object(_text(line))  # the message the per-entry path shows
            if isinstance(obj, str):
                errors[pos] = obj
                continue
        if type(obj) is not dict:
            errors[pos] = _NOT_OBJECT
            continue
        sig = tuple(obj)
        plan = plans.get(sig)
        if plan is None:
            plan = plans[sig] = _key_plan(sig, base, names, exact, prefixes)
        exact_doc: Any = None
        for key, target, name, nested, exact_text in plan:
            value = obj[key]
            kind = type(value)
            if kind is dict:
                if nested:
                    found: list[tuple[str, str]] = []
                    _flatten(_loads_exact(_text(line))[key], name, found)
                    for flat, text in found:
                        flat_target = flat + "_extracted" if flat in base else flat
                        if flat_target in names:
                            columns[flat_target][pos] = text
                continue
            if target is None:
                continue
            if kind is str:
                text = value.replace("\ufffd", "") if "\ufffd" in value else value
            elif kind is int:
                text = str(value)
            elif kind is float:
                if exact_text:
                    if exact_doc is None:
                        exact_doc = _loads_exact(_text(line))
                    text = _json_value(exact_doc[key])
                else:
                    text = repr(value)
            elif kind is bool:
                text = "true" if value else "false"
            else:
                continue
            if text is not None:
                columns[target][pos] = text
    cache.filled[todo + offset] = True


def _key_plan(
    keys: tuple[str, ...],
    base: dict[str, str],
    names: frozenset[str],
    exact: frozenset[str],
    prefixes: tuple[str, ...],
) -> list[tuple[str, str | None, str, bool, bool]]:
    """For an object's keys (in order): (key, target or None, name, nested?, exact text?)."""
    plan = []
    for key in keys:
        name = key if key.isascii() and key.isidentifier() else sanitize_key(key)
        nested = any(p.startswith(name + "_") for p in prefixes)
        target: str | None = name + "_extracted" if name in base else name
        if target not in names:
            target = None
        if target is None and not nested:
            continue
        plan.append((key, target, name, nested, target is not None and target in exact))
    return plan


def _text(line: str | memoryview) -> str:
    return line if isinstance(line, str) else bytes(line).decode("utf-8")


# ----------------------------------------------------------------------------- helpers


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
