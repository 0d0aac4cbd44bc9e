"""``make mutate-mutmut``: mutmut 3 with its default operators, as a cross-check of run.py.

mutmut 3.8 puts only ``mutants/``, ``mutants/src`` and ``mutants/source`` on ``sys.path``
and names a mutant after its file path less a ``src.`` prefix, so on our ``lib/`` layout
every mutant is named ``lib.opsbook...`` while the tests import ``opsbook...``: it stops
with "could not find any test case for any mutant". This script runs it in a staged copy
(``build/mutmut/``) where ``lib/`` is ``src/``; the configuration is ``[tool.mutmut]`` in
pyproject.toml (which module, which tests). The copy's ``mutants/`` folder is mutmut's
cache: a second run only re-runs what changed; ``--fresh`` starts again.

Usage::

    .venv/bin/python tests/mutation/mutmut_stage.py            # run, then print the score
    .venv/bin/python tests/mutation/mutmut_stage.py --fresh    # drop mutmut's cache first
    .venv/bin/python tests/mutation/mutmut_stage.py --report   # the last run's results
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "build" / "mutmut"


def stage(fresh: bool) -> None:
    """Copy lib/ as src/, tests/ and pyproject.toml into STAGE (mutmut's cache kept)."""
    if fresh and STAGE.exists():
        shutil.rmtree(STAGE)
    STAGE.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for src, dst in ((ROOT / "lib", STAGE / "src"), (ROOT / "tests", STAGE / "tests")):
        shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)
    shutil.copy2(ROOT / "pyproject.toml", STAGE / "pyproject.toml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="drop mutmut's cache first")
    parser.add_argument(
        "--report", action="store_true", help="only print the results of the last run"
    )
    args = parser.parse_args(argv)
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent))
    if mutmut is None:
        print(
            "mutmut is not installed in this venv: .venv/bin/pip install -e '.[mutmut]'",
            file=sys.stderr,
        )
        return 2
    if not args.report:
        stage(args.fresh)
        run = subprocess.run([mutmut, "run", "--max-children", "1"], cwd=STAGE, check=False)
        if run.returncode != 0:
            return run.returncode
    results = subprocess.run(
        [mutmut, "results", "--all", "true"],
        cwd=STAGE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    status = Counter(
        line.rsplit(": ", 1)[1].strip() for line in results.splitlines() if ": " in line
    )
    # judged mutants only: "no tests" (no selected test reaches the function), "not
    # checked" (an interrupted run) and "skipped" are left out of the score
    killed = status["killed"] + status["timeout"] + status["segfault"]
    tested = killed + status["survived"] + status["suspicious"]
    print(f"\nmutmut: {sum(status.values())} mutants, {dict(status)}")
    if tested:
        print(f"mutmut score: {killed} of {tested} tested killed ({100 * killed / tested:.1f}%)")
    for line in results.splitlines():
        if line.strip().endswith(": survived"):
            print(line.strip())
    print(f"details: cd {STAGE.relative_to(ROOT)} && mutmut show <name>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
