"""Errors raised by the LogQL engine.

Parse errors carry the 1-based line and column of the offending token, like Loki's
``parse error at line 1, col 12: ...``. Constructs the engine does not implement raise
:class:`UnsupportedLogQL` (never a silently different answer). Conditions that make Loki
fail a query at evaluation time (for example an ``unwrap`` conversion error that was not
filtered with ``| __error__=""``) raise :class:`LogQLEvalError`.
"""

from __future__ import annotations

from opsbook.errors import ConfigError


class LogQLParseError(ConfigError):
    """The query text is not valid LogQL; ``line``/``column`` point at the problem."""

    def __init__(self, message: str, line: int = 0, column: int = 0, *, hint: str | None = None):
        self.line = line
        self.column = column
        self.reason = message
        where = f"parse error at line {line}, col {column}: " if line else "parse error : "
        super().__init__(where + message, hint=hint or "check the query against the LogQL docs")


class UnsupportedLogQL(ConfigError):
    """Valid LogQL that this engine does not evaluate (named construct and position)."""

    def __init__(self, construct: str, line: int = 0, column: int = 0):
        self.construct = construct
        self.line = line
        self.column = column
        where = f" at line {line}, col {column}" if line else ""
        super().__init__(
            f"unsupported LogQL construct {construct!r}{where}",
            hint="rewrite the query without it, or run it against a live Loki (LokiHTTP)",
        )


class LogQLEvalError(ConfigError):
    """Loki would fail this query at evaluation time (pipeline error, limits, types)."""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message, hint=hint)
