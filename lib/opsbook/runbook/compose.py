"""Composed runbooks: a step that runs another runbook (``uses:`` with a ``with:`` mapping).

::

    - id: migration
      uses: runbooks/migrate-chroma-to-qdrant.yaml
      with:
        chroma_path: "{{ params.chroma_path }}"
        work_dir: "{{ run.work_dir }}/migration"

The used runbook's steps run inside the run, in order, under qualified ids
(``migration.dry_run``, ``migration.approve``): their folders are ``steps/<qualified id>/``,
their gates are approved with ``--approve migration.approve``, and later steps read
their results as ``{{ steps.migration.migrate.outputs.integrity_ok }}`` (and
``steps.migration.status``). Inside the used runbook nothing changes: its templates see
its own ``params`` (the rendered ``with:`` values, checked against its declarations) and
its own ``steps``.

A ``uses:`` path is relative to the project root and must stay inside it: absolute
paths, ``..``, symbolic links and cycles of ``uses:`` are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from opsbook.errors import RunbookError
from opsbook.runbook.schema import LoadedRunbook, Step, load
from opsbook.runrecord import nest_steps

__all__ = ["MAX_DEPTH", "RESERVED_IDS", "Composition", "compose", "load_used", "nest_steps"]

#: How deep ``uses:`` may nest (a runbook using a runbook using ...).
MAX_DEPTH = 8
#: Step ids a used runbook may not have: they would shadow ``steps.<id>.status`` and
#: ``steps.<id>.outputs`` of the step that uses it, or a method of the mapping.
RESERVED_IDS = frozenset({"status", "outputs"}) | frozenset(
    name for name in dir(dict) if not name.startswith("_")
)


def resolve_uses(loaded: LoadedRunbook, uses: str) -> Path:
    """The runbook file a ``uses:`` names, refused unless it is a YAML file in the project.

    Refused: absolute paths, ``..``, a symbolic link anywhere below the project root, a
    missing file, a file that is not ``.yaml``/``.yml``.
    """
    root = loaded.root.resolve()
    hint = f"give a path relative to the project root {root}, e.g. runbooks/pubsub-benchmark.yaml"
    if not uses.strip():
        raise RunbookError("uses: is empty", hint=hint)
    if PurePosixPath(uses).is_absolute() or PureWindowsPath(uses).is_absolute() or ":" in uses:
        raise RunbookError(f"uses: {uses!r} is an absolute path", hint=hint)
    parts = PurePosixPath(uses.replace("\\", "/")).parts
    if ".." in parts:
        raise RunbookError(f"uses: {uses!r} leaves the project ('..' is not allowed)", hint=hint)
    if not uses.endswith((".yaml", ".yml")):
        raise RunbookError(f"uses: {uses!r} is not a runbook file (.yaml or .yml)", hint=hint)
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise RunbookError(
                f"uses: {uses!r} goes through the symbolic link {current}; links are refused "
                "so that a runbook cannot reach outside the project",
                hint=hint,
            )
    if not current.is_file():
        raise RunbookError(f"uses: {uses!r} does not exist at {current}", hint=hint)
    resolved = current.resolve()
    if not resolved.is_relative_to(root):  # pragma: no cover - symlinks are refused above
        raise RunbookError(f"uses: {uses!r} resolves outside the project", hint=hint)
    return resolved


def load_used(loaded: LoadedRunbook, step: Step, stack: tuple[Path, ...] = ()) -> LoadedRunbook:
    """Load the runbook ``step`` uses; refuse a cycle or nesting deeper than MAX_DEPTH.

    ``stack`` holds the runbook files above ``loaded`` (outermost first).
    """
    assert step.uses is not None
    path = resolve_uses(loaded, step.uses)
    chain = (*stack, loaded.path.resolve())
    if path in chain:
        names = " -> ".join(p.name for p in (*chain[chain.index(path) :], path))
        raise RunbookError(
            f"uses cycle {names}: a runbook cannot use itself, directly or through another runbook"
        )
    if len(chain) >= MAX_DEPTH:
        raise RunbookError(f"uses nests deeper than {MAX_DEPTH} runbooks")
    child = load(path)
    child.root = loaded.root
    return child


@dataclass
class Composition:
    """A runbook with the runbooks its ``uses:`` steps run, loaded recursively."""

    loaded: LoadedRunbook
    children: dict[str, Composition] = field(default_factory=dict)

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Step, Composition]]:
        """Every step in run order as ``(qualified id, step, its composition)``; a
        ``uses:`` step comes before the steps of the runbook it uses."""
        for step in self.loaded.runbook.steps:
            qid = prefix + step.id
            yield qid, step, self
            if step.uses is not None:
                yield from self.children[step.id].walk(qid + ".")

    def gate_ids(self) -> list[str]:
        """Qualified ids of every approval gate, used runbooks included."""
        return [qid for qid, step, _ in self.walk() if step.is_gate]

    def secrets(self) -> list[Any]:
        """Every declared secret of the runbook and the runbooks it uses (first wins)."""
        seen: dict[str, Any] = {}
        for comp in [self, *self.descendants()]:
            for secret in comp.loaded.runbook.secrets:
                seen.setdefault(secret.env, secret)
        return list(seen.values())

    def descendants(self) -> list[Composition]:
        found = []
        for child in self.children.values():
            found += [child, *child.descendants()]
        return found


def compose(loaded: LoadedRunbook, stack: tuple[Path, ...] = ()) -> Composition:
    """Load every runbook ``loaded`` uses, recursively (cycles and escapes refused)."""
    comp = Composition(loaded)
    for step in loaded.runbook.steps:
        if step.uses is not None:
            child = load_used(loaded, step, stack)
            comp.children[step.id] = compose(child, (*stack, loaded.path.resolve()))
    return comp
