"""Edit JSON files by position so every byte outside the removed entries stays put.

``json.load`` + ``json.dump`` would re-indent the file, reorder nothing but still lose the
author's spacing and trailing newline. Instead we scan the text once, remember where every
array item and object member starts and ends, and cut or insert exactly those spans.
Comments (``//`` and ``/* */``, as tsconfig allows) and trailing commas are tolerated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from opsbook.errors import ConfigError


@dataclass
class Node:
    """A JSON value with its span ``text[start:end]``; items/members for containers."""

    start: int
    end: int
    kind: str  # object | array | string | scalar
    value: Any = None
    items: list[Node] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    key_starts: list[int] = field(default_factory=list)

    def member(self, key: str) -> Node | None:
        """The value of ``key`` in an object node, or None."""
        if self.kind != "object" or key not in self.keys:
            return None
        return self.items[self.keys.index(key)]

    def find(self, path: list[str]) -> Node | None:
        """Follow object keys from this node."""
        node: Node | None = self
        for key in path:
            node = node.member(key) if node else None
        return node

    def item_spans(self) -> list[tuple[int, int]]:
        """Spans of each array item or object member (key included)."""
        if self.kind == "object":
            return [(ks, it.end) for ks, it in zip(self.key_starts, self.items, strict=True)]
        return [(it.start, it.end) for it in self.items]


class _Scanner:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source

    def fail(self, pos: int, what: str) -> ConfigError:
        line = self.text.count("\n", 0, pos) + 1
        return ConfigError(
            f"{self.source}: invalid JSON at line {line}: {what}",
            hint="fix the file (e.g. with a JSON linter) and run again",
        )

    def skip(self, i: int) -> int:
        t = self.text
        while i < len(t):
            c = t[i]
            if c in " \t\r\n":
                i += 1
            elif t.startswith("//", i):
                nl = t.find("\n", i)
                i = len(t) if nl < 0 else nl + 1
            elif t.startswith("/*", i):
                close = t.find("*/", i + 2)
                if close < 0:
                    raise self.fail(i, "unterminated comment")
                i = close + 2
            else:
                break
        return i

    def string_end(self, i: int) -> int:
        t = self.text
        j = i + 1
        while j < len(t):
            if t[j] == "\\":
                j += 2
            elif t[j] == '"':
                return j + 1
            else:
                j += 1
        raise self.fail(i, "unterminated string")

    def value(self, i: int) -> Node:
        i = self.skip(i)
        if i >= len(self.text):
            raise self.fail(i, "unexpected end of file")
        c = self.text[i]
        if c == "{":
            return self.container(i, "object", "}")
        if c == "[":
            return self.container(i, "array", "]")
        if c == '"':
            end = self.string_end(i)
            return Node(i, end, "string", json.loads(self.text[i:end]))
        j = i
        while j < len(self.text) and self.text[j] not in ",]} \t\r\n/":
            j += 1
        if j == i:
            raise self.fail(i, f"unexpected character {c!r}")
        try:
            return Node(i, j, "scalar", json.loads(self.text[i:j]))
        except json.JSONDecodeError as exc:
            raise self.fail(i, f"bad value {self.text[i:j]!r}") from exc

    def container(self, i: int, kind: str, close: str) -> Node:
        node = Node(i, i, kind)
        j = self.skip(i + 1)
        while j < len(self.text) and self.text[j] != close:
            if kind == "object":
                if self.text[j] != '"':
                    raise self.fail(j, "expected a key")
                kend = self.string_end(j)
                node.keys.append(json.loads(self.text[j:kend]))
                node.key_starts.append(j)
                j = self.skip(kend)
                if j >= len(self.text) or self.text[j] != ":":
                    raise self.fail(j, "expected ':'")
                j += 1
            item = self.value(j)
            node.items.append(item)
            j = self.skip(item.end)
            if j < len(self.text) and self.text[j] == ",":
                j = self.skip(j + 1)
            elif j < len(self.text) and self.text[j] != close:
                raise self.fail(j, f"expected ',' or '{close}'")
        if j >= len(self.text):
            raise self.fail(i, f"unclosed '{self.text[i]}'")
        node.end = j + 1
        return node


def parse(text: str, source: str = "<json>") -> Node:
    """Parse ``text`` into a position-aware :class:`Node` tree."""
    scanner = _Scanner(text, source)
    root = scanner.value(0)
    if scanner.skip(root.end) != len(text):
        raise scanner.fail(root.end, "trailing content after the top-level value")
    return root


def remove_item(text: str, container: Node, index: int) -> str:
    """Remove item ``index`` of an array/object node and its separator; return new text."""
    spans = container.item_spans()
    if len(spans) == 1:
        return text[: container.start + 1] + text[container.end - 1 :]
    if index < len(spans) - 1:
        return text[: spans[index][0]] + text[spans[index + 1][0] :]
    return text[: spans[index - 1][1]] + text[spans[index][1] :]


def insert_item(text: str, container: Node, index: int, raw: str) -> str:
    """Insert ``raw`` (an item, or ``"key": value`` for objects) at ``index``.

    The separator is copied from the existing items so layout matches its neighbours.
    """
    spans = container.item_spans()
    if not spans:
        return text[: container.start + 1] + raw + text[container.end - 1 :]
    if len(spans) >= 2:
        sep = text[spans[0][1] : spans[1][0]]
    else:
        lead = text[container.start + 1 : spans[0][0]]
        sep = "," + (lead if lead.strip() == "" and lead else " ")
    index = max(0, min(index, len(spans)))
    if index < len(spans):
        at = spans[index][0]
        return text[:at] + raw + sep + text[at:]
    at = spans[-1][1]
    return text[:at] + sep + raw + text[at:]


def position_for(original: list[str], current: list[str], value: str) -> int:
    """Where ``value`` goes in ``current`` so the order of ``original`` is kept."""
    try:
        rank = original.index(value)
    except ValueError:
        return len(current)
    before = set(original[:rank])
    pos = 0
    for i, item in enumerate(current):
        if item in before:
            pos = i + 1
    return pos
