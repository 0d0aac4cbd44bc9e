"""Runner overhead per step: `opsbook run` (papermill + kernel + record + reports) against
the same notebook code run as a plain Python script, side by side in one run.

    .venv/bin/python benchmarks/runner_overhead.py [--repeats 5]

Prints per-step wall time for each way and the overhead (absolute and as a ratio).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from opsbook import execute

PARAMS = "n = 200000  # work size\n"
CELLS = [
    "import math\nimport opsbook",
    "total = sum(math.sqrt(i) for i in range(n))",
    'opsbook.record("total", total)',
]


def make_project(root: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    param = nbformat.v4.new_code_cell(PARAMS)
    param.metadata["tags"] = ["parameters"]
    nb.cells = [param, *(nbformat.v4.new_code_cell(c) for c in CELLS)]
    (root / "notebooks").mkdir(parents=True)
    (root / "runbooks").mkdir()
    nbformat.write(nb, root / "notebooks" / "work.ipynb")
    (root / "script.py").write_text(PARAMS + "\n".join(CELLS) + "\n")
    runbook = root / "runbooks" / "one.yaml"
    runbook.write_text("name: one\nsteps:\n  - id: work\n    notebook: notebooks/work.ipynb\n")
    return runbook


def time_script(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(root / "script.py")], check=True, cwd=root)
    return time.perf_counter() - start


def time_runner(runbook: Path, audit_dir: Path) -> tuple[float, float]:
    options = execute.RunOptions(root=audit_dir, progress_bar=False, echo=lambda _: None)
    start = time.perf_counter()
    result = execute.run(runbook, {}, options)
    wall = time.perf_counter() - start
    assert result.status == "succeeded", result.data
    return wall, result.data["steps"][0]["duration_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["OPSBOOK_WORK_DIR"] = str(root / "work")
        runbook = make_project(root)
        time_runner(runbook, root / "audit")  # warm the OS caches once
        scripts, runs, steps = [], [], []
        for _ in range(args.repeats):
            scripts.append(time_script(root))
            wall, step = time_runner(runbook, root / "audit")
            runs.append(wall)
            steps.append(step)
    script, run, step = (statistics.median(x) for x in (scripts, runs, steps))
    print(f"repeats: {args.repeats} (medians)")
    print(f"plain python script          : {script:7.2f} s")
    print(
        f"papermill step (kernel+exec) : {step:7.2f} s   ratio {step / script:5.1f}x  "
        f"overhead {step - script:+.2f} s"
    )
    print(
        f"whole opsbook run (1 step)   : {run:7.2f} s   ratio {run / script:5.1f}x  "
        f"overhead {run - script:+.2f} s (adds record, reports, ledger, index)"
    )


if __name__ == "__main__":
    main()
