"""LogQL regular expressions on RE2, the engine behind Go's ``regexp`` that Loki uses.

Every regex of a query (stream selector and label filter matchers, ``|~`` / ``!~`` line
filters, the ``regexp`` parser, ``label_replace`` and the templates' ``regexReplaceAll``)
is compiled here with `google-re2 <https://pypi.org/project/google-re2/>`_. Matching time
is linear in the input, whatever the pattern (``(a+)+$`` included), and the syntax is
Go's: ``\\pL``, ``\\Q...\\E``, ``(?P<name>...)`` and ``(?<name>...)``, POSIX classes.

RE2 refuses what Go refuses (back-references, look-around, possessive repetition); the
one RE2 escape Go lacks, ``\\C`` (any byte), is refused here as Go does. A refused pattern
raises :class:`RegexSyntaxError` with Go's ``error parsing regexp:`` prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import re2

__all__ = [
    "Regex",
    "RegexMatch",
    "RegexSyntaxError",
    "capture_names",
    "compile_re2",
    "expand_go_template",
]

_UNANCHORED = re2._Anchor.UNANCHORED
_ANCHOR_BOTH = re2._Anchor.ANCHOR_BOTH
_NULL = (-1, -1)


class RegexSyntaxError(ValueError):
    """RE2 (Go's ``regexp``) rejects the pattern; Loki reports a parse error."""


class RegexMatch:
    """The groups of one match (``group(i)`` / ``group(name)``; None: not taking part)."""

    __slots__ = ("_data", "_spans", "_names", "_text")

    def __init__(
        self, text: str, data: bytes, spans: list[tuple[int, int]], names: dict[str, int]
    ) -> None:
        self._text = text
        self._data = data
        self._spans = spans
        self._names = names

    def group(self, key: int | str = 0) -> str | None:
        """Text of a group by number or name; ``IndexError`` when there is no such group."""
        index = self._names[key] if isinstance(key, str) and key in self._names else key
        if not isinstance(index, int) or not 0 <= index < len(self._spans):
            raise IndexError(f"no such group: {key!r}")
        start, end = self._spans[index]
        if start < 0:
            return None
        if self._data is None:
            return self._text[start:end]
        return self._data[start:end].decode("utf-8", "surrogatepass")

    def span(self) -> tuple[int, int]:
        """(start, end) of the whole match in characters of the text."""
        start, end = self._spans[0]
        if self._data is None:
            return start, end
        return (
            len(self._data[:start].decode("utf-8", "surrogatepass")),
            len(self._data[:end].decode("utf-8", "surrogatepass")),
        )


class Regex:
    """A compiled RE2 pattern with the few operations LogQL needs.

    ``search`` is unanchored (line filters, the ``regexp`` parser), ``fullmatch``
    anchored at both ends (label matchers, ``label_replace``).
    """

    __slots__ = ("pattern", "source", "_re", "groupindex", "groups")

    def __init__(self, pattern: str, compiled: re2._Regexp) -> None:
        self.pattern = pattern
        self.source: str = compiled.pattern  # what RE2 compiled (``(?s:...)`` included)
        self._re = compiled._regexp  # the RE2 object: matched on UTF-8 bytes
        self.groupindex: dict[str, int] = dict(compiled.groupindex)
        self.groups: int = compiled.groups

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regex) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return f"Regex({self.source!r})"

    def _run(self, anchor: object, text: str) -> RegexMatch | None:
        data, ascii_only = _utf8(text)
        spans = self._re.Match(anchor, data, 0, len(data))
        if spans[0] == _NULL:
            return None
        return RegexMatch(text, None if ascii_only else data, spans, self.groupindex)  # type: ignore[arg-type]

    def search(self, text: str) -> RegexMatch | None:
        """First match anywhere in ``text`` (leftmost, Perl-like preference, as Go)."""
        return self._run(_UNANCHORED, text)

    def fullmatch(self, text: str) -> RegexMatch | None:
        """Match of the whole of ``text``."""
        return self._run(_ANCHOR_BOTH, text)

    def test(self, text: str) -> bool:
        """True when the pattern matches anywhere in ``text`` (no groups computed)."""
        data = text.encode("utf-8", "surrogatepass")
        return self._re.Match(_UNANCHORED, data, 0, len(data))[0] != _NULL

    def test_full(self, text: str) -> bool:
        """True when the pattern matches the whole of ``text``."""
        data = text.encode("utf-8", "surrogatepass")
        return self._re.Match(_ANCHOR_BOTH, data, 0, len(data))[0] != _NULL

    def sub(self, repl: Callable[[RegexMatch], str], text: str) -> str:
        """Go ``ReplaceAllStringFunc``: every non-overlapping match replaced by ``repl``.

        As Go does, an empty match right after a match is not replaced, and the search
        always moves on by at least one character.
        """
        data, ascii_only = _utf8(text)
        raw = None if ascii_only else data
        out: list[bytes] = []
        n = len(data)
        search = 0
        last_end = 0
        while search <= n:
            spans = self._re.Match(_UNANCHORED, data, search, n)
            start, end = spans[0]
            if start < 0:
                break
            out.append(data[last_end:start])
            if end > last_end or start == 0:
                match = RegexMatch(text, raw, spans, self.groupindex)  # type: ignore[arg-type]
                out.append(repl(match).encode("utf-8", "surrogatepass"))
            last_end = end
            width = _char_width(data, search) if search < n else 0
            if search + width > end:
                search += width
            elif search + 1 > end:
                search += 1
            else:
                search = end
        out.append(data[last_end:])
        return b"".join(out).decode("utf-8", "surrogatepass")


