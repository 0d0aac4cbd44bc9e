"""Time parsing shared by the LogQL engine and the Loki HTTP client.

Loki accepts nanosecond epochs, float seconds and RFC3339; durations use Prometheus
units (``ms``, ``s``, ``m``, ``h``, ``d``, ``w``, ``y``) and may be compound (``1h30m``).
Everything inside opsbook is an ``int`` of nanoseconds since the epoch, UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from opsbook.errors import ConfigError

NS_PER_S = 1_000_000_000

_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86400 * NS_PER_S,
    "w": 7 * 86400 * NS_PER_S,
    "y": 365 * 86400 * NS_PER_S,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> int:
    """Parse a duration such as ``5m``, ``1h30m`` or ``250ms`` into nanoseconds.

    >>> parse_duration("1m30s")
    90000000000
    """
    text = text.strip()
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ConfigError(
            f"invalid duration {text!r}", hint="use forms like 30s, 5m, 1h30m, 250ms, 1d"
        )
    return int(round(total))


def to_ns(value: Any) -> int:
    """Convert a time (ns int, float/int seconds, RFC3339 string, datetime) to epoch ns.

    Integers above 1e15 are taken as nanoseconds (as Loki does), smaller numbers as
    seconds. ``"now"`` is the current time.

    >>> to_ns("2026-11-28T00:00:00Z")
    1795824000000000000
    """
    if isinstance(value, bool):
        raise ConfigError(f"invalid time {value!r}")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000
    if hasattr(value, "value") and hasattr(value, "tz_localize"):  # pandas Timestamp
        return int(value.value)
    if isinstance(value, int):
        return value if abs(value) > 10**15 else value * NS_PER_S
    if isinstance(value, float):
        return int(round(value * NS_PER_S)) if abs(value) < 10**15 else int(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "now":
            return int(datetime.now(UTC).timestamp() * NS_PER_S)
        if re.fullmatch(r"-?\d+", text):
            return to_ns(int(text))
        if re.fullmatch(r"-?\d+\.\d*", text):
            return to_ns(float(text))
        return _parse_rfc3339(text)
    raise ConfigError(f"invalid time {value!r}", hint="use RFC3339, epoch seconds or epoch ns")


def _parse_rfc3339(text: str) -> int:
    match = re.fullmatch(r"(.*?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", text)
    if not match:
        try:
            return to_ns(datetime.fromisoformat(text))
        except ValueError:
            raise ConfigError(
                f"invalid time {text!r}",
                hint="use RFC3339 (2026-11-28T10:00:00Z), epoch seconds or epoch ns",
            ) from None
    base, frac, zone = match.groups()
    parsed = datetime.fromisoformat(base + (zone or "+00:00").replace("Z", "+00:00"))
    ns = to_ns(parsed)
    if frac:
        ns += int((frac[1:] + "000000000")[:9])
    return ns


def ns_to_rfc3339(ns: int) -> str:
    """Format epoch ns as RFC3339 with nanosecond precision (``...Z``)."""
    seconds, rem = divmod(ns, NS_PER_S)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{rem:09d}Z" if rem else f"{base}Z"
