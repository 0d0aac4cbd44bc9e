"""Tokenizer for LogQL with line/column positions.

Numbers directly followed by unit letters become DURATION (``5m``, ``1h30m``) or BYTES
(``10KB``, ``5MiB``) tokens, the way Loki's lexer tries a duration first, then a byte
size, then falls back to a plain NUMBER.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from opsbook.loki.logql.errors import LogQLParseError
from opsbook.loki.logql.units import logql_duration_ns, parse_bytes

STRING = "STRING"
NUMBER = "NUMBER"
DURATION = "DURATION"
BYTES = "BYTES"
IDENT = "IDENT"
EOF = "EOF"

_OPERATORS = (
    "|=",
    "|~",
    "|>",
    "!=",
    "!~",
    "!>",
    "=~",
    "==",
    ">=",
    "<=",
    "|",
    "=",
    ">",
    "<",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
)
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]*\.?[0-9a-fA-F]*(?:[pP][+-]?\d+)?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
)
_UNIT_TAIL = re.compile(r"[0-9a-zA-Zµμ.]*")
_IDENT = re.compile(r"[^\W\d]\w*")
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token; ``value`` is the decoded string / number / duration ns."""

    kind: str
    text: str
    value: object
    line: int
    col: int


class Lexer:
    """Turns query text into a list of tokens (ending with EOF)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0

    def error(self, message: str, pos: int | None = None) -> LogQLParseError:
        line, col = self.position(self.pos if pos is None else pos)
        return LogQLParseError(message, line, col)

    def position(self, pos: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, pos) + 1
        start = self.text.rfind("\n", 0, pos) + 1
        return line, pos - start + 1

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        while True:
            tok = self.next_token()
            out.append(tok)
            if tok.kind == EOF:
                return out

    def _make(self, kind: str, start: int, value: object) -> Token:
        line, col = self.position(start)
        return Token(kind, self.text[start : self.pos], value, line, col)

    def _skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch.isspace():
                self.pos += 1
            elif ch == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def next_token(self) -> Token:
        self._skip_space()
        text = self.text
        start = self.pos
        if start >= len(text):
            return self._make(EOF, start, None)
        ch = text[start]
        if ch == '"':
            return self._make(STRING, start, self._quoted())
        if ch == "`":
            end = text.find("`", start + 1)
            if end < 0:
                raise self.error("literal not terminated")
            self.pos = end + 1
            return self._make(STRING, start, text[start + 1 : end])
        if ch.isdigit() or (ch == "." and text[start + 1 : start + 2].isdigit()):
            return self._number(start)
        match = _IDENT.match(text, start)
        if match:
            self.pos = match.end()
            return self._make(IDENT, start, match.group())
        for op in _OPERATORS:
            if text.startswith(op, start):
                self.pos = start + len(op)
                return self._make(op, start, op)
        raise self.error(f"unexpected character: {ch!r}")

    def _number(self, start: int) -> Token:
        text = self.text
        match = _NUMBER.match(text, start)
        assert match is not None
        tail = _UNIT_TAIL.match(text, start)
        assert tail is not None
        word = tail.group()
        if len(word) > len(match.group()):
            duration = logql_duration_ns(word)
            if duration is not None:
                if not -(2**63) <= duration < 2**63:
                    raise self.error(f"duration out of range: {word}", start)
                self.pos = tail.end()
                return self._make(DURATION, start, duration)
            size = parse_bytes(word)
            if size is not None and not word[-1].isdigit():
                self.pos = tail.end()
                return self._make(BYTES, start, size)
        self.pos = match.end()
        raw = match.group()
        value = self._hex(raw, start) if raw[:2].lower() == "0x" else float(raw)
        return self._make(NUMBER, start, value)

    def _hex(self, raw: str, start: int) -> float:
        """A hex literal as Go's scanner reads it: ``0x1F``, ``0x1p3``, ``0x1.8p3``."""
        mantissa = re.split("[pP]", raw[2:])[0]
        if not mantissa.replace(".", ""):
            raise self.error("hexadecimal literal has no digits", start)
        if "." in mantissa and len(mantissa) == len(raw) - 2:
            raise self.error("hexadecimal mantissa requires a 'p' exponent", start)
        try:
            return float.fromhex(raw) if "p" in raw.lower() else float(int(raw, 16))
        except OverflowError:
            return math.inf

    def _quoted(self) -> str:
        text = self.text
        pos = self.pos + 1
        out: list[str] = []
        while True:
            if pos >= len(text) or text[pos] == "\n":
                raise self.error("literal not terminated")
            ch = text[pos]
            if ch == '"':
                self.pos = pos + 1
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                pos += 1
                continue
            esc = text[pos + 1 : pos + 2]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                pos += 2
            elif esc in ("x", "u", "U"):
                width = {"x": 2, "u": 4, "U": 8}[esc]
                digits = text[pos + 2 : pos + 2 + width]
                if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.error("invalid escape sequence in string", pos)
                out.append(chr(int(digits, 16)))
                pos += 2 + width
            elif esc in "01234567" and esc:
                digits = text[pos + 1 : pos + 4]
                if len(digits) != 3 or not all(c in "01234567" for c in digits):
                    raise self.error("invalid escape sequence in string", pos)
                out.append(chr(int(digits, 8)))
                pos += 4
            else:
                raise self.error("invalid escape sequence in string", pos)


def tokenize(text: str) -> list[Token]:
    """Tokenize a LogQL query (raises :class:`LogQLParseError` with line/column)."""
    return Lexer(text).tokens()
