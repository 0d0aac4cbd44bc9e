"""Loki: LogQL over a live Loki or exported logs, dashboards and alert backtests.

Modules, one job each:

* :mod:`opsbook.loki.http`: :class:`LokiHTTP`, the client for a live Loki;
* :mod:`opsbook.loki.local`: ``LocalLogs``, the embedded LogQL engine over exported logs;
* :mod:`opsbook.loki.source`: :func:`open_source` picks one, ``*_frame`` helpers query it;
* :mod:`opsbook.loki.frames`: Loki ``data`` objects → tidy pandas frames;
* :mod:`opsbook.loki.simulate`: a deterministic day of logs with known incidents;
* :mod:`opsbook.loki.rules`: ruler YAML load / validate / write;
* :mod:`opsbook.loki.backtest`: replay rules like the ruler, sweep and tune thresholds;
* :mod:`opsbook.loki.dashboards`: panel queries and charts;
* :mod:`opsbook.loki.approval`: :func:`checklist`, what must hold before tuned thresholds
  are approved.

Names are imported lazily so ``import opsbook.loki`` stays cheap. Functions named like
their module (``simulate``, ``backtest``) are not re-exported: import them from the module.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "LokiHTTP": "opsbook.loki.http",
    "LocalLogs": "opsbook.loki.local",
    "open_source": "opsbook.loki.source",
    "metric_frame": "opsbook.loki.source",
    "logs_frame": "opsbook.loki.source",
    "instant_frame": "opsbook.loki.source",
    "to_frame": "opsbook.loki.frames",
    "load_rules": "opsbook.loki.rules",
    "write_rules": "opsbook.loki.rules",
    "checklist": "opsbook.loki.approval",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'opsbook.loki' has no attribute {name!r}")
    return getattr(import_module(module), name)
