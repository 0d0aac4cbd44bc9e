"""What must be true to approve a gate, computed from the dry run.

Every runbook follows the same pattern: dry run -> look -> approve -> apply. A
:class:`Checklist` is the "look" part written down: each :class:`Check` is a condition
phrased so that *yes* supports approving, whether it holds in this dry run, and the
numbers or names behind the answer. The domains build theirs from their dry-run objects
(``opsbook.archive.checklist``, ``opsbook.migrate.checklist``, ``opsbook.loki.checklist``);
the notebook shows it in the cell before the gate.

>>> ready = Checklist("Archive 2 apps", [Check("nothing depends on them", True, "0 dependants")])
>>> ready.ok
True
>>> print(ready.markdown())
**Before approving: Archive 2 apps**
<BLANKLINE>
- [x] nothing depends on them: 0 dependants
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: How a check reads: holds, does not hold, or cannot be decided from the dry run.
MARKS = {True: "x", False: " ", None: "?"}


@dataclass(frozen=True)
class Check:
    """One condition for approving: ``ok`` is True (holds), False (does not) or None (the
    dry run cannot tell: a person has to look, e.g. no known incidents to score)."""

    what: str
    ok: bool | None
    detail: str = ""

    def line(self) -> str:
        """``- [x] what: detail`` (``[ ]`` fails, ``[?]`` look by hand)."""
        detail = f": {self.detail}" if self.detail else ""
        return f"- [{MARKS[self.ok]}] {self.what}{detail}"


class Checklist:
    """The checks of one gate, in the order a reviewer should read them."""

    def __init__(self, gate: str, checks: Iterable[Check]) -> None:
        self.gate = gate
        self.checks = list(checks)

    def __repr__(self) -> str:
        return f"Checklist({self.gate!r}, {len(self.checks)} checks, ok={self.ok})"

    @property
    def ok(self) -> bool:
        """No check fails (checks that need a person's eye do not count against it)."""
        return all(check.ok is not False for check in self.checks)

    @property
    def failing(self) -> list[Check]:
        return [check for check in self.checks if check.ok is False]

    @property
    def to_look_at(self) -> list[Check]:
        return [check for check in self.checks if check.ok is None]

    def markdown(self) -> str:
        """A Markdown task list headed by the gate."""
        lines = [f"**Before approving: {self.gate}**", ""]
        lines += [check.line() for check in self.checks]
        if self.failing:
            lines += ["", f"**{len(self.failing)} check(s) fail: do not approve as is.**"]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:  # Jupyter shows the list when a cell ends with it
        return self.markdown()

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready row per check (``ok`` is true, false or null)."""
        return [{"check": c.what, "ok": c.ok, "detail": c.detail} for c in self.checks]
