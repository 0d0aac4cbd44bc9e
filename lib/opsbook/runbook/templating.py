"""Runbook templates: sandboxed Jinja2 that keeps types.

A template that is one ``{{ expression }}`` passes the expression's value unchanged, so
``"{{ steps.audit.outputs.candidates }}"`` arrives in the notebook as a list and a ``str``
parameter that looks like a number stays a string; a template mixing text and expressions
is a string. Nothing is ever ``literal_eval``-ed, and attributes starting with ``_`` are
out of reach (``jinja2.sandbox``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain, islice
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.nativetypes import NativeCodeGenerator, NativeTemplate
from jinja2.sandbox import ImmutableSandboxedEnvironment

from opsbook.errors import RunbookError

#: The names a template may start from.
TEMPLATE_ROOTS = {"params", "steps", "run", "step"}


def _typed_concat(values: Iterable[Any]) -> Any:
    """One output node keeps its value and type; several are joined as a string.

    Unlike ``jinja2.nativetypes.native_concat`` nothing is ``literal_eval``-ed, so the
    string ``"123"`` stays a string and ``"[{{ a }}]"`` is text, not a list.
    """
    iterator: Iterator[Any] = iter(values)
    head = list(islice(iterator, 2))
    if len(head) == 1:
        return head[0]
    return "".join(str(v) for v in chain(head, iterator))


class _TypedTemplate(NativeTemplate):
    """A native template rendered with :func:`_typed_concat`."""

    def render(self, *args: Any, **kwargs: Any) -> Any:
        ctx = self.new_context(dict(*args, **kwargs))
        try:
            return _typed_concat(self.root_render_func(ctx))
        except Exception:
            return self.environment.handle_exception()


class TemplateEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed (no ``_`` attributes, no mutating methods) and type-keeping."""

    code_generator_class = NativeCodeGenerator
    template_class = _TypedTemplate
    concat = staticmethod(_typed_concat)  # type: ignore[assignment]


_ENV = TemplateEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render templates inside ``value`` (recursively through lists and dicts).

    >>> render("{{ params.n + 1 }}", {"params": {"n": 1}})
    2
    """
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if not is_template(value):
        return value
    try:
        result = _ENV.from_string(value).render(**context)
        if isinstance(result, Undefined):
            str(result)  # raises UndefinedError naming what is missing
        return result
    except SecurityError as exc:
        raise RunbookError(f"template {value!r} is unsafe: {exc.message}") from None
    except UndefinedError as exc:
        raise RunbookError(
            f"template {value!r} refers to something that does not exist: {exc.message}",
            hint="check the step id and that the step ran and recorded that output",
        ) from None
    except TemplateSyntaxError as exc:
        raise RunbookError(f"template {value!r} is not valid: {exc.message}") from None


def evaluate_condition(expr: str, context: dict[str, Any]) -> bool:
    """Evaluate a ``when:`` condition: a template or a bare Jinja expression."""
    if is_template(expr):
        value = render(expr, context)
    else:
        try:
            value = _ENV.compile_expression(expr)(**context)
            if isinstance(value, Undefined):
                str(value)
        except SecurityError as exc:
            raise RunbookError(f"condition {expr!r} is unsafe: {exc.message}") from None
        except UndefinedError as exc:
            raise RunbookError(f"condition {expr!r}: {exc.message}") from None
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none")
    return bool(value)


def _trees(value: Any, bare: bool) -> list[nodes.Template]:
    """Parsed templates inside ``value`` (a bare string is an expression when ``bare``)."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _trees(v, False)]
    if isinstance(value, list):
        return [t for v in value for t in _trees(v, False)]
    if not isinstance(value, str) or not value.strip():
        return []
    if not is_template(value) and not bare:
        return []
    return [_ENV.parse(value if is_template(value) else "{{ " + value + " }}")]


def template_references(value: Any, *, bare: bool = False) -> list[tuple[str, ...]]:
    """Dotted references (``("steps", "audit", "outputs", "candidates")``) in a value.

    With ``bare=True`` a string without ``{{ }}`` is read as an expression (``when:``).
    Names the template defines itself (``{% for x in ... %}``, ``{% set %}``, ``loop``)
    and Jinja's globals (``range``, ``dict``, ...) are not references.
    """
    refs: list[tuple[str, ...]] = []
    for tree in _trees(value, bare):
        local = {n.name for n in tree.find_all(nodes.Name) if n.ctx != "load"}
        local |= {"loop", *_ENV.globals}
        for node in tree.find_all((nodes.Getattr, nodes.Name, nodes.Getitem)):
            chain_ = _chain(node)
            if chain_ and chain_[0] not in local:
                refs.append(chain_)
    # keep only maximal chains (a.b.c, not also a.b and a)
    return [r for r in refs if not any(o != r and o[: len(r)] == r for o in refs)]


def unsafe_attributes(value: Any, *, bare: bool = False) -> list[str]:
    """Dunder attributes a template reaches for (``''.__class__``, ``x['__globals__']``).

    The sandbox refuses them (and any ``_`` attribute of an object) at run time;
    validation names them before anything runs. A single leading underscore is not
    flagged: ``outputs._x`` may be a recorded output's key, which the sandbox allows.
    """
    found: list[str] = []
    for tree in _trees(value, bare):
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            if isinstance(node, nodes.Getattr):
                name = node.attr
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                name = node.arg.value
            else:
                continue
            if name.startswith("__") and name not in found:
                found.append(name)
    return found


def _chain(node: nodes.Node) -> tuple[str, ...] | None:
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            parts.append(str(node.arg.value))
            node = node.node
        elif isinstance(node, nodes.Name):
            parts.append(node.name)
            return tuple(reversed(parts))
        else:
            return None
