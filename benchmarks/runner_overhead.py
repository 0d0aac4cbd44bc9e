"""Runner overhead per step: `opsbook run` (papermill + kernel + record + reports) against
the same notebook code run as a plain Python script, side by side in one run.

    .venv/bin/python benchmarks/runner_overhead.py [--repeats 5] [--steps 4]

The runbook chains ``--steps`` copies of one small notebook. Each repeat runs the plain
script, then the runbook with each next step's child and kernel started while the step
before it runs (the default) and without (``RunOptions(start_ahead=False)``, as before),
so that both are measured under the same load. Prints, per step, the step's own time in
the record (kernel + execution) and the whole run's time divided by the steps (adds the
record, reports, ledger, index), each with its overhead over the plain script (absolute
and as a ratio).
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


def make_project(root: Path, steps: int) -> Path:
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
    lines = ["name: chain", "steps:"]
    for index in range(steps):
        lines += [f"  - id: work{index}", "    notebook: notebooks/work.ipynb"]
    runbook.write_text("\n".join(lines) + "\n")
    return runbook


def time_script(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(root / "script.py")], check=True, cwd=root)
    return time.perf_counter() - start


def time_runner(runbook: Path, audit_dir: Path, ahead: bool) -> tuple[float, list[float]]:
    """The whole run's wall time and each step's recorded duration."""
    options = execute.RunOptions(
        root=audit_dir, progress_bar=False, echo=lambda _: None, start_ahead=ahead
    )
    start = time.perf_counter()
    result = execute.run(runbook, {}, options)
    wall = time.perf_counter() - start
    assert result.status == "succeeded", result.data
    return wall, [step["duration_s"] for step in result.data["steps"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="notebook steps per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["OPSBOOK_WORK_DIR"] = str(root / "work")
        runbook = make_project(root, args.steps)
        time_runner(runbook, root / "audit", True)  # warm the OS caches once
        scripts: list[float] = []
        figures: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            scripts.append(time_script(root))
            for ahead in (True, False):
                wall, durations = time_runner(runbook, root / "audit", ahead)
                how = "started ahead" if ahead else "not ahead"
                figures.setdefault(f"step 1, {how}", []).append(durations[0])
                figures.setdefault(f"steps 2.., {how}", []).extend(durations[1:])
                figures.setdefault(f"whole run / steps, {how}", []).append(wall / args.steps)
    script = statistics.median(scripts)
    print(f"repeats: {args.repeats}, {args.steps} steps per run (medians); load {_load()}")
    print(f"plain python script              : {script:7.2f} s")
    for label in sorted(figures, key=lambda k: (k.split(",")[0], "not" in k)):
        value = statistics.median(figures[label])
        print(
            f"{label:<33}: {value:7.2f} s   ratio {value / script:5.1f}x  "
            f"overhead {value - script:+.2f} s"
        )
    print("(steps: kernel + execution as recorded; whole run adds record, reports, ledger, index)")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


if __name__ == "__main__":
    main()
