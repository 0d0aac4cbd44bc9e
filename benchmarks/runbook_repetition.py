"""Repeated parameter lines in the runbooks, now and at a git revision.

A parameter line is a line inside a step's ``parameters:`` or ``with:`` block or the
runbook's ``defaults: parameters:``; it is repeated when the same text (stripped) is
another parameter line of the same file. Issue 14 counted 48 of 70 in
p0-platform-hardening.yaml before the P0 runbook composed the domain runbooks.

    python benchmarks/runbook_repetition.py                 # the working tree
    python benchmarks/runbook_repetition.py --before 9cb19bd  # side by side with a revision
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parameter_lines(text: str) -> list[str]:
    """The stripped lines inside indented ``parameters:`` / ``with:`` blocks."""
    found: list[str] = []
    block_indent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if not stripped or stripped.startswith("#"):
                continue
            if indent > block_indent:
                found.append(stripped)
                continue
            block_indent = None
        if stripped in ("parameters:", "with:") and indent > 0:
            block_indent = indent
    return found


def repetition(text: str) -> tuple[int, int]:
    """(repeated parameter lines, parameter lines)."""
    lines = parameter_lines(text)
    counts = Counter(lines)
    return sum(1 for line in lines if counts[line] > 1), len(lines)


def texts_at(rev: str | None) -> dict[str, str]:
    if rev is None:
        return {p.name: p.read_text(encoding="utf-8") for p in sorted(ROOT.glob("runbooks/*.yaml"))}
    names = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", rev, "runbooks/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        Path(name).name: subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for name in names
        if name.endswith(".yaml")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a git revision to compare with")
    args = parser.parse_args(argv)
    now = texts_at(None)
    before = texts_at(args.before) if args.before else {}
    columns = ([f"before ({args.before})"] if before else []) + ["now"]
    print(f"{'runbook':<34}" + "".join(f"{c:>24}" for c in columns))
    totals = {c: [0, 0] for c in columns}
    for name in sorted(set(now) | set(before)):
        cells = []
        for column in columns:
            texts = now if column == "now" else before
            if name not in texts:
                cells.append("-")
                continue
            repeated, total = repetition(texts[name])
            totals[column][0] += repeated
            totals[column][1] += total
            cells.append(f"{repeated} of {total} repeat")
        print(f"{name:<34}" + "".join(f"{c:>24}" for c in cells))
    cells = [f"{totals[c][0]} of {totals[c][1]} repeat" for c in columns]
    print(f"{'all runbooks':<34}" + "".join(f"{c:>24}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
