"""Run a LogQL query against a store and shape the answer like Loki's HTTP ``data``.

Range metric queries are evaluated the way Loki's engine does it: at ``start``,
``start + step``, ... up to ``end`` exactly, with no alignment. ``align=True`` reproduces
the query frontend's ``align_queries_with_step`` option (off by default in Loki): start
rounded down and end rounded up to a multiple of ``step``. The default step is Loki's
``max(floor((end - start) / 250s), 1s)``. Log queries select ``[start, end)`` and return
at most ``limit`` entries in ``direction`` order.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from opsbook.loki.logql import ast
from opsbook.loki.logql.errors import LogQLEvalError
from opsbook.loki.logql.evaluator import (
    Evaluator,
    LabelsKey,
    Series,
    Store,
    format_value,
    labels_key,
)
from opsbook.loki.logql.parser import parse
from opsbook.loki.logql.pipeline import (
    Entry,
    categorize,
    compile_pipeline,
    entry_meta,
    run_entry,
    start_labels,
)
from opsbook.loki.timeutil import NS_PER_S, parse_duration, to_ns

MAX_POINTS = 11_000


def parse_step(step: Any, start_ns: int, end_ns: int) -> int:
    """Step in ns from a duration string, seconds (number / numeric string) or None."""
    if step is None or step == "":
        return max((end_ns - start_ns) // (250 * NS_PER_S), 1) * NS_PER_S
    if isinstance(step, bool):
        raise LogQLEvalError(f"invalid step {step!r}")
    if isinstance(step, int | float):
        ns = int(round(float(step) * NS_PER_S))
    else:
        text = str(step).strip()
        try:
            ns = int(round(float(text) * NS_PER_S))
        except ValueError:
            ns = parse_duration(text)
    if ns >= 2**63:
        raise LogQLEvalError(f"step {step!r} is out of range", hint="use a step below 290 years")
    if ns <= 0:
        raise LogQLEvalError(
            "zero or negative query resolution step widths are not accepted. "
            "Try a positive integer",
            hint="pass step as a duration such as 1m or a number of seconds",
        )
    return ns


def query_range(
    store: Store,
    query: str,
    start: Any,
    end: Any,
    step: Any = None,
    limit: int = 100,
    direction: str = "backward",
    *,
    max_series: int | None = None,
    align: bool = False,
    categorize_labels: bool = False,
) -> dict[str, Any]:
    """Evaluate ``query`` over ``[start, end]`` (``align``: see module docstring)."""
    expr = parse(query)
    start_ns, end_ns = to_ns(start), to_ns(end)
    if end_ns < start_ns:
        raise LogQLEvalError(
            "end timestamp must not be before or equal to start time",
            hint="swap start and end",
        )
    _check_direction(direction)
    if isinstance(expr, ast.LogSelector):
        return log_query(store, expr, start_ns, end_ns, limit, direction, categorize_labels)
    if _uses(expr, "approx_topk"):
        raise LogQLEvalError(
            "approx_topk is only supported for instant queries",
            hint="run it with query (instant), or use topk in a range query",
        )
    step_ns = parse_step(step, start_ns, end_ns)
    if (end_ns - start_ns) // step_ns > MAX_POINTS:
        raise LogQLEvalError(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing "
            "the query resolution (?step=XX)",
            hint="use a larger step",
        )
    if align:
        start_ns -= start_ns % step_ns
        if end_ns % step_ns:
            end_ns += step_ns - end_ns % step_ns
    steps = np.arange(start_ns, end_ns + 1, step_ns, dtype=np.int64)
    with _no_gc():
        series = Evaluator(store, steps, instant=False).eval(expr)
    _check_series(series, max_series)
    return {"resultType": "matrix", "result": _matrix(series, steps)}


def query_instant(
    store: Store,
    query: str,
    time: Any = None,
    limit: int = 100,
    direction: str = "backward",
    *,
    max_series: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``query`` at one instant (default: now)."""
    expr = parse(query)
    _check_direction(direction)
    t_ns = to_ns("now" if time is None else time)
    if isinstance(expr, ast.LogSelector):
        raise LogQLEvalError(
            "log queries are not supported as an instant query type, please change your "
            "query to a range query type",
            hint="use query_range for log queries",
        )
    if isinstance(expr, ast.Literal):
        return {"resultType": "scalar", "result": [_ts(t_ns), format_value(expr.value)]}
    steps = np.array([t_ns], dtype=np.int64)
    with _no_gc():
        series = Evaluator(store, steps, instant=True).eval(expr)
    _check_series(series, max_series)
    rows = [(key, float(values[0])) for key, (values, present) in series.items() if present[0]]
    rows.sort(key=lambda row: row[0])
    order = _sort_order(expr)
    if order is not None:
        rows.sort(key=lambda row: _nan_last(row[1], order), reverse=order == "sort_desc")
    result = [
        {"metric": dict(key), "value": [_ts(t_ns), format_value(value)]} for key, value in rows
    ]
    return {"resultType": "vector", "result": result}


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC: evaluation allocates many short-lived dicts, no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _nan_last(value: float, order: str) -> float:
    if value != value:
        return float("-inf") if order == "sort_desc" else float("inf")
    return value


