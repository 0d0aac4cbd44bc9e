"""``import opsbook`` in an IPython kernel: figures show as PNG, matplotlib loads later."""

from __future__ import annotations

import json
import subprocess
import sys

IN_A_SHELL = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
import opsbook

before = sorted(m for m in ("matplotlib", "nbformat") if m in sys.modules)
from matplotlib.figure import Figure

fig = Figure(figsize=(2, 1))
fig.subplots().plot([1, 2])
data, _ = shell.display_formatter.format(fig)
print(json.dumps({"before": before, "formats": sorted(data)}))
"""


def test_import_in_a_kernel_loads_no_matplotlib_and_figures_still_show_as_png() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IN_A_SHELL], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.splitlines()[-1]) == {
        "before": [],
        "formats": ["image/png", "text/plain"],
    }
