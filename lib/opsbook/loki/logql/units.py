"""Go-compatible parsing of durations, byte sizes and numbers used by LogQL.

Loki parses label values with Go's ``time.ParseDuration``, ``humanize.ParseBytes`` and
``strconv.ParseFloat``; range literals additionally accept Prometheus units (``d``, ``w``,
``y``). These helpers reproduce those rules so label filters and ``unwrap`` behave the same.
"""

from __future__ import annotations

import math
import re

_GO_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_GO_PART = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")
_PROM_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_PROM_UNITS = (
    365 * 86400 * 10**9,
    7 * 86400 * 10**9,
    86400 * 10**9,
    3600 * 10**9,
    60 * 10**9,
    10**9,
    10**6,
)

_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "ki": 2**10,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mi": 2**20,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gi": 2**30,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "ti": 2**40,
    "tib": 2**40,
    "p": 10**15,
    "pb": 10**15,
    "pi": 2**50,
    "pib": 2**50,
    "e": 10**18,
    "eb": 10**18,
    "ei": 2**60,
    "eib": 2**60,
}
_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.I
)


def go_duration_ns(text: str) -> int | None:
    """Parse like Go's ``time.ParseDuration``; ``None`` when Go would fail."""
    s = text
    sign = 1
    if s[:1] and s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    pos = 0
    total = 0.0
    while pos < len(s):
        match = _GO_PART.match(s, pos)
        if not match or match.group(1) in ("", "."):
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return sign * int(round(total))


def prom_duration_ns(text: str) -> int | None:
    """Parse like Prometheus ``model.ParseDuration`` (ordered integer units)."""
    if text == "0":
        return 0
    match = _PROM_DURATION.fullmatch(text)
    if not match or not text:
        return None
    return sum(int(g) * u for g, u in zip(match.groups(), _PROM_UNITS, strict=True) if g)


def logql_duration_ns(text: str) -> int | None:
    """A LogQL duration literal: Go syntax first, then Prometheus syntax (``1d``, ``2w``)."""
    value = go_duration_ns(text)
    return value if value is not None else prom_duration_ns(text)


def parse_bytes(text: str) -> int | None:
    """Parse like go-humanize ``ParseBytes`` (``10KB`` = 10000, ``1KiB`` = 1024)."""
    digits = 0
    for ch in text:
        if not (ch.isdigit() or ch in ".,"):
            break
        digits += 1
    number = text[:digits].replace(",", "")
    try:
        value = float(number)
    except ValueError:
        return None
    mult = _BYTE_UNITS.get(text[digits:].strip().lower())
    if mult is None:
        return None
    value *= mult
    if value >= 2.0**64:
        return None
    return int(value)


_PLAIN_START = frozenset("0123456789-+.")


def parse_float(text: str) -> float | None:
    """Parse like Go's ``strconv.ParseFloat(s, 64)`` (no surrounding spaces allowed)."""
    if text and text[-1].isdigit() and text[0] in _PLAIN_START and "_" not in text:
        try:
            return float(text)
        except ValueError:
            return None
    if not _GO_FLOAT.fullmatch(text) or "__" in text or text.endswith("_"):
        return None
    if "_" in text:  # Go only accepts underscores with a base prefix
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isinf(value) and "inf" not in text.lower():
        return None  # Go reports a range error for overflow
    return value
