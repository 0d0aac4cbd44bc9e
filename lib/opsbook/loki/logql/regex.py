"""Compile RE2 (Go ``regexp``) patterns with Python's ``re``.

The common RE2 syntax is shared; the differences handled here: ``(?<name>`` and
``(?P<name>`` groups, ``\\z``, POSIX classes ``[[:alpha:]]``. Constructs RE2 rejects
(look-around, back-references) are rejected; RE2-only ones Python lacks (``\\pL``, ``\\Q``)
raise :class:`ValueError` naming the construct so the caller can report it.
"""

from __future__ import annotations

import re
from functools import lru_cache

_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7F",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}


class RegexSyntaxError(ValueError):
    """RE2 itself would reject the pattern (Loki reports a parse error)."""


class RegexUnsupported(ValueError):
    """Valid RE2 that Python's ``re`` cannot express faithfully."""


def translate(pattern: str) -> str:
    """Rewrite RE2 syntax into the equivalent Python syntax."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "z":
                out.append("\\Z")
            elif nxt in "pPQEC":
                raise RegexUnsupported(f"\\{nxt} in regular expression")
            elif nxt.isdigit() and nxt != "0" and not in_class:
                raise RegexSyntaxError(f"invalid escape sequence: \\{nxt}")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2 : end] if end > 0 else ""
                negate = name.startswith("^")
                if name.lstrip("^") in _POSIX and not negate:
                    out.append(_POSIX[name])
                    i = end + 2
                    continue
                if negate:
                    raise RegexUnsupported(f"[[:{name}:]] in regular expression")
            if ch == "]":
                in_class = False
            elif ch == "[":
                out.append("\\[")
                i += 1
                continue
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if pattern.startswith("(?", i):
            rest = pattern[i + 2 : i + 4]
            if rest[:1] in ("=", "!") or rest in ("<=", "<!"):
                raise RegexSyntaxError("invalid or unsupported Perl syntax: look-around")
            if rest[:1] == "<":
                out.append("(?P<")
                i += 3
                continue
        out.append(ch)
        i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def compile_re2(pattern: str, dotall: bool = False) -> re.Pattern[str]:
    """Compile an RE2 pattern; ``dotall`` as Prometheus label matchers use ``(?s:...)``."""
    text = translate(pattern)
    try:
        return re.compile(text, re.DOTALL if dotall else 0)
    except re.error as exc:
        raise RegexSyntaxError(f"error parsing regexp: {exc}") from None