def _utf8(text: str) -> tuple[bytes, bool]:
    if text.isascii():
        return text.encode("ascii"), True
    return text.encode("utf-8", "surrogatepass"), False


def _char_width(data: bytes, pos: int) -> int:
    """Bytes of the UTF-8 character at ``pos`` (1 on a stray byte)."""
    lead = data[pos]
    if lead < 0xC0:
        return 1
    return 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


@lru_cache(maxsize=4096)
def compile_re2(pattern: str, dotall: bool = False) -> Regex:
    """Compile a Go-syntax pattern; ``dotall`` as Prometheus label matchers (``(?s:...)``).

    >>> compile_re2(r"\\pL+").fullmatch("héllo") is not None
    True
    """
    _refuse_any_byte(pattern)
    text = f"(?s:{pattern})" if dotall else pattern
    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(text, options)
    except re2.error as exc:
        raise RegexSyntaxError(f"error parsing regexp: {exc}") from None
    return Regex(pattern, compiled)


def _refuse_any_byte(pattern: str) -> None:
    """Go has no ``\\C`` (RE2's any-byte escape): refuse it outside ``\\Q...\\E``."""
    i = 0
    n = len(pattern)
    while i < n - 1:
        if pattern[i] != "\\":
            i += 1
            continue
        nxt = pattern[i + 1]
        if nxt == "Q":
            end = pattern.find("\\E", i + 2)
            if end < 0:
                return
            i = end + 2
            continue
        if nxt == "C":
            raise RegexSyntaxError("error parsing regexp: invalid escape sequence: `\\C`")
        i += 2


def capture_names(pattern: str) -> list[str]:
    """Names of the named groups of a pattern RE2 accepted, in the order of their opening
    parenthesis, a repeated name as often as it is written (Go's ``SubexpNames`` without
    the unnamed groups; RE2's ``groupindex`` keeps one of each).

    >>> capture_names(r"(?P<a>x)[(?P<b>](?<a>\\Q(?P<c>\\E)")
    ['a', 'a']
    """
    names: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if pattern.startswith("Q", i + 1):  # literal text up to \E (or the end)
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
            else:
                i += 2
        elif ch == "[":
            i = _class_end(pattern, i)
        elif ch == "(" and pattern.startswith(("?P<", "?<"), i + 1):
            start = pattern.index("<", i) + 1
            end = pattern.index(">", start)
            names.append(pattern[start:end])
            i = end + 1
        else:
            i += 1
    return names


def _class_end(pattern: str, i: int) -> int:
    """Position after the character class opening at ``i`` (``[^]x]``, ``[[:alpha:]]``)."""
    i += 1
    if pattern.startswith("^", i):
        i += 1
    if pattern.startswith("]", i):  # a leading ] is a literal
        i += 1
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
        elif ch == "[" and pattern.startswith(":", i + 1):
            close = pattern.find(":]", i + 2)
            i = i + 1 if close < 0 else close + 2
        elif ch == "]":
            return i + 1
        else:
            i += 1
    return i


def expand_go_template(template: str, match: RegexMatch) -> str:
    """Go ``Regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``.

    A ``$name`` takes the longest run of letters, digits and ``_``; an unknown group
    expands to nothing; a ``$`` not followed by a name or ``{name}`` stays as it is.
    """
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch != "$" or i + 1 >= len(template):
            out.append(ch)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = template.find("}", i + 2)
            name = template[i + 2 : end] if end > 0 else ""
            if end < 0 or not _is_word(name):
                out.append(ch)
                i += 1
                continue
            i = end + 1
        else:
            j = i + 1
            while j < len(template) and (template[j].isalnum() or template[j] == "_"):
                j += 1
            name = template[i + 1 : j]
            if not name:
                out.append(ch)
                i += 1
                continue
            i = j
        out.append(_group_text(match, name))
    return "".join(out)


def _is_word(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c == "_" for c in name)


def _group_text(match: RegexMatch, name: str) -> str:
    try:
        value = match.group(int(name) if name.isdigit() else name)
    except IndexError:
        return ""
    return value or ""
