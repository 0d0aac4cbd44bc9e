"""Results recorded by notebooks, read back by the runner.

In a notebook::

    import opsbook
    opsbook.record("integrity_ok", True)
    opsbook.record_all(summary)  # every output the notebook declares, in one call

writes a display output with the MIME type :data:`MIME_TYPE` (plus a short
``text/plain`` line for humans). What a notebook records is declared in its metadata
(:mod:`opsbook.outputs`). :func:`results` reads every recorded value back from an
executed notebook; the last value recorded under a name wins.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsbook import outputs
from opsbook.errors import ConfigError, OutputError

if TYPE_CHECKING:  # nbformat (and jsonschema) load only where notebooks are read
    import nbformat

MIME_TYPE = "application/vnd.opsbook.record+json"

_LOCAL: dict[str, Any] = {}


def _jsonable(value: Any) -> Any:
    """Convert numpy/pandas scalars and containers to plain JSON values."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # pandas DataFrame
        return _jsonable(value.to_dict(orient="records"))
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if hasattr(value, "item"):
        return _jsonable(value.item())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise ConfigError(
        f"cannot record a value of type {type(value).__name__}",
        hint="record JSON-serialisable values: numbers, strings, bools, lists, dicts",
    )


def record(name: str, value: Any) -> None:
    """Record ``value`` under ``name`` in the notebook output.

    Outside a kernel the value is kept in memory (see :func:`local_results`).
    """
    if not name or not name.replace("_", "").isalnum():
        raise ConfigError(f"record name {name!r} must be an identifier (letters, digits, _)")
    data = _jsonable(value)
    json.dumps(data)  # fail here, not in the reader
    _LOCAL[name] = data
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return
    if get_ipython() is not None:
        text = json.dumps(data, default=str)
        if len(text) > 200:
            text = text[:197] + "..."
        display(
            {MIME_TYPE: {"name": name, "value": data}, "text/plain": f"{name} = {text}"}, raw=True
        )


def record_all(values: Mapping[str, Any] | None = None, /, **more: Any) -> dict[str, Any]:
    """Record a notebook's declared outputs from ``values`` (and keyword values) in one call.

    In a run, the runner passes the notebook's declaration (``metadata.opsbook.outputs``)
    to the kernel: only declared names are recorded (a summary may hold more keys), and a
    declared output that is missing or of the wrong type raises :class:`OutputError`
    after the others are recorded. Outside a run every given value is recorded.
    Returns what was recorded.

    >>> record_all({"total": 3}, label="sum")  # doctest: +SKIP
    """
    given = {**(values or {}), **more}
    declaration = outputs.from_env()
    chosen = given if declaration is None else {n: v for n, v in given.items() if n in declaration}
    for name, value in chosen.items():
        record(name, value)
    if declaration:
        problems = outputs.mismatches(declaration, {n: _LOCAL[n] for n in chosen})
        if problems:
            raise OutputError(
                "recorded outputs do not match the notebook's declaration: " + "; ".join(problems),
                hint="fix the values passed to record_all or metadata.opsbook.outputs",
            )
    return {name: _LOCAL[name] for name in chosen}


def local_results() -> dict[str, Any]:
    """Values recorded in this process (useful when a notebook runs as a script)."""
    return dict(_LOCAL)


def results_from_notebook(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """Every value recorded in an executed notebook object, last one per name."""
    found: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(MIME_TYPE)
            if payload is None:
                continue
            if isinstance(payload, str):
                payload = json.loads(payload)
            found[payload["name"]] = payload["value"]
    return found


def results(path: str | Path) -> dict[str, Any]:
    """Read the values recorded in the executed notebook at ``path``.

    >>> results("audit/2026-11-28T18-00-00-demo/steps/dry_run/notebook.ipynb")  # doctest: +SKIP
    {'integrity_ok': True, ...}
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no notebook at {path}", hint="pass the path of an executed notebook")
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return results_from_notebook(nb)
