"""Time to write a step's two reports (report.html, full.html) and a run page, in one run.

    .venv/bin/python benchmarks/report_pages.py [--repeat 7] [--cells 12]

Builds an executed-looking notebook (text, a table and a PNG per cell, a recorded value)
and times, in the same process:

* ``step_reports`` with a fresh nbconvert exporter each time (the baseline: what every
  step paid when each report built its own exporter, and what the first step of a run
  still pays),
* ``step_reports`` with the exporters kept (what every later step of a run pays),
* ``run_page`` (a Jinja template over the typed record, no nbconvert).

Prints medians and the ratio to the baseline; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat

from opsbook import report, runrecord
from opsbook.record import MIME_TYPE


def _png() -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    fig.subplots().plot(range(10))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def make_notebook(path: Path, cells: int) -> Path:
    png = _png()
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# A step\n\nWhat it does."))
    for i in range(cells):
        cell = nbformat.v4.new_code_cell(f"x{i} = {i}\nprint(x{i})")
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text=f"{i}\n" * 20),
            nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "fig"}),
        ]
        nb.cells.append(cell)
    record = nbformat.v4.new_code_cell('opsbook.record("total", 3)')
    record.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={MIME_TYPE: {"name": "total", "value": 3}, "text/plain": "total = 3"},
        )
    ]
    nb.cells.append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cells", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        nb_path = make_notebook(folder / "steps" / "s" / "notebook.ipynb", args.cells)
        run = runrecord.parse_run(
            {
                "run_id": "bench",
                "status": "succeeded",
                "runbook": {"name": "bench", "sha256": "0" * 64},
                "user": "bench@host",
                "steps": [{"id": "s", "status": "succeeded", "outputs": {"total": 3}}],
            }
        )
        step = run.steps[0]

        def fresh() -> None:
            report._exporter.cache_clear()
            report.step_reports(nb_path, step, run)

        report.step_reports(nb_path, step, run)  # imports
        baseline = _median(fresh, args.repeat)
        report.step_reports(nb_path, step, run)
        kept = _median(lambda: report.step_reports(nb_path, step, run), args.repeat)
        page = _median(lambda: report.run_page(folder, run), args.repeat)
    print(f"notebook: {args.cells} code cells with text and a PNG each; {args.repeat} repeats")
    print(f"{'step_reports, fresh exporters (baseline)':44} {baseline:7.3f} s   1.00x")
    print(f"{'step_reports, exporters kept':44} {kept:7.3f} s   {kept / baseline:.2f}x")
    print(f"{'run_page':44} {page:7.3f} s   {page / baseline:.2f}x")


if __name__ == "__main__":
    main()
