"""A subset of Go ``text/template`` for ``line_format`` and ``label_format``.

Supported: text, ``{{ .label }}`` (missing labels render empty, as Loki's
``missingkey=zero``), trim markers ``{{-``/``-}}``, string/number literals, function calls
and pipes (the piped value becomes the last argument, as in Go), ``if``/``else if``/
``else``/``end`` and the string functions listed in ``FUNCTIONS`` (Loki's common ones:
``ToUpper``, ``ToLower``, ``Replace``, ``Trim*``, ``printf``, ``default``, ``regexReplaceAll``,
``__line__``...). Other Loki template functions raise :class:`TemplateUnsupported`.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from opsbook.loki.logql.regex import compile_re2, expand_go_template


class TemplateError(ValueError):
    """The template is invalid Go template syntax (Loki rejects the query)."""


class TemplateUnsupported(ValueError):
    """A valid template using a construct this engine does not implement."""


_LOKI_ONLY = {
    "__timestamp__",
    "date",
    "toDate",
    "toDateInZone",
    "now",
    "unixEpoch",
    "unixEpochMillis",
    "unixEpochNanos",
    "unixToTime",
    "fromJson",
    "bytes",
    "duration",
    "duration_seconds",
    "sub",
    "add",
    "mul",
    "div",
    "mod",
    "addf",
    "subf",
    "mulf",
    "divf",
    "ceil",
    "floor",
    "round",
    "max",
    "min",
    "maxf",
    "minf",
    "int",
    "float64",
    "sha256",
    "indent",
    "nindent",
    "count",
    "index",
    "with",
    "range",
    "template",
    "define",
    "block",
}


@dataclass
class Ctx:
    """Evaluation context: label values, current line and entry timestamp (ns)."""

    labels: dict[str, str]
    line: str
    ts: int


def _go_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _go_float(value: float) -> str:
    text = repr(value)
    if "e" in text:
        mant, exp = text.split("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        return f"{mant}e{sign}{digits}"
    return text[:-2] if text.endswith(".0") else text


def _printf(fmt: str, *args: Any) -> str:
    out: list[str] = []
    it = iter(args)
    i = 0
    spec = re.compile(r"%([-+ #0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")
    for match in spec.finditer(fmt):
        out.append(fmt[i : match.start()])
        i = match.end()
        flags, width, prec, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        try:
            arg = next(it)
        except StopIteration:
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(flags, width, prec, verb, arg))
    out.append(fmt[i:])
    extra = list(it)
    if extra:
        out.append("%!(EXTRA " + ", ".join(f"{type(a).__name__}={a}" for a in extra) + ")")
    return "".join(out)


def _format_one(flags: str, width: str | None, prec: str | None, verb: str, arg: Any) -> str:
    pyflags = flags.replace("#", "")
    head = "%" + pyflags + (width or "") + (f".{prec}" if prec is not None else "")
    if verb in "sv":
        return (head + "s") % _go_str(arg)
    if verb == "q":
        return (head + "s") % ('"' + _go_str(arg).replace("\\", "\\\\").replace('"', '\\"') + '"')
    if verb in "dxXo" and isinstance(arg, int) and not isinstance(arg, bool):
        return (head + verb) % arg
    if verb in "feEgG" and isinstance(arg, float | int) and not isinstance(arg, bool):
        return (head + verb) % arg
    kind = "string" if isinstance(arg, str) else type(arg).__name__
    return f"%!{verb}({kind}={_go_str(arg)})"


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value != ""
    return bool(value)


def _replace_go(s: str, old: str, new: str, n: int) -> str:
    return s.replace(old, new, n if n >= 0 else -1)


def _regex_replace(regex: str, s: str, repl: str) -> str:
    """Go ``ReplaceAllString``: ``$1`` / ``${name}`` in ``repl`` expand to the groups."""
    return compile_re2(regex).sub(lambda match: expand_go_template(repl, match), s)


def _substr(start: int, end: int, s: str) -> str:
    if start < 0:
        return s[:end]
    if end < 0 or end > len(s):
        return s[start:]
    return s[start:end]


def _trunc(n: int, s: str) -> str:
    if n < 0 and len(s) + n > 0:
        return s[len(s) + n :]
    if n >= 0 and len(s) > n:
        return s[:n]
    return s


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def run(a: Any, *others: Any) -> bool:
        return all(op(a, b) for b in others) if others else False

    return run


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "ToLower": str.lower,
    "ToUpper": str.upper,
    "lower": str.lower,
    "upper": str.upper,
    "title": lambda s: re.sub(r"\b\w", lambda m: m.group().upper(), s),
    "Title": lambda s: re.sub(r"\b\w", lambda m: m.group().upper(), s),
    "Replace": _replace_go,
    "replace": lambda old, new, s: s.replace(old, new),
    "Trim": lambda s, cut: s.strip(cut),
    "TrimLeft": lambda s, cut: s.lstrip(cut),
    "TrimRight": lambda s, cut: s.rstrip(cut),
    "TrimPrefix": lambda s, p: s[len(p) :] if p and s.startswith(p) else s,
    "TrimSuffix": lambda s, p: s[: -len(p)] if p and s.endswith(p) else s,
    "TrimSpace": str.strip,
    "trim": str.strip,
    "trimAll": lambda cut, s: s.strip(cut),
    "trimPrefix": lambda p, s: s[len(p) :] if p and s.startswith(p) else s,
    "trimSuffix": lambda p, s: s[: -len(p)] if p and s.endswith(p) else s,
    "trunc": _trunc,
    "substr": _substr,
    "contains": lambda sub, s: sub in s,
    "hasPrefix": lambda p, s: s.startswith(p),
    "hasSuffix": lambda p, s: s.endswith(p),
    "repeat": lambda n, s: s * max(n, 0),
    "regexReplaceAll": _regex_replace,
    "regexReplaceAllLiteral": lambda r, s, repl: compile_re2(r).sub(lambda _m: repl, s),
    "default": lambda d, v="": v if _truthy(v) else d,
    "printf": _printf,
    "eq": _cmp(lambda a, b: a == b),
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "not": lambda a: not _truthy(a),
    "len": len,
    "alignLeft": lambda n, s: s[:n].ljust(n) if n >= 0 else s,
    "alignRight": lambda n, s: s[-n:].rjust(n) if n > 0 else s,
    "urlencode": lambda s: urllib.parse.quote_plus(s),
    "urldecode": lambda s: urllib.parse.unquote_plus(s),
    "b64enc": lambda s: base64.b64encode(s.encode()).decode(),
    "b64dec": lambda s: base64.b64decode(s.encode()).decode(errors="replace"),
}

# ----------------------------------------------------------------------------- parsing

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+(?:\.\d+)?)|
    (?P<field>\.[A-Za-z_][A-Za-z0-9_]*)|(?P<dot>\.)|(?P<pipe>\|)|(?P<lp>\()|(?P<rp>\))|
    (?P<ident>[A-Za-z_][A-Za-z0-9_]*))""",
    re.X,
)


