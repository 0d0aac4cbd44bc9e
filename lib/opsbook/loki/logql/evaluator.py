"""Evaluate LogQL metric and log queries over a store of streams.

Metric results are computed on the whole step grid at once: every series is a pair of
numpy arrays (values, present) aligned to the evaluation timestamps, so binary operations
and aggregations are array operations. Range windows are ``(t - range - offset,
t - offset]``; arithmetic follows Loki (``x / 0`` and ``x % 0`` are NaN; comparisons
without ``bool`` keep the vector's sample).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import numpy as np

from opsbook.loki.logql import ast, columnar
from opsbook.loki.logql.errors import LogQLEvalError, UnsupportedLogQL
from opsbook.loki.logql.pipeline import (
    ERROR,
    PARSER_STAGES,
    SAMPLE_ERR,
    Entry,
    Hints,
    compile_label_filter,
    compile_pipeline,
    entry_meta,
    label_filter_names,
    run_entry,
    start_labels,
)
from opsbook.loki.logql.regex import expand_go_template
from opsbook.loki.logql.units import go_duration_ns, parse_bytes, parse_float

LabelsKey = tuple[tuple[str, str], ...]
Series = dict[LabelsKey, tuple[np.ndarray, np.ndarray]]  # values, present (per step)


class StreamData(Protocol):
    """One stream's entries in a time range (ascending timestamps)."""

    labels: dict[str, str]
    ts: np.ndarray
    lines: list[str]
    meta: list[dict[str, str]] | None  # structured metadata per entry (None: none at all)


class Store(Protocol):
    """What the evaluator needs from a log store."""

    def select(
        self, matchers: tuple[ast.Matcher, ...], start_ns: int, end_ns: int
    ) -> Iterable[StreamData]:
        """Streams matching all matchers, with entries in ``[start_ns, end_ns)``."""
        ...


def labels_key(labels: dict[str, str]) -> LabelsKey:
    """Canonical, hashable label set (sorted; empty values dropped, as in Prometheus)."""
    return tuple(sorted((k, v) for k, v in labels.items() if v != ""))


def format_value(value: float) -> str:
    """Format like Go ``strconv.FormatFloat(v, 'f', -1, 64)`` (Loki's JSON values)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


# ----------------------------------------------------------------------------- arithmetic


def merge_float(op: str, left: float, right: float, filter_: bool) -> tuple[float, bool]:
    """Loki's ``mergeBinOpFloat``: (value, keep)."""
    if op == "+":
        return left + right, True
    if op == "-":
        return left - right, True
    if op == "*":
        return left * right, True
    if op == "/":
        return (math.nan if right == 0 else left / right), True
    if op == "%":
        return (math.nan if right == 0 else math.fmod(left, right)), True
    if op == "^":
        try:
            return math.pow(left, right), True
        except (OverflowError, ValueError):
            return _go_pow(left, right), True
    cond = _COMPARE[op](left, right)
    if cond:
        return 1.0, True
    return 0.0, not filter_


def _go_pow(left: float, right: float) -> float:
    try:
        with np.errstate(all="ignore"):
            return float(np.power(np.float64(left), np.float64(right)))
    except (OverflowError, ValueError):
        return math.inf


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
_NP_COMPARE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}


def _np_arith(op: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "/":
            return np.where(right == 0, np.nan, left / np.where(right == 0, 1, right))
        if op == "%":
            return np.where(right == 0, np.nan, np.fmod(left, np.where(right == 0, 1, right)))
        return np.power(left, right)


# ----------------------------------------------------------------------------- range functions


def _avg(values: list[float]) -> float:
    mean = 0.0
    count = 0.0
    for v in values:
        count += 1
        if math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue
            if not math.isinf(v) and not math.isnan(v):
                continue
        mean += v / count - mean / count
    return mean


def _stdvar(values: list[float]) -> float:
    aux = count = mean = 0.0
    for v in values:
        count += 1
        delta = v - mean
        mean += delta / count
        aux += delta * (v - mean)
    return aux / count


def _min(values: list[float]) -> float:
    result = values[0]
    for v in values:
        if v < result or math.isnan(result):
            result = v
    return result


def _max(values: list[float]) -> float:
    result = values[0]
    for v in values:
        if v > result or math.isnan(result):
            result = v
    return result


def quantile(q: float, values: list[float]) -> float:
    """Prometheus' quantile with linear interpolation (q<0 → -Inf, q>1 → +Inf)."""
    if not values:
        return math.nan
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values)
    n = float(len(ordered))
    rank = q * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[int(lower)] * (1 - weight) + ordered[int(upper)] * weight


