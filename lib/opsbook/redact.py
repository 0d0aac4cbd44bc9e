"""Keep secrets out of every artifact, in every encoding they could take there.

A secret reaches a record in more shapes than its raw text: JSON strings escape ``"``
and ``\\``, HTML escapes ``< & > "``, URLs percent-encode, HTTP Basic auth base64-encodes
``user:password``. :class:`Redactor` knows every form of every secret it was given and
replaces each with ``***`` (same-length ``*`` in binary files), and masks the password
of any ``scheme://user:password@host`` URL whatever parameter or output it sits in.

Secrets come from: the runbook's declared environment variables, passwords inside
URLs found in the run's parameters, and every variable a notebook read with
:func:`opsbook.settings.secret` (the kernel writes the variable's *name*, never its
value, to ``secrets-read.txt`` in the step folder; :meth:`Redactor.refresh` reads it).

A secret shorter than :data:`SHORT` characters is redacted like any other, even where
that masks unrelated text, and :attr:`Redactor.warnings` says so for the record.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import stat
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
SHORT = 4
READ_FILE = "secrets-read.txt"
_JSON_SUFFIXES = {".ipynb", ".json"}
_TEXT_SUFFIXES = {
    ".html",
    ".log",
    ".jsonl",
    ".txt",
    ".yaml",
    ".yml",
    ".csv",
    ".md",
    ".svg",
    ".py",
    ".toml",
    ".xml",
}

# scheme://user:password@host — the password is group "pw"
URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://(?P<user>[^\s:/@'\"<>]*):)(?P<pw>[^\s@/'\"<>]+)(?=@)"
)


def mask_urls(text: str) -> str:
    """``http://admin:pw@host`` → ``http://admin:***@host`` anywhere in ``text``."""
    return URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def url_secrets(text: str) -> set[str]:
    """Passwords of URLs in ``text``, and their ``user:password`` pairs (for base64)."""
    found: set[str] = set()
    for match in URL_PASSWORD.finditer(text):
        password = match.group("pw")
        for pw in {password, unquote(password)}:
            found.add(pw)
            found.add(f"{unquote(match.group('user'))}:{pw}")
    return found


