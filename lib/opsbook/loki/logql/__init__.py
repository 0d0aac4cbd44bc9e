"""An embedded LogQL engine: lexer, parser, pipeline stages and evaluator.

``parse(text)`` gives the syntax tree; :class:`opsbook.loki.local.LocalLogs` runs queries
over exported logs. Errors: :class:`LogQLParseError` (with ``line``/``column``),
:class:`UnsupportedLogQL` and :class:`LogQLEvalError`.
"""

from opsbook.loki.logql.errors import LogQLEvalError, LogQLParseError, UnsupportedLogQL
from opsbook.loki.logql.evaluator import format_value
from opsbook.loki.logql.parser import parse

__all__ = ["LogQLEvalError", "LogQLParseError", "UnsupportedLogQL", "format_value", "parse"]