def _window_quantiles(
    vals: np.ndarray, lo: np.ndarray, hi: np.ndarray, present: np.ndarray, q: float
) -> np.ndarray | None:
    """:func:`quantile` of every window with a partial sort instead of ``sorted``.

    The two order statistics are the same numbers ``sorted`` would pick when no value is
    NaN (unordered) or -0.0 (equal to 0.0 but printed differently); the interpolation is
    the same float arithmetic. None: use :func:`quantile`.
    """
    if math.isnan(q) or q < 0 or q > 1:
        return None
    if np.isnan(vals).any() or bool(np.any((vals == 0) & np.signbit(vals))):
        return None
    out = np.zeros(len(lo), dtype=np.float64)
    los, his = lo.tolist(), hi.tolist()
    for i in np.flatnonzero(present).tolist():
        a, b = los[i], his[i]
        n = float(b - a)
        rank = q * (n - 1)
        lower = max(0.0, math.floor(rank))
        upper = min(n - 1, lower + 1)
        weight = rank - math.floor(rank)
        first, second = int(lower), int(upper)
        # one order statistic, then the smallest value above it: the same two numbers as
        # partitioning at both (which numpy does several times slower)
        part = np.partition(vals[a:b], first)
        above = float(part[first + 1 :].min()) if second != first else float(part[first])
        out[i] = float(part[first]) * (1 - weight) + above * weight
    return out


# ----------------------------------------------------------------------------- evaluator


@dataclass
class Samples:
    """Samples of one series produced by a log range (ascending timestamps)."""

    ts: np.ndarray
    values: np.ndarray