def _b64_forms(raw: bytes) -> set[str]:
    forms = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode("ascii")
        forms |= {text, text.rstrip("=")}
        # the same bytes inside a longer base64 blob, at each of the 3 alignments:
        # keep only characters that depend on these bytes alone
        for offset in range(3):
            blob = encode(b"\0" * offset + raw).decode("ascii")
            start = -(-8 * offset // 6)
            end = 4 * ((offset + len(raw)) // 3)
            core = blob[start:end]
            if len(core) >= 8:
                forms.add(core)
    return forms


def _json_escaped(text: str) -> set[str]:
    return {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}


def variants(value: str) -> set[str]:
    """Every form ``value`` takes in a record: raw, HTML-, URL-, base64- and JSON-encoded."""
    from markupsafe import escape

    forms = {value, html.escape(value), html.escape(value, quote=False), str(escape(value))}
    forms |= {quote(value, safe=""), quote(value), quote_plus(value)}
    forms |= _b64_forms(value.encode("utf-8"))
    escaped = set()
    for form in forms:
        for once in _json_escaped(form):
            escaped.add(once)
            escaped |= _json_escaped(once)  # JSON inside JSON (a log line in a notebook)
    return {f for f in forms | escaped if f}


class Redactor:
    """Every secret of one run and every form it takes; redacts text, data and folders."""

    def __init__(self, env_names: list[str] | tuple[str, ...] = ()) -> None:
        self.sources: dict[str, str] = {}
        self.env_read: set[str] = set()
        self._needles: list[str] = []
        self._stale = True
        self._sizes: dict[Path, int] = {}
        self._lock = threading.RLock()  # the runner's output pump shares it with the main loop
        for name in env_names:
            self.add_env(name)

    # -------------------------------------------------------------- collecting

    def add_env(self, name: str) -> None:
        """Redact the value of environment variable ``name`` (when set)."""
        self.env_read.add(name)
        value = os.environ.get(name)
        if value:
            self.add(value, f"${name}")
            self.add_from_text(value)

    def add(self, value: str, source: str) -> None:
        with self._lock:
            if value and value not in self.sources:
                self.sources[value] = source
                self._stale = True

    def add_from_text(self, text: str) -> None:
        for secret in url_secrets(text):
            self.add(secret, "a password inside a URL")

    def add_from_data(self, data: Any) -> None:
        """Collect URL passwords from every string inside ``data`` (parameters)."""
        if isinstance(data, str):
            self.add_from_text(data)
        elif isinstance(data, dict):
            for item in data.values():
                self.add_from_data(item)
        elif isinstance(data, list | tuple):
            for item in data:
                self.add_from_data(item)

    def refresh(self, folder: Path) -> None:
        """Add the variables notebooks read with ``settings.secret()`` under ``folder``."""
        for path in folder.rglob(READ_FILE):
            self.refresh_file(path)

    def refresh_file(self, path: Path) -> None:
        """Add the variables named in one ``secrets-read.txt`` (cheap when unchanged)."""
        try:
            size = path.stat().st_size
            if self._sizes.get(path) == size:
                return
            names = path.read_text(encoding="utf-8").split()
        except OSError:
            return
        self._sizes[path] = size
        for name in names:
            if name not in self.env_read:
                self.add_env(name)

    @property
    def warnings(self) -> list[str]:
        return sorted(
            f"a secret from {source} is shorter than {SHORT} characters: it was redacted "
            "everywhere, which may also mask unrelated text"
            for value, source in self.sources.items()
            if len(value) < SHORT
        )

    # --------------------------------------------------------------- redacting

    def _compiled(self) -> list[str]:
        """Every form of every secret, longest first (rebuilt when a secret was added)."""
        with self._lock:
            if self._stale:
                needles: set[str] = set()
                for value in list(self.sources):
                    needles |= variants(value)
                self._needles = sorted(needles, key=len, reverse=True)
                self._stale = False
            return self._needles

    def text(self, text: str) -> str:
        text = mask_urls(text)
        # substring checks first (fast, in C); the regex only over the forms present
        present = [n for n in self._compiled() if n in text]
        if not present:
            return text
        return re.compile("|".join(re.escape(n) for n in present)).sub(MASK, text)

    def value(self, data: Any) -> Any:
        """Redact every string (not keys) inside a JSON-like structure."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {k: self.value(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.value(v) for v in data]
        return data

    def blob(self, blob: bytes, text_like: bool) -> bytes:
        if text_like:
            return self.text(blob.decode("utf-8", errors="surrogateescape")).encode(
                "utf-8", errors="surrogateescape"
            )
        for needle in self._compiled():
            raw = needle.encode("utf-8")
            blob = blob.replace(raw, b"*" * len(raw))
        return blob

    def notebook_text(self, text: str) -> str:
        """Redact a serialised notebook (or any JSON) value by value, keeping it valid."""
        try:
            data = json.loads(text)
        except ValueError:
            return self.text(text)
        redacted = self.value(data)
        if redacted == data:
            return text
        return json.dumps(redacted, indent=1, ensure_ascii=False) + "\n"

    def file(self, path: Path) -> bool:
        """Redact one file in place; True when it changed."""
        blob = path.read_bytes()
        suffix = path.suffix.lower()
        new = None
        if suffix in _JSON_SUFFIXES:
            new = self._json_file(blob, indent=1 if suffix == ".ipynb" else 2)
        if new is None:
            new = self.blob(blob, suffix in _TEXT_SUFFIXES or suffix in _JSON_SUFFIXES)
        if new == blob:
            return False
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
        tmp = path.with_name(path.name + ".redacting")
        tmp.write_bytes(new)
        tmp.replace(path)
        return True

    def _json_file(self, blob: bytes, indent: int) -> bytes | None:
        try:
            data = json.loads(blob)
        except (ValueError, UnicodeDecodeError):
            return None  # a truncated notebook after a kill: redact it as text
        redacted = self.value(data)
        if redacted == data:
            return blob
        return (json.dumps(redacted, indent=indent, ensure_ascii=False) + "\n").encode()

    def tree(self, folder: Path) -> list[str]:
        """Redact every file under ``folder``; return the relative paths that changed."""
        self.refresh(folder)
        changed = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if self.file(path):
                changed.append(str(path.relative_to(folder)))
        return changed