@dataclass
class _Node:
    kind: str  # text | action | if
    value: Any = None
    branches: list[tuple[Any, list[_Node]]] | None = None
    otherwise: list[_Node] | None = None


def _lex_action(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise TemplateError(f"unexpected {text[pos:]!r} in action")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _parse_pipeline(tokens: list[tuple[str, str]]) -> list[list[Any]]:
    """A pipeline is a list of commands; a command is a list of operands."""
    commands: list[list[Any]] = [[]]
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "pipe":
            if not commands[-1]:
                raise TemplateError("missing command before |")
            commands.append([])
        elif kind == "lp":
            depth, j = 1, i + 1
            while j < len(tokens) and depth:
                depth += {"lp": 1, "rp": -1}.get(tokens[j][0], 0)
                j += 1
            if depth:
                raise TemplateError("unclosed left paren")
            commands[-1].append(("sub", _parse_pipeline(tokens[i + 1 : j - 1])))
            i = j
            continue
        elif kind == "rp":
            raise TemplateError("unexpected right paren")
        elif kind == "str":
            commands[-1].append(("lit", _unquote(text)))
        elif kind == "raw":
            commands[-1].append(("lit", text[1:-1]))
        elif kind == "num":
            commands[-1].append(("lit", float(text) if "." in text else int(text)))
        elif kind == "field":
            commands[-1].append(("field", text[1:]))
        elif kind == "dot":
            raise TemplateUnsupported("'.' (the whole label map)")
        else:
            commands[-1].append(("ident", text))
        i += 1
    if not commands[-1]:
        raise TemplateError("missing value for command")
    for cmd in commands:
        for _pos, (kind, text) in enumerate(cmd):
            if kind != "ident":
                continue
            if text in ("true", "false", "nil"):
                continue
            if text in FUNCTIONS or text == "__line__":
                continue
            if text in _LOKI_ONLY:
                raise TemplateUnsupported(f"function {text!r}")
            raise TemplateError(f'function "{text}" not defined')
    return commands


def _unquote(text: str) -> str:
    try:
        import ast as pyast

        return str(pyast.literal_eval(text))
    except (ValueError, SyntaxError):
        raise TemplateError(f"invalid string literal {text}") from None


def _split(text: str) -> list[tuple[str, str]]:
    """Split template text into ('text', s) and ('action', s) pieces, honouring trims."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            pieces.append(("text", text[pos:]))
            return pieces
        end = _action_end(text, start + 2)
        body = text[start + 2 : end]
        chunk = text[pos:start]
        if body.startswith("- ") or body == "-" or body.startswith("-\t"):
            chunk = chunk.rstrip()
            body = body[1:]
        pieces.append(("text", chunk))
        trim_right = body.endswith(" -") or body.endswith("\t-")
        if trim_right:
            body = body[:-1]
        if body.strip().startswith("/*"):
            if not body.strip().endswith("*/"):
                raise TemplateError("unclosed comment")
            body = ""
        pieces.append(("action", body))
        pos = end + 2
        if trim_right:
            while pos < len(text) and text[pos].isspace():
                pos += 1


def _action_end(text: str, pos: int) -> int:
    """Index of the ``}}`` closing an action, skipping quoted strings."""
    quote = ""
    while pos < len(text):
        ch = text[pos]
        if quote:
            if ch == "\\" and quote == '"':
                pos += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in '"`':
            quote = ch
        elif text.startswith("}}", pos):
            return pos
        pos += 1
    raise TemplateError("unclosed action")


def _build(pieces: list[tuple[str, str]]) -> list[_Node]:
    root: list[_Node] = []
    stack: list[tuple[_Node, list[_Node]]] = []
    current = root
    for kind, body in pieces:
        if kind == "text":
            if body:
                current.append(_Node("text", body))
            continue
        words = body.strip()
        if not words:
            continue
        head = words.split(None, 1)[0]
        rest = words[len(head) :]
        if head == "if":
            node = _Node("if", branches=[(_parse_pipeline(_lex_action(rest)), [])])
            current.append(node)
            stack.append((node, current))
            assert node.branches is not None
            current = node.branches[0][1]
        elif head == "else":
            if not stack:
                raise TemplateError("unexpected {{else}}")
            node = stack[-1][0]
            assert node.branches is not None
            rest = rest.strip()
            if rest.startswith("if "):
                node.branches.append((_parse_pipeline(_lex_action(rest[3:])), []))
                current = node.branches[-1][1]
            elif rest:
                raise TemplateUnsupported(f"else {rest.split()[0]}")
            else:
                node.otherwise = []
                current = node.otherwise
        elif head == "end":
            if not stack:
                raise TemplateError("unexpected {{end}}")
            current = stack.pop()[1]
        elif head in ("range", "with", "define", "template", "block", "break", "continue"):
            raise TemplateUnsupported(f"{{{{{head}}}}}")
        elif head.startswith("$"):
            raise TemplateUnsupported("template variables")
        else:
            current.append(_Node("action", _parse_pipeline(_lex_action(words))))
    if stack:
        raise TemplateError("unexpected EOF (missing {{end}})")
    return root


class Template:
    """A compiled template; ``render(ctx)`` returns the output string."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.nodes = _build(_split(text))
        self.fields = sorted(_fields(self.nodes))
        self.constant = text if not any(n.kind != "text" for n in self.nodes) else None

    def render(self, ctx: Ctx) -> str:
        if self.constant is not None:
            return self.constant
        out: list[str] = []
        _render(self.nodes, ctx, out)
        return "".join(out)


