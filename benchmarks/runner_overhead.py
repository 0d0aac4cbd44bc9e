"""Runner overhead per step: `opsbook run` (papermill + kernel + record + reports) against
the same notebook code run as a plain Python script, side by side in one run.

    .venv/bin/python benchmarks/runner_overhead.py [--repeats 5] [--steps 4]

The runbook chains ``--steps`` copies of one small notebook. Each repeat runs the plain
script, then the runbook with each next step's child and kernel started while the step
before it runs (the default) and without (``RunOptions(start_ahead=False)``, as before),
so that both are measured under the same load. Prints, per step, the step's own time in
the record (kernel + execution) and the whole run's time divided by the steps (adds the
record, reports, ledger, index), each with its overhead over the plain script (absolute
and as a ratio). On a shared machine, wall times swell with the load; the CPU seconds
per step (runner, children and kernels; from ``getrusage``) are the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def cpu_seconds() -> float:
    """CPU time of this process and of every child (and grandchild) reaped so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_script(root: Path) -> tuple[float, float]:
    """Wall and CPU seconds of the plain script."""
    start, cpu = time.perf_counter(), cpu_seconds()
    subprocess.run([sys.executable, str(root / "script.py")], check=True, cwd=root)
    return time.perf_counter() - start, cpu_seconds() - cpu


def time_runner(runbook: Path, audit_dir: Path, ahead: bool) -> tuple[float, float, list[float]]:
    """The whole run's wall and CPU seconds and each step's recorded duration."""
    options = execute.RunOptions(
        root=audit_dir, progress_bar=False, echo=lambda _: None, start_ahead=ahead
    )
    start, cpu = time.perf_counter(), cpu_seconds()
    result = execute.run(runbook, {}, options)
    wall = time.perf_counter() - start
    assert result.status == "succeeded", result.data
    return wall, cpu_seconds() - cpu, [step["duration_s"] for step in result.data["steps"]]


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
        script_cpus: list[float] = []
        figures: dict[str, list[float]] = {}
        cpus: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            script_wall, script_cpu = time_script(root)
            scripts.append(script_wall)
            script_cpus.append(script_cpu)
            for ahead in (True, False):
                wall, cpu, durations = time_runner(runbook, root / "audit", ahead)
                how = "started ahead" if ahead else "not ahead"
                figures.setdefault(f"step 1, {how}", []).append(durations[0])
                figures.setdefault(f"steps 2.., {how}", []).extend(durations[1:])
                figures.setdefault(f"whole run / steps, {how}", []).append(wall / args.steps)
                cpus.setdefault(f"CPU / steps, {how}", []).append(cpu / args.steps)
    script = statistics.median(scripts)
    script_cpu = statistics.median(script_cpus)
    print(f"repeats: {args.repeats}, {args.steps} steps per run (medians); load {_load()}")
    print(f"plain python script              : {script:7.2f} s  (CPU {script_cpu:.2f} s)")
    for table, base in ((figures, script), (cpus, script_cpu)):
        for label in sorted(table, key=lambda k: (k.split(",")[0], "not" in k)):
            value = statistics.median(table[label])
            print(
                f"{label:<33}: {value:7.2f} s   ratio {value / base:5.1f}x  "
                f"overhead {value - base:+.2f} s"
            )
    print(
        "(steps: kernel + execution as recorded; whole run adds record, reports, ledger, index;"
        " CPU: runner, children and kernels, against the script's CPU)"
    )


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


if __name__ == "__main__":
    main()