def _uses(expr: ast.Expr, op: str) -> bool:
    """Whether a vector aggregation ``op`` appears anywhere in ``expr``."""
    if isinstance(expr, ast.VectorAgg):
        return expr.op == op or _uses(expr.expr, op)
    if isinstance(expr, ast.BinOp):
        return _uses(expr.lhs, op) or _uses(expr.rhs, op)
    if isinstance(expr, ast.LabelReplace):
        return _uses(expr.expr, op)
    return False


def _sort_order(expr: ast.Expr) -> str | None:
    if isinstance(expr, ast.VectorAgg):
        if expr.op in ("sort", "sort_desc"):
            return expr.op
        return _sort_order(expr.expr)
    if isinstance(expr, ast.BinOp):
        return _sort_order(expr.lhs) or _sort_order(expr.rhs)
    if isinstance(expr, ast.LabelReplace):
        return _sort_order(expr.expr)
    return None


def _check_direction(direction: str) -> None:
    if direction not in ("forward", "backward"):
        raise LogQLEvalError(f"invalid direction {direction!r}", hint="use 'forward' or 'backward'")


def _check_series(series: Series, max_series: int | None) -> None:
    if max_series is not None and len(series) > max_series:
        raise LogQLEvalError(
            f"maximum of series ({max_series}) reached for a single query",
            hint="aggregate with sum by (...) or narrow the selector",
        )


def _ts(ns: int) -> float:
    return (ns // 1_000_000) / 1000


def _matrix(series: Series, steps: np.ndarray) -> list[dict[str, Any]]:
    times = [_ts(int(t)) for t in steps.tolist()]
    out = []
    for key in sorted(series):
        values, present = series[key]
        idx = np.flatnonzero(present).tolist()
        vals = values.tolist()
        out.append(
            {"metric": dict(key), "values": [[times[i], format_value(vals[i])] for i in idx]}
        )
    return out


# ----------------------------------------------------------------------------- log queries


def log_query(
    store: Store,
    expr: ast.LogSelector,
    start_ns: int,
    end_ns: int,
    limit: int,
    direction: str,
    categorize_labels: bool = False,
) -> dict[str, Any]:
    """Entries in ``[start, end)`` after the pipeline, newest first unless forward.

    By default an entry's stream is all its labels (stream, structured metadata, parsed),
    as Loki answers. ``categorize_labels`` gives the answer Loki gives with the header
    ``X-Loki-Response-Encoding-Flags: categorize-labels``: streams keyed by stream labels,
    each value ``[ts, line, {"structuredMetadata": {...}, "parsed": {...}}]`` (the third
    element, and each of its parts, only when not empty).
    """
    if limit < 0:
        raise LogQLEvalError("limit must be a positive value", hint="pass limit >= 1")
    pipeline = compile_pipeline(expr.stages)
    backward = direction == "backward"
    candidates: list[tuple[int, LabelsKey, int, str, dict[str, Any] | None]] = []
    seq = 0
    for stream in store.select(expr.matchers, start_ns, end_ns):
        kept = 0
        n = len(stream.lines)
        order = range(n - 1, -1, -1) if backward else range(n)
        ts_list = stream.ts.tolist()
        base = stream.labels
        base_key = labels_key(base)
        metas = getattr(stream, "meta", None)
        preds = pipeline.line_predicates() if pipeline.line_only and metas is None else None
        for i in order:
            if kept >= limit:
                break
            line = stream.lines[i]
            extra = None
            if preds is not None:
                if not all(p(line) for p in preds):
                    continue
                key = base_key
            else:
                meta = metas[i] if metas is not None else None
                entry = Entry(ts_list[i], line, start_labels(base, meta), base)
                entry.meta = entry_meta(base, meta)
                if not run_entry(pipeline.fns, entry):
                    continue
                line = entry.line
                if categorize_labels:
                    labels, sm, parsed = categorize(entry)
                    key = labels_key(labels)
                    extra = _categories(sm, parsed)
                else:
                    key = labels_key(entry.labels)
            candidates.append((ts_list[i], key, seq, line, extra))
            seq += 1
            kept += 1
    if backward:
        chosen = heapq.nlargest(limit, candidates, key=lambda c: (c[0], c[1], -c[2]))
    else:
        chosen = heapq.nsmallest(limit, candidates, key=lambda c: (c[0], c[1], c[2]))
    streams: dict[LabelsKey, list[list[Any]]] = {}
    for ts, key, _seq, line, extra in chosen:
        streams.setdefault(key, []).append(
            [str(ts), line] if extra is None else [str(ts), line, extra]
        )
    result = [{"stream": dict(key), "values": streams[key]} for key in sorted(streams)]
    data: dict[str, Any] = {"resultType": "streams", "result": result}
    if categorize_labels:
        data["encodingFlags"] = ["categorize-labels"]
    return data


def _categories(meta: dict[str, str], parsed: dict[str, str]) -> dict[str, Any] | None:
    extra: dict[str, Any] = {}
    if meta:
        extra["structuredMetadata"] = meta
    if parsed:
        extra["parsed"] = parsed
    return extra or None
