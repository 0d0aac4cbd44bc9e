"""Markdown reference for every runbook, pasted into the README (a test keeps them in step).

python -m opsbook.docs > /tmp/runbooks.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from opsbook import runbook as rb


def runbook_markdown(path: Path) -> str:
    loaded = rb.load(path)
    book = loaded.runbook
    lines = [f"### `runbooks/{path.name}`", "", " ".join(book.description.split()), ""]
    lines += ["| parameter | type | default | help |", "|---|---|---|---|"]
    for name, spec in book.parameters.items():
        default = "*required*" if spec.required else f"`{spec.default!r}`"
        kind = spec.type + (f" ({', '.join(map(str, spec.allowed))})" if spec.allowed else "")
        if spec.min is not None or spec.max is not None:
            kind += f" {_bound(spec.min)}..{_bound(spec.max)}"
        lines.append(f"| `{name}` | {kind} | {default} | {spec.help} |")
    if book.secrets:
        lines += [
            "",
            "Secrets (environment variable names): "
            + ", ".join(f"`{s.env}` ({s.help})" for s in book.secrets),
        ]
    lines += ["", f"Steps: {_steps(rb.compose(loaded))}", ""]
    return "\n".join(lines)


def _steps(composition: rb.Composition, prefix: str = "") -> str:
    """``**audit** → **approve** (approval gate)``; a ``uses:`` step lists the steps it runs
    under their qualified ids (the ids ``--approve`` takes)."""
    shown = []
    for step in composition.loaded.runbook.steps:
        qid = prefix + step.id
        if step.is_gate:
            shown.append(f"**{qid}** (approval gate)")
        elif step.uses is not None:
            inner = _steps(composition.children[step.id], qid + ".")
            shown.append(f"**{qid}** (uses `{step.uses}`: {inner})")
        else:
            shown.append(f"**{qid}**")
    return " → ".join(shown)


def _bound(value: float | None) -> str:
    if value is None:
        return ""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def main() -> int:
    root = Path.cwd()
    for path in rb.discover(root):
        print(runbook_markdown(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