def _fields(nodes: list[_Node]) -> set[str]:
    found: set[str] = set()

    def walk_pipeline(pipeline: list[list[Any]]) -> None:
        for cmd in pipeline:
            for kind, value in cmd:
                if kind == "field":
                    found.add(value)
                elif kind == "sub":
                    walk_pipeline(value)

    for node in nodes:
        if node.kind == "action":
            walk_pipeline(node.value)
        elif node.kind == "if":
            for cond, body in node.branches or []:
                walk_pipeline(cond)
                found |= _fields(body)
            found |= _fields(node.otherwise or [])
    return found


def _render(nodes: list[_Node], ctx: Ctx, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.value)
        elif node.kind == "action":
            out.append(_go_str(_eval_pipeline(node.value, ctx)))
        else:
            for cond, body in node.branches or []:
                if _truthy(_eval_pipeline(cond, ctx)):
                    _render(body, ctx, out)
                    break
            else:
                _render(node.otherwise or [], ctx, out)


def _operand(op: tuple[str, Any], ctx: Ctx) -> Any:
    kind, value = op
    if kind == "lit":
        return value
    if kind == "field":
        return ctx.labels.get(value, "")
    if kind == "sub":
        return _eval_pipeline(value, ctx)
    if value == "true":
        return True
    if value == "false":
        return False
    if value == "__line__":
        return ctx.line
    return _call(value, [])


def _call(name: str, args: list[Any]) -> Any:
    if name == "__line__":
        return args[0] if args else ""
    try:
        return FUNCTIONS[name](*args)
    except TypeError:
        raise TemplateRuntimeError(f"wrong arguments for {name}") from None


class TemplateRuntimeError(ValueError):
    """A template failed while rendering (Loki sets ``__error__=TemplateFormatErr``)."""


def _eval_pipeline(pipeline: list[list[Any]], ctx: Ctx) -> Any:
    value: Any = None
    for index, cmd in enumerate(pipeline):
        head = cmd[0]
        if head[0] == "ident" and head[1] not in ("true", "false"):
            if head[1] == "__line__" and len(cmd) == 1 and index == 0:
                value = ctx.line
                continue
            args = [_operand(op, ctx) for op in cmd[1:]]
            if index > 0:
                args.append(value)
            value = _call(head[1], args)
        else:
            if len(cmd) > 1:
                raise TemplateRuntimeError("can't give argument to non-function")
            if index > 0:
                raise TemplateRuntimeError("can't pipe into a non-function")
            value = _operand(head, ctx)
    return value


@lru_cache(maxsize=1024)
def compile_template(text: str) -> Template:
    """Compile (and cache) a template; raises TemplateError / TemplateUnsupported."""
    return Template(text)