class Evaluator:
    """Evaluates a sample expression on a grid of timestamps (ns)."""

    def __init__(self, store: Store, steps: np.ndarray, instant: bool) -> None:
        self.store = store
        self.steps = steps
        self.instant = instant
        self.n = len(steps)

    # ------------------------------------------------------------------ dispatch
    def eval(self, node: ast.Expr) -> Series:
        if isinstance(node, ast.RangeAgg):
            return self.range_agg(node)
        if isinstance(node, ast.VectorAgg):
            return self.vector_agg(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.VectorLit | ast.Literal):
            return {(): (np.full(self.n, node.value), np.ones(self.n, dtype=bool))}
        if isinstance(node, ast.LabelReplace):
            return self.label_replace(node)
        raise UnsupportedLogQL(type(node).__name__)

    # ------------------------------------------------------------------ extraction
    def extract(
        self, node: ast.RangeAgg, group_by: tuple[str, ...] | None = None
    ) -> dict[LabelsKey, Samples]:
        """Run the log range's pipeline and group samples into series.

        ``group_by`` keeps only those labels on samples without ``__error__`` (pushed
        down from ``sum by`` or an unwrapped range's ``by``), which lets ``| json`` skip
        the fields nobody reads.
        """
        rng = node.range
        lo = max(int(self.steps[0]) - rng.offset_ns - rng.range_ns, _INT64_MIN)
        hi = max(int(self.steps[-1]) - rng.offset_ns, _INT64_MIN)
        hints = _hints(node, group_by) if group_by is not None else None
        pipeline = compile_pipeline(rng.selector.stages, hints)
        unwrap = rng.unwrap
        op = node.op
        by_bytes = op in ("bytes_over_time", "bytes_rate")
        grouped: dict[LabelsKey, tuple[list[np.ndarray], list[np.ndarray]]] = {}

        def add(key: LabelsKey, ts: np.ndarray, values: np.ndarray) -> None:
            slot = grouped.setdefault(key, ([], []))
            slot[0].append(ts)
            slot[1].append(values)

        streams = self.store.select(rng.selector.matchers, lo + 1, hi + 1)
        if unwrap is None and pipeline.line_only:
            preds = pipeline.line_predicates()
            for stream in streams:
                if getattr(stream, "meta", None) is not None:  # labels differ per entry
                    for key, ts, values in self._extract_stream(
                        stream, pipeline.fns, node, group_by
                    ):
                        add(key, ts, values)
                    continue
                ts, lines = stream.ts, stream.lines
                if preds:
                    mask = np.fromiter(
                        (all(p(line) for p in preds) for line in lines), bool, len(lines)
                    )
                    ts = ts[mask]
                    lines = [line for line, keep in zip(lines, mask, strict=True) if keep]
                if not len(ts):
                    continue
                if by_bytes:
                    values = np.array([_utf8_len(line) for line in lines], dtype=np.float64)
                else:
                    values = np.ones(len(ts), dtype=np.float64)
                labels = stream.labels
                if group_by is not None:
                    labels = {k: labels[k] for k in group_by if k in labels}
                add(labels_key(labels), ts, values)
        else:
            plan = columnar.plan_for(
                node,
                group_by,
                hints,
                _converter(unwrap.conv) if unwrap else None,
                (lambda raw: _unwrap_error(unwrap.conv, raw)) if unwrap else None,
            )
            selected = list(streams)
            runs = columnar.run_streams(plan, selected) if plan is not None else None
            for index, stream in enumerate(selected):
                parts = runs[index] if runs is not None else None
                if parts is None:
                    parts = self._extract_stream(stream, pipeline.fns, node, group_by)
                for key, ts, values in parts:
                    add(key, ts, values)
        out: dict[LabelsKey, Samples] = {}
        for key, (ts_parts, value_parts) in grouped.items():
            ts = np.concatenate(ts_parts) if len(ts_parts) > 1 else ts_parts[0]
            values = np.concatenate(value_parts) if len(value_parts) > 1 else value_parts[0]
            if len(ts_parts) > 1:
                order = np.argsort(ts, kind="stable")
                ts, values = ts[order], values[order]
            out[key] = Samples(ts, values)
        return out

    def _extract_stream(
        self,
        stream: StreamData,
        fns: list[Callable[[Entry], bool]],
        node: ast.RangeAgg,
        group_by: tuple[str, ...] | None,
    ) -> Iterator[tuple[LabelsKey, np.ndarray, np.ndarray]]:
        unwrap = node.range.unwrap
        by_bytes = node.op in ("bytes_over_time", "bytes_rate")
        base = stream.labels
        per_key: dict[LabelsKey, tuple[list[int], list[float]]] = {}
        convert = _converter(unwrap.conv) if unwrap else None
        post = [compile_label_filter(f) for f in unwrap.post_filters] if unwrap else []
        grouping = node.grouping
        sorted_group = sorted(set(group_by)) if group_by is not None else []
        ts_list = stream.ts.tolist()
        metas = getattr(stream, "meta", None)
        for i, (ts, line) in enumerate(zip(ts_list, stream.lines, strict=True)):
            meta = metas[i] if metas is not None else None
            entry = Entry(ts, line, start_labels(base, meta), base, entry_meta(base, meta))
            if not run_entry(fns, entry):
                continue
            labels = entry.labels
            if unwrap is None:
                value = float(_utf8_len(entry.line)) if by_bytes else 1.0
            else:
                raw = labels.get(unwrap.label, "")
                if raw == "":
                    continue
                assert convert is not None
                converted = convert(raw)
                if converted is None:
                    entry.set_error(SAMPLE_ERR, _unwrap_error(unwrap.conv, raw))
                    value = 0.0
                else:
                    value = converted
                if post and not all(f(entry) for f in post):
                    continue
                if group_by is None:
                    labels = _unwrap_labels(labels, unwrap.label, grouping)
            if group_by is not None and not labels.get(ERROR):
                key = tuple((k, labels[k]) for k in sorted_group if labels.get(k))
            else:
                key = labels_key(labels)
            slot = per_key.get(key)
            if slot is None:
                slot = per_key[key] = ([], [])
            slot[0].append(ts)
            slot[1].append(value)
        for key, (ts_values, values) in per_key.items():
            yield key, np.array(ts_values, dtype=np.int64), np.array(values, dtype=np.float64)

    # ------------------------------------------------------------------ range aggregation
    def range_agg(self, node: ast.RangeAgg, group_by: tuple[str, ...] | None = None) -> Series:
        grouping = node.grouping
        if group_by is None and grouping is not None and not grouping.without:
            group_by = grouping.labels
        series = self.extract(node, group_by)
        rng = node.range
        ends = _minus(self.steps, rng.offset_ns)
        starts = _minus(ends, rng.range_ns)
        seconds = rng.range_ns / 1e9
        if node.op == "absent_over_time":
            return self._absent(node, series, starts, ends)
        out: Series = {}
        for key, samples in series.items():
            lo = np.searchsorted(samples.ts, starts, side="right")
            hi = np.searchsorted(samples.ts, ends, side="right")
            present = hi > lo
            if not present.any():
                continue
            if node.op == "rate_counter":
                values = _counter_rates(samples, lo, hi, present, starts, ends, seconds)
            else:
                values = self._window_values(node, samples, lo, hi, present, seconds)
            out[key] = (values, present)
        self._check_errors(out)
        return out

    def _window_values(
        self,
        node: ast.RangeAgg,
        samples: Samples,
        lo: np.ndarray,
        hi: np.ndarray,
        present: np.ndarray,
        seconds: float,
    ) -> np.ndarray:
        op = node.op
        vals = samples.values
        if op in ("count_over_time", "rate") and node.range.unwrap is None:
            counts = (hi - lo).astype(np.float64)
            return counts / seconds if op == "rate" else counts
        if op in ("bytes_over_time", "bytes_rate", "sum_over_time", "rate"):
            sums = self._window_sums(vals, lo, hi)
            return sums / seconds if op in ("bytes_rate", "rate") else sums
        fn = _WINDOW_FUNCS.get(op)
        if fn is None:
            raise UnsupportedLogQL(op)
        if op == "quantile_over_time" and node.param is not None:
            fast = _window_quantiles(vals, lo, hi, present, node.param)
            if fast is not None:
                return fast
        out = np.zeros(len(lo), dtype=np.float64)
        vlist = vals.tolist()
        param = node.param if node.param is not None else 0.0
        for i in np.flatnonzero(present).tolist():
            window = vlist[lo[i] : hi[i]]
            out[i] = fn(window, param)
        return out

    @staticmethod
    def _window_sums(vals: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        finite_ints = np.all(np.isfinite(vals)) and np.all(vals == np.round(vals))
        if finite_ints and np.abs(vals).sum() < 2**53:
            csum = np.concatenate(([0.0], np.cumsum(vals)))
            return csum[hi] - csum[lo]
        vlist = vals.tolist()
        out = np.zeros(len(lo), dtype=np.float64)
        for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
            total = 0.0
            for v in vlist[a:b]:
                total += v
            out[i] = total
        return out

    def _absent(
        self,
        node: ast.RangeAgg,
        series: dict[LabelsKey, Samples],
        starts: np.ndarray,
        ends: np.ndarray,
    ) -> Series:
        any_present = np.zeros(self.n, dtype=bool)
        for samples in series.values():
            lo = np.searchsorted(samples.ts, starts, side="right")
            hi = np.searchsorted(samples.ts, ends, side="right")
            any_present |= hi > lo
        absent = ~any_present
        if not absent.any():
            return {}
        return {_absent_labels(node.range.selector.matchers): (np.ones(self.n), absent)}

    def _check_errors(self, series: Series) -> None:
        for key in series:
            labels = dict(key)
            if labels.get(ERROR):
                shown = ", ".join(f'{k}="{v}"' for k, v in key)
                raise LogQLEvalError(
                    f"pipeline error: '{labels[ERROR]}' for series: '{{{shown}}}'. Use a label "
                    f'filter to intentionally skip this error. (e.g | __error__!="{labels[ERROR]}")'
                    '. To skip all potential errors you can match empty errors.(e.g __error__="")'
                    " The label filter can also be specified after unwrap. (e.g | unwrap latency "
                    '| __error__="" )',
                    hint='add | __error__="" to the query to drop lines that failed to parse',
                )

    # ------------------------------------------------------------------ vector aggregation
    def vector_agg(self, node: ast.VectorAgg) -> Series:
        inner_node = node.expr
        grouping = node.grouping
        if (
            node.op == "sum"
            and grouping is not None
            and not grouping.without
            and isinstance(inner_node, ast.RangeAgg)
            and inner_node.op in _SUM_PUSHABLE
            and inner_node.grouping is None
        ):
            # sum by (g) of per-series counts/sums equals the count/sum of samples grouped
            # by g: evaluate the range aggregation on g directly (errors keep all labels).
            inner = self.range_agg(inner_node, group_by=grouping.labels)
        else:
            inner = self.eval(inner_node)
        if node.op in ("topk", "bottomk", "approx_topk"):
            return self._topk(node, inner)
        if node.op in ("sort", "sort_desc"):
            return inner
        groups: dict[LabelsKey, list[tuple[np.ndarray, np.ndarray]]] = {}
        for key in sorted(inner):
            groups.setdefault(_group_key(key, node.grouping), []).append(inner[key])
        out: Series = {}
        for gkey, members in groups.items():
            values = np.stack([m[0] for m in members])
            present = np.stack([m[1] for m in members])
            any_present = present.any(axis=0)
            if not any_present.any():
                continue
            out[gkey] = (self._aggregate(node.op, values, present), any_present)
        return out

    def _aggregate(self, op: str, values: np.ndarray, present: np.ndarray) -> np.ndarray:
        if op == "count":
            return present.sum(axis=0).astype(np.float64)
        if op == "sum" and values.shape[0] == 1:
            return np.where(present[0], values[0], 0.0)
        result = np.zeros(values.shape[1], dtype=np.float64)
        fn = _GROUP_FUNCS[op]
        for col in range(values.shape[1]):
            mask = present[:, col]
            if mask.any():
                result[col] = fn(values[mask, col].tolist())
        return result

    def _topk(self, node: ast.VectorAgg, inner: Series) -> Series:
        """``topk``/``bottomk`` per group; ``approx_topk`` is answered exactly.

        Loki estimates ``approx_topk`` with a count-min sketch, but only for instant
        queries without grouping (see :func:`opsbook.loki.logql.engine.query_range`); the
        exact top k is within the sketch's guarantees, so this engine gives that.
        """
        k = int(node.param or 0)
        groups: dict[LabelsKey, list[LabelsKey]] = {}
        for key in sorted(inner):
            groups.setdefault(_group_key(key, node.grouping), []).append(key)
        out: Series = {key: (inner[key][0].copy(), np.zeros(self.n, dtype=bool)) for key in inner}
        top = node.op != "bottomk"
        for members in groups.values():
            for col in range(self.n):
                live = [(inner[m][0][col], m) for m in members if inner[m][1][col]]
                live.sort(key=lambda item: _sort_value(item[0], top), reverse=top)
                for _value, key in live[:k]:
                    out[key][1][col] = True
        return {key: val for key, val in out.items() if val[1].any()}

    # ------------------------------------------------------------------ binary operations
    def binop(self, node: ast.BinOp) -> Series:
        if isinstance(node.lhs, ast.Literal):
            return self._scalar_vector(node, self.eval(node.rhs), node.lhs.value, literal_left=True)
        if isinstance(node.rhs, ast.Literal):
            return self._scalar_vector(
                node, self.eval(node.lhs), node.rhs.value, literal_left=False
            )
        lhs = self.eval(node.lhs)
        rhs = self.eval(node.rhs)
        if node.op in ("and", "or", "unless"):
            return self._set_op(node, lhs, rhs)
        return self._vector_vector(node, lhs, rhs)

    def _scalar_vector(
        self, node: ast.BinOp, vec: Series, scalar: float, literal_left: bool
    ) -> Series:
        op = node.op
        out: Series = {}
        scalar_arr = np.full(self.n, scalar)
        for key, (values, present) in vec.items():
            left, right = (scalar_arr, values) if literal_left else (values, scalar_arr)
            if op in _NP_COMPARE:
                cond = _NP_COMPARE[op](left, right)
                if node.return_bool:
                    out[key] = (cond.astype(np.float64), present)
                else:
                    keep = present & cond
                    if keep.any():
                        out[key] = (values, keep)
                continue
            out[key] = (_np_arith(op, left, right), present)
        return {k: v for k, v in out.items() if v[1].any()}

    def _set_op(self, node: ast.BinOp, lhs: Series, rhs: Series) -> Series:
        matching = node.matching
        rhs_present: dict[LabelsKey, np.ndarray] = {}
        for key, (_v, present) in rhs.items():
            sig = _signature(key, matching)
            prev = rhs_present.get(sig)
            rhs_present[sig] = present if prev is None else (prev | present)
        empty = np.zeros(self.n, dtype=bool)
        out: Series = {}
        if node.op == "and":
            for key, (values, present) in lhs.items():
                keep = present & rhs_present.get(_signature(key, matching), empty)
                if keep.any():
                    out[key] = (values, keep)
            return out
        if node.op == "unless":
            for key, (values, present) in lhs.items():
                keep = present & ~rhs_present.get(_signature(key, matching), empty)
                if keep.any():
                    out[key] = (values, keep)
            return out
        lhs_present: dict[LabelsKey, np.ndarray] = {}
        for key, (values, present) in lhs.items():
            out[key] = (values, present)
            sig = _signature(key, matching)
            prev = lhs_present.get(sig)
            lhs_present[sig] = present if prev is None else (prev | present)
        for key, (values, present) in rhs.items():
            keep = present & ~lhs_present.get(_signature(key, matching), empty)
            if not keep.any():
                continue
            if key in out:
                old_values, old_present = out[key]
                out[key] = (np.where(keep, values, old_values), old_present | keep)
            else:
                out[key] = (values, keep)
        return out

    def _vector_vector(self, node: ast.BinOp, lhs: Series, rhs: Series) -> Series:
        matching = node.matching
        card = matching.card
        many, one = (rhs, lhs) if card == "one-to-many" else (lhs, rhs)
        one_by_sig: dict[LabelsKey, list[LabelsKey]] = {}
        for key in sorted(one):
            one_by_sig.setdefault(_signature(key, matching), []).append(key)
        for sig, keys in one_by_sig.items():
            if len(keys) > 1:
                counts = np.sum([one[k][1] for k in keys], axis=0)
                if (counts > 1).any():
                    side = "left" if card == "one-to-many" else "right"
                    raise LogQLEvalError(
                        f"found duplicate series for the match group {dict(sig)} on the {side} "
                        "hand-side of the operation; many-to-many matching not allowed: "
                        "matching labels must be unique on one side"
                    )
        out: Series = {}
        seen_sig: dict[LabelsKey, np.ndarray] = {}
        for mkey in sorted(many):
            mvalues, mpresent = many[mkey]
            sig = _signature(mkey, matching)
            for okey in one_by_sig.get(sig, []):
                ovalues, opresent = one[okey]
                both = mpresent & opresent
                if not both.any():
                    continue
                if card == "one-to-one":
                    prev = seen_sig.get(sig)
                    if prev is not None and (prev & both).any():
                        raise LogQLEvalError(
                            "multiple matches for labels: many-to-one matching must be explicit "
                            "(group_left/group_right)"
                        )
                    seen_sig[sig] = both if prev is None else prev | both
                left, right = (ovalues, mvalues) if card == "one-to-many" else (mvalues, ovalues)
                values, keep = self._merge_arrays(node, left, right, both)
                if not keep.any():
                    continue
                rkey = _result_labels(mkey, okey, node.op, matching, node.return_bool)
                self._put(out, rkey, values, keep)
        return out

    def _merge_arrays(
        self, node: ast.BinOp, left: np.ndarray, right: np.ndarray, both: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        op = node.op
        if op in _NP_COMPARE:
            cond = _NP_COMPARE[op](left, right)
            if node.return_bool:
                return cond.astype(np.float64), both
            return left, both & cond
        return _np_arith(op, left, right), both

    @staticmethod
    def _put(out: Series, key: LabelsKey, values: np.ndarray, keep: np.ndarray) -> None:
        if key not in out:
            out[key] = (values.copy(), keep.copy())
            return
        old_values, old_keep = out[key]
        if (old_keep & keep).any():
            raise LogQLEvalError("vector cannot contain metrics with the same labelset")
        out[key] = (np.where(keep, values, old_values), old_keep | keep)

    # ------------------------------------------------------------------ label_replace
    def label_replace(self, node: ast.LabelReplace) -> Series:
        inner = self.eval(node.expr)
        out: Series = {}
        for key, (values, present) in inner.items():
            labels = dict(key)
            match = node.regex.fullmatch(labels.get(node.src, ""))
            if match is not None:
                result = expand_go_template(node.replacement, match)
                if result:
                    labels[node.dst] = result
                else:
                    labels.pop(node.dst, None)
            self._put(out, labels_key(labels), values, present)
        return out


# ----------------------------------------------------------------------------- helpers

_SUM_PUSHABLE = frozenset(
    {"count_over_time", "rate", "bytes_over_time", "bytes_rate", "sum_over_time"}
)


def _hints(node: ast.RangeAgg, group_by: tuple[str, ...]) -> Hints | None:
    """Labels the one parser stage must extract when only ``group_by`` survives (None: all).

    Only a plain ``| json`` is narrowed by them (Loki's parser hints); for ``logfmt``,
    ``regexp`` and ``pattern`` they tell the columnar path which labels to read.
    """
    stages = node.range.selector.stages
    parser_seen = False
    numeric: set[str] = set()
    other: set[str] = set(group_by)
    for stage in stages:
        if isinstance(stage, PARSER_STAGES) and not getattr(stage, "exprs", ()):
            if parser_seen:
                return None
            parser_seen = True
        elif isinstance(stage, ast.LabelFilterStage):
            label_filter_names(stage.filter, numeric, other)
        elif not isinstance(stage, ast.LineFilterStage):
            return None
    if not parser_seen:
        return None
    unwrap = node.range.unwrap
    if unwrap is not None:
        numeric.add(unwrap.label)
        for flt in unwrap.post_filters:
            label_filter_names(flt, numeric, other)
    names = numeric | other
    return Hints(frozenset(names), frozenset(numeric - other))


def _counter_rates(
    samples: Samples,
    lo: np.ndarray,
    hi: np.ndarray,
    present: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    seconds: float,
) -> np.ndarray:
    """``rate_counter``: the unwrapped values read as a counter, per window."""
    out = np.zeros(len(lo), dtype=np.float64)
    ts = samples.ts.tolist()
    vals = samples.values.tolist()
    for i in np.flatnonzero(present).tolist():
        a, b = int(lo[i]), int(hi[i])
        out[i] = counter_rate(ts[a:b], vals[a:b], int(starts[i]), int(ends[i]), seconds)
    return out


def counter_rate(ts: list[int], values: list[float], start: int, end: int, seconds: float) -> float:
    """Per-second increase of a counter over the window ``(start, end]`` (ns), the way
    Prometheus' ``rate()`` computes it and Loki's ``rate_counter`` reuses it.

    A decrease is a counter reset (the value before it is added back); the increase seen
    between the first and last sample is extrapolated towards the window edges (by at
    most half the average sample spacing past a sample, never below zero at the start).
    Fewer than two samples give 0, as Loki does.
    """
    if len(values) < 2:
        return 0.0
    first = values[0]
    result = values[-1] - first
    prev = first
    for value in values[1:]:
        if value < prev:
            result += prev
        prev = value
    sampled = (ts[-1] - ts[0]) / 1e9
    if sampled <= 0:
        return result / seconds
    to_start = (ts[0] - start) / 1e9
    to_end = (end - ts[-1]) / 1e9
    average = sampled / (len(values) - 1)
    if result > 0 and first >= 0:
        to_zero = sampled * (first / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return result * (interval / sampled) / seconds


_INT64_MIN = -(2**63)


def _minus(times: np.ndarray, duration: int) -> np.ndarray:
    """``times - duration`` in int64, saturating at the smallest time instead of wrapping
    (a range such as ``[99999d]`` reaches before any timestamp)."""
    if duration <= 0:
        return times - duration
    return np.maximum(times, _INT64_MIN + duration) - duration


def _utf8_len(line: str) -> int:
    return len(line) if line.isascii() else len(line.encode("utf-8", "surrogatepass"))


def _converter(conv: str) -> Callable[[str], float | None]:
    if conv == "":
        return parse_float
    if conv in ("duration", "duration_seconds"):

        def duration(raw: str) -> float | None:
            ns = go_duration_ns(raw)
            return None if ns is None else ns / 1e9

        return duration

    def size(raw: str) -> float | None:
        value = parse_bytes(raw)
        return None if value is None else float(value)

    return size


def _unwrap_error(conv: str, raw: str) -> str:
    if conv == "":
        return f'strconv.ParseFloat: parsing "{raw}": invalid syntax'
    if conv == "bytes":
        return f"unhandled size name: {raw}"
    return f'time: invalid duration "{raw}"'


def _unwrap_labels(
    labels: dict[str, str], unwrapped: str, grouping: ast.Grouping | None
) -> dict[str, str]:
    if labels.get(ERROR):
        return labels  # Loki keeps every label when an error is set so it is not lost
    if grouping is None or grouping.without:
        drop = set(grouping.labels if grouping else ()) | {unwrapped}
        return {k: v for k, v in labels.items() if k not in drop}
    keep = set(grouping.labels)
    return {k: v for k, v in labels.items() if k in keep}


def _absent_labels(matchers: tuple[ast.Matcher, ...]) -> LabelsKey:
    labels: dict[str, str] = {}
    dropped: set[str] = set()
    for m in matchers:
        if m.op == "=" and m.name not in labels:
            labels[m.name] = m.value
        else:
            dropped.add(m.name)
    return labels_key({k: v for k, v in labels.items() if k not in dropped})


def _group_key(key: LabelsKey, grouping: ast.Grouping | None) -> LabelsKey:
    if grouping is None:
        return ()
    names = set(grouping.labels)
    if grouping.without:
        return tuple((k, v) for k, v in key if k not in names)
    return tuple((k, v) for k, v in key if k in names)


def _signature(key: LabelsKey, matching: ast.VectorMatching) -> LabelsKey:
    names = set(matching.labels)
    if matching.on:
        return tuple((k, v) for k, v in key if k in names)
    return tuple((k, v) for k, v in key if k not in names)


def _result_labels(
    many: LabelsKey, one: LabelsKey, op: str, matching: ast.VectorMatching, return_bool: bool
) -> LabelsKey:
    labels = dict(many)
    if matching.card == "one-to-one":
        names = set(matching.labels)
        if matching.on:
            labels = {k: v for k, v in labels.items() if k in names}
        else:
            labels = {k: v for k, v in labels.items() if k not in names}
    if matching.include:
        one_labels = dict(one)
        for name in matching.include:
            if one_labels.get(name):
                labels[name] = one_labels[name]
            else:
                labels.pop(name, None)
    return labels_key(labels)


def _sort_value(value: float, top: bool) -> float:
    if math.isnan(value):
        return -math.inf if top else math.inf
    return value


_WINDOW_FUNCS: dict[str, Callable[[list[float], float], float]] = {
    "avg_over_time": lambda v, _q: _avg(v),
    "min_over_time": lambda v, _q: _min(v),
    "max_over_time": lambda v, _q: _max(v),
    "stdvar_over_time": lambda v, _q: _stdvar(v),
    "stddev_over_time": lambda v, _q: math.sqrt(_stdvar(v)),
    "quantile_over_time": lambda v, q: quantile(q, v),
    "first_over_time": lambda v, _q: v[0],
    "last_over_time": lambda v, _q: v[-1],
}


def _group_sum(values: list[float]) -> float:
    total = 0.0
    for v in values:
        total += v
    return total


def _group_stdvar(values: list[float]) -> float:
    mean = values[0]
    aux = 0.0
    count = 1
    for v in values[1:]:
        count += 1
        delta = v - mean
        mean += delta / count
        aux += delta * (v - mean)
    return aux / count


_GROUP_FUNCS: dict[str, Callable[[list[float]], float]] = {
    "sum": _group_sum,
    "avg": _avg,
    "min": _min,
    "max": _max,
    "stdvar": _group_stdvar,
    "stddev": lambda v: math.sqrt(_group_stdvar(v)),
}
