"""opsbook: parameterised Jupyter runbooks with an immutable audit trail."""

from opsbook.errors import OpsbookError
from opsbook.record import MIME_TYPE, record, record_all, results

__all__ = [
    "MIME_TYPE",
    "OpsbookError",
    "approve",
    "attach",
    "record",
    "record_all",
    "results",
    "__version__",
]
__version__ = "0.1.0"


def approve(by: str, note: str = "") -> dict:
    """Approve the next production change from this kernel (see :mod:`opsbook.actions`)."""
    from opsbook.actions import approve as _approve

    return _approve(by, note)


def attach(notebook: str | None = None, action_ids: list[str] | None = None) -> str:
    """Seal this (saved) notebook beside the action records it produced (see
    :mod:`opsbook.attach`); returns the attachment record's id."""
    from opsbook.attach import attach as _attach

    return _attach(notebook, action_ids)


def _show_figures_inline() -> None:
    """In a Jupyter kernel, display matplotlib ``Figure`` objects as PNG images.

    Library charts return ``matplotlib.figure.Figure`` without going through pyplot, and
    IPython only registers the PNG formatter for figures once pyplot's inline backend is
    activated; without this a chart shows up as ``<Figure size 800x600>`` in notebooks and
    reports. The formatter is registered by the class's *name*, as IPython's
    ``select_figure_formats(shell, {"png"}, bbox_inches="tight")`` would register the
    class: importing matplotlib here made every ``import opsbook`` in a kernel (every
    runbook step) import matplotlib and tear it down at exit, charts or not.
    """
    import sys
    from functools import partial

    if "IPython" not in sys.modules:
        return
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:  # pragma: no cover
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    png = shell.display_formatter.formatters["image/png"]
    png.for_type_by_name(
        "matplotlib.figure",
        "Figure",
        partial(print_figure, fmt="png", base64=True, bbox_inches="tight"),
    )


_show_figures_inline()
