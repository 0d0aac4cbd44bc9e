"""Child process that executes one notebook with papermill.

The runner starts ``python -m opsbook._child SPEC.json`` so that a hung or dead kernel
can be killed with its whole process tree when a step's ``timeout_s`` runs out, and so
that the runner's terminal shows papermill's progress bar. The child writes its
outcome to ``SPEC.json``'s ``result_path``: status, error name, value and cell index.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any


def _outcome(exc: BaseException | None) -> dict[str, Any]:
    if exc is None:
        return {"status": "succeeded"}
    import papermill.exceptions as pmx

    if isinstance(exc, pmx.PapermillExecutionError):
        return {
            "status": "failed",
            "ename": exc.ename,
            "evalue": exc.evalue,
            "cell_index": exc.cell_index,
            "exec_count": exc.exec_count,
        }
    return {
        "status": "failed",
        "ename": type(exc).__name__,
        "evalue": str(exc)[:2000],
        "cell_index": None,
    }


LOG_PREFIX = "│ "


class _PrefixedFormatter(logging.Formatter):
    """Prefix every line of papermill's log (cell output included) so the runner can tell
    it apart from the progress bar and show it only with ``--log-output``."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(LOG_PREFIX + line for line in super().format(record).splitlines())


def _log_to_stdout() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_PrefixedFormatter("%(message)s"))
    logger = logging.getLogger("papermill")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    _log_to_stdout()
    import papermill

    error: BaseException | None = None
    try:
        papermill.execute_notebook(
            spec["input"],
            spec["output"],
            parameters=spec["parameters"],
            kernel_name=spec.get("kernel_name"),
            cwd=spec.get("cwd"),
            log_output=spec.get("log_output", True),
            progress_bar=spec.get("progress_bar", True),
            execution_timeout=spec.get("cell_timeout"),
            start_timeout=spec.get("start_timeout", 120),
        )
    except Exception as exc:  # every failure is reported to the parent, never swallowed
        error = exc
    outcome = _outcome(error)
    Path(spec["result_path"]).write_text(json.dumps(outcome), encoding="utf-8")
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
