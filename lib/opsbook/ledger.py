"""Where ledger entries live: a small interface and the default file backend.

The ledger is an append-only list of entries, one per sealed record. Each entry is a
JSON object holding at least ``seq`` (1, 2, ...), ``prev`` (the previous entry's
``hash``), ``hash`` and, when a signing key was configured, ``key`` and ``signature``
(see :mod:`opsbook.signing`). The backend only stores entries; building, hashing and
signing them is :mod:`opsbook.audit`'s job.

A backend implements three methods:

``append(build) -> entry``
    Take the backend's exclusive lock (a file lock, a database transaction with a row
    lock...), read the current head entry, call ``build(head)`` with it (``None`` for
    an empty ledger) and store the dict it returns, atomically, as the new last entry.
    ``build`` may raise: then nothing is stored and the lock is released. Two
    concurrent ``append`` calls must never see the same head. Returns the stored entry.
``entries() -> list[dict]``
    Every entry, oldest first. A stored entry that cannot be parsed comes back as
    ``{"_unreadable": <raw text>, "_line": <1-based position>}`` so that verification
    can name it instead of crashing.
``describe() -> str``
    One line naming where the ledger lives (for messages: "ledger file /x/ledger.jsonl").

:func:`open_ledger` picks the backend for an audit root; the file backend is the
default. Other backends register a URL scheme with :func:`register_backend` and are
chosen with ``OPSBOOK_LEDGER_URL=<url>``; ``postgresql://`` loads
:mod:`opsbook.ledger_pg` (a team ledger many machines append to). A backend may also
have ``preflight()``, called by :func:`preflight` before a run writes anything.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from opsbook.errors import ConfigError

Entry = dict[str, Any]
Build = Callable[[Entry | None], Entry]

LEDGER_FILE = "ledger.jsonl"
LOCK_FILE = ".ledger.lock"


class Ledger(Protocol):
    """An append-only, ordered store of ledger entries (see the module docstring)."""

    def append(self, build: Build) -> Entry:
        """Store ``build(head)`` as the new last entry under the backend's lock."""
        ...

    def entries(self) -> list[Entry]:
        """Every entry, oldest first (unparseable ones as ``_unreadable`` markers)."""
        ...

    def describe(self) -> str:
        """Where the ledger lives, for messages."""
        ...


def _canonical_line(entry: Entry) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class FileLedger:
    """``<root>/ledger.jsonl``: one canonical JSON object per line, appended under flock."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / LEDGER_FILE

    def describe(self) -> str:
        return f"ledger file {self.path}"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        found: list[Entry] = []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = None
            found.append(
                entry if isinstance(entry, dict) else {"_unreadable": line, "_line": number}
            )
        return found

    def head(self) -> Entry | None:
        """The last entry, read from the end of the file (sealing stays O(1) in its length)."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            chunk = 4096
            while True:
                start = max(0, size - chunk)
                fh.seek(start)
                tail = fh.read(size - start)
                lines = [line for line in tail.splitlines() if line.strip()]
                if not lines:
                    if start == 0:
                        return None
                elif len(lines) > 1 or start == 0:
                    break
                chunk *= 4
        try:
            entry = json.loads(lines[-1])
        except (json.JSONDecodeError, UnicodeDecodeError):
            entry = None
        if isinstance(entry, dict):
            return entry
        return {"_unreadable": lines[-1].decode("utf-8", "replace"), "_line": "last"}

    def append(self, build: Build) -> Entry:
        with self._locked():
            entry = build(self.head())
            line = _canonical_line(entry) + "\n"
            # One write of one line with O_APPEND: a crash leaves either no line or a
            # whole one (a torn tail line is reported as unreadable, never merged).
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        return entry


_BACKENDS: dict[str, Callable[[str, Path], Ledger]] = {}


def register_backend(scheme: str, factory: Callable[[str, Path], Ledger]) -> None:
    """Make ``OPSBOOK_LEDGER_URL=<scheme>://...`` open a ledger with ``factory(url, root)``."""
    _BACKENDS[scheme] = factory


LEDGER_URL_ENV = "OPSBOOK_LEDGER_URL"
_LAZY = {"postgresql": "opsbook.ledger_pg", "postgres": "opsbook.ledger_pg"}


def ledger_url() -> str:
    """``$OPSBOOK_LEDGER_URL`` (``$OPSBOOK_LEDGER`` is read as an older spelling)."""
    return os.environ.get(LEDGER_URL_ENV) or os.environ.get("OPSBOOK_LEDGER") or ""


def open_ledger(root: Path, url: str | None = None) -> Ledger:
    """The ledger for the audit root ``root``: ``url`` or ``$OPSBOOK_LEDGER_URL``, else a file.

    >>> open_ledger(Path("audit")).describe()  # doctest: +SKIP
    'ledger file audit/ledger.jsonl'
    """
    url = url or ledger_url()
    if not url or url == "file":
        return FileLedger(root)
    scheme = url.split(":", 1)[0]
    if scheme not in _BACKENDS and scheme in _LAZY:
        import importlib

        importlib.import_module(_LAZY[scheme])
    if scheme in _BACKENDS:
        return _BACKENDS[scheme](url, root)
    raise ConfigError(
        f"{LEDGER_URL_ENV}={url.split('@')[-1]!r}: no ledger backend for {scheme!r}",
        hint=f"unset {LEDGER_URL_ENV} to use the ledger file in the audit root; "
        f"known backends: file{''.join(', ' + s for s in sorted(set(_BACKENDS) | set(_LAZY)))}",
    )


def is_shared(ledger: Ledger) -> bool:
    """Whether records of other machines may be in this ledger (any backend but the file)."""
    return not isinstance(ledger, FileLedger)


def preflight(root: Path) -> Ledger:
    """Open the configured ledger and check it can take an append (before any step runs).

    An unreachable database, wrong credentials or a missing schema raise a
    :class:`~opsbook.errors.ConfigError` (exit 2) and nothing is written.
    """
    ledger = open_ledger(root)
    check = getattr(ledger, "preflight", None)
    if check is not None:
        check()
    return ledger
