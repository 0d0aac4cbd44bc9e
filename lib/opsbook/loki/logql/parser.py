"""Hand-written recursive-descent parser for LogQL (Loki's ``syntax.y`` grammar).

``parse(text)`` returns an :mod:`~opsbook.loki.logql.ast` tree or raises
:class:`LogQLParseError` (with line/column) / :class:`UnsupportedLogQL`. Validation rules
Loki applies while parsing are applied here too: the non-empty matcher rule, unwrap
requirements per range function, grouping restrictions, parameters of topk/quantile,
literals in set operations, template and regex syntax.
"""

from __future__ import annotations

import re
from typing import NoReturn

from opsbook.loki.logql import ast
from opsbook.loki.logql.errors import LogQLParseError, UnsupportedLogQL
from opsbook.loki.logql.lexer import BYTES, DURATION, EOF, IDENT, NUMBER, STRING, Token, tokenize
from opsbook.loki.logql.regex import Regex, RegexSyntaxError, capture_names, compile_re2

RANGE_OPS = frozenset(
    {
        "count_over_time",
        "rate",
        "rate_counter",
        "bytes_over_time",
        "bytes_rate",
        "avg_over_time",
        "sum_over_time",
        "min_over_time",
        "max_over_time",
        "stdvar_over_time",
        "stddev_over_time",
        "quantile_over_time",
        "first_over_time",
        "last_over_time",
        "absent_over_time",
    }
)
VECTOR_OPS = frozenset(
    {
        "sum",
        "avg",
        "count",
        "max",
        "min",
        "stddev",
        "stdvar",
        "bottomk",
        "topk",
        "sort",
        "sort_desc",
        "approx_topk",
    }
)
_UNWRAP_REQUIRED = frozenset(
    {
        "avg_over_time",
        "sum_over_time",
        "min_over_time",
        "max_over_time",
        "stdvar_over_time",
        "stddev_over_time",
        "quantile_over_time",
        "first_over_time",
        "last_over_time",
        "rate_counter",
    }
)
_UNWRAP_FORBIDDEN = frozenset({"count_over_time", "bytes_over_time", "bytes_rate"})
_RANGE_GROUPING_OK = frozenset(
    {
        "avg_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "quantile_over_time",
        "max_over_time",
        "min_over_time",
        "first_over_time",
        "last_over_time",
    }
)
PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    "<": 3,
    "<=": 3,
    ">": 3,
    ">=": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "^": 6,
}
COMPARISON_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})
SET_OPS = frozenset({"and", "or", "unless"})
_LINE_FILTER_OPS = ("|=", "!=", "|~", "!~", "|>", "!>")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_STAGE_KEYWORDS = frozenset(
    {
        "json",
        "logfmt",
        "regexp",
        "pattern",
        "unpack",
        "line_format",
        "label_format",
        "decolorize",
        "drop",
        "keep",
        "unwrap",
        "xml",
    }
)
_FILTER_CMP = (">", ">=", "<", "<=", "!=", "=", "==")


MAX_DEPTH = 100  # nesting levels a query may use (Loki bounds queries by length)


class Parser:
    """Parses one query; use :func:`parse`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.depth = 0

    def enter(self) -> None:
        """One nesting level deeper; refuse queries nested beyond :data:`MAX_DEPTH`."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(
                f"query nests deeper than {MAX_DEPTH} levels",
            )

    # ------------------------------------------------------------------ helpers
    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind != EOF:
            self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == kind and (text is None or tok.text == text)

    def at_kw(self, word: str, k: int = 0) -> bool:
        return self.at(IDENT, word, k)

    def fail(self, message: str, tok: Token | None = None) -> NoReturn:
        tok = tok or self.peek()
        raise LogQLParseError(message, tok.line, tok.col)

    def unexpected(self, expecting: str) -> NoReturn:
        tok = self.peek()
        what = "end of input" if tok.kind == EOF else f"{tok.kind} {tok.text!r}"
        self.fail(f"syntax error: unexpected {what}, expecting {expecting}", tok)

    def expect(self, kind: str, expecting: str | None = None) -> Token:
        if self.peek().kind != kind:
            self.unexpected(expecting or kind)
        return self.advance()

    def expect_kw(self, word: str) -> Token:
        if not self.at_kw(word):
            self.unexpected(word)
        return self.advance()

    def unsupported(self, construct: str, tok: Token | None = None) -> NoReturn:
        tok = tok or self.peek()
        raise UnsupportedLogQL(construct, tok.line, tok.col)

    # ------------------------------------------------------------------ entry
    def parse(self) -> ast.Expr:
        if self.at(EOF):
            self.fail("syntax error: unexpected end of input")
        expr = self.parse_expr(0)
        if not self.at(EOF):
            self.unexpected("end of input")
        return expr

    def parse_expr(self, min_prec: int) -> ast.Expr:
        self.enter()
        try:
            return self._parse_expr(min_prec)
        finally:
            self.depth -= 1

    def _parse_expr(self, min_prec: int) -> ast.Expr:
        lhs = self.parse_unary()
        while True:
            tok = self.peek()
            op = tok.text if tok.kind in PRECEDENCE or tok.text in SET_OPS else None
            if tok.kind == IDENT and tok.text not in SET_OPS:
                op = None
            if op is None or PRECEDENCE[op] < min_prec:
                return lhs
            self.advance()
            return_bool, matching = self.parse_bin_modifiers(op)
            rhs = self.parse_expr(PRECEDENCE[op] + (0 if op == "^" else 1))
            lhs = self.make_binop(op, lhs, rhs, return_bool, matching, tok)

    def parse_bin_modifiers(self, op: str) -> tuple[bool, ast.VectorMatching]:
        return_bool = False
        if self.at_kw("bool"):
            bool_tok = self.advance()
            if op not in COMPARISON_OPS:
                self.fail("bool modifier can only be used on comparison operators", bool_tok)
            return_bool = True
        on = False
        labels: tuple[str, ...] = ()
        card = "one-to-one"
        include: tuple[str, ...] = ()
        if self.at_kw("on") or self.at_kw("ignoring"):
            on = self.advance().text == "on"
            labels = self.parse_label_list()
            if self.at_kw("group_left") or self.at_kw("group_right"):
                group_tok = self.advance()
                if op in SET_OPS:
                    self.fail(f'no grouping allowed for "{op}" operation', group_tok)
                card = "many-to-one" if group_tok.text == "group_left" else "one-to-many"
                if self.at("("):
                    include = self.parse_label_list()
        return return_bool, ast.VectorMatching(card, on, labels, include)

    def parse_label_list(self) -> tuple[str, ...]:
        self.expect("(", "(")
        names: list[str] = []
        while not self.at(")"):
            names.append(self.expect(IDENT, "label name").text)
            if not self.at(")"):
                self.expect(",", ", or )")
        self.advance()
        return tuple(names)

    def make_binop(
        self,
        op: str,
        lhs: ast.Expr,
        rhs: ast.Expr,
        return_bool: bool,
        matching: ast.VectorMatching,
        tok: Token,
    ) -> ast.Expr:
        for side, leg in (("left", lhs), ("right", rhs)):
            if isinstance(leg, ast.LogSelector):
                self.fail(
                    f"unexpected type for {side} leg of binary operation ({op}): "
                    "log selector (use a metric query such as count_over_time)",
                    tok,
                )
        if op in SET_OPS:
            for side, leg in (("left", lhs), ("right", rhs)):
                if isinstance(leg, ast.Literal):
                    self.fail(
                        f"unexpected literal for {side} leg of logical/set binary "
                        f"operation ({op}): {leg.value:f}",
                        tok,
                    )
        if isinstance(lhs, ast.Literal) and isinstance(rhs, ast.Literal):
            from opsbook.loki.logql.evaluator import merge_float

            value, _ = merge_float(op, lhs.value, rhs.value, False)
            return ast.Literal(value)
        return ast.BinOp(op, lhs, rhs, return_bool, matching)

    # ------------------------------------------------------------------ primaries
    def parse_unary(self) -> ast.Expr:
        tok = self.peek()
        if tok.kind == "(":
            self.advance()
            expr = self.parse_expr(0)
            self.expect(")", ")")
            return expr
        if tok.kind == "{":
            selector = self.parse_selector()
            stages, unwrap = self.parse_pipeline(allow_unwrap=False)
            return ast.LogSelector(selector, stages)
        if tok.kind == NUMBER:
            self.advance()
            return ast.Literal(float(tok.value))  # type: ignore[arg-type]
        if tok.kind in ("+", "-") and self.at(NUMBER, k=1):
            self.advance()
            value = float(self.advance().value)  # type: ignore[arg-type]
            return ast.Literal(-value if tok.kind == "-" else value)
        if tok.kind == IDENT:
            name = tok.text
            nxt = self.peek(1)
            if name in RANGE_OPS and nxt.kind == "(":
                return self.parse_range_agg()
            if name in VECTOR_OPS and (nxt.kind == "(" or nxt.text in ("by", "without")):
                return self.parse_vector_agg()
            if name == "label_replace" and nxt.kind == "(":
                return self.parse_label_replace()
            if name == "vector" and nxt.kind == "(":
                self.advance()
                self.advance()
                value = self.parse_number("number")
                self.expect(")", ")")
                return ast.VectorLit(value)
            if name == "variants" and nxt.kind == "(":
                self.unsupported("variants", tok)
        self.unexpected("a selector '{', a number or a function")

    def parse_number(self, expecting: str) -> float:
        sign = 1.0
        if self.at("-") or self.at("+"):
            sign = -1.0 if self.advance().kind == "-" else 1.0
        return sign * float(self.expect(NUMBER, expecting).value)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ selectors
    def parse_selector(self) -> tuple[ast.Matcher, ...]:
        open_tok = self.expect("{", "{")
        matchers: list[ast.Matcher] = []
        while not self.at("}"):
            matchers.append(self.parse_matcher())
            if not self.at("}"):
                self.expect(",", ", or }")
        self.advance()
        if not matchers:
            self.fail(
                "syntax error: unexpected }, expecting IDENTIFIER (a selector needs a matcher)",
                open_tok,
            )
        if all(m.matches("") for m in matchers):
            self.fail(
                "queries require at least one regexp or equality matcher that does not have an "
                'empty-compatible value. For instance, app=~".*" does not meet this requirement, '
                'but app=~".+" will',
                open_tok,
            )
        return tuple(matchers)

    def parse_matcher(self) -> ast.Matcher:
        name_tok = self.expect(IDENT, "label name")
        op_tok = self.peek()
        if op_tok.kind not in ("=", "!=", "=~", "!~"):
            self.unexpected("=, !=, =~ or !~")
        self.advance()
        value_tok = self.expect(STRING, "string")
        return self.make_matcher(name_tok.text, op_tok.kind, str(value_tok.value), value_tok)

    def make_matcher(self, name: str, op: str, value: str, tok: Token) -> ast.Matcher:
        regex = None
        if op in ("=~", "!~"):
            regex = self.compile_regex(value, tok, dotall=True)
        return ast.Matcher(name, op, value, regex)

    def compile_regex(self, value: str, tok: Token, dotall: bool = False) -> Regex:
        try:
            return compile_re2(value, dotall)
        except RegexSyntaxError as exc:
            self.fail(str(exc), tok)

    # ------------------------------------------------------------------ pipelines
    def parse_pipeline(self, allow_unwrap: bool) -> tuple[tuple[ast.Stage, ...], ast.Unwrap | None]:
        stages: list[ast.Stage] = []
        while True:
            tok = self.peek()
            if tok.kind in _LINE_FILTER_OPS:
                stages.append(self.parse_line_filters())
                continue
            if tok.kind != "|":
                return tuple(stages), None
            nxt = self.peek(1)
            if nxt.kind == IDENT and nxt.text == "unwrap":
                if not allow_unwrap:
                    self.fail("unwrap is only allowed inside a range aggregation", nxt)
                return tuple(stages), self.parse_unwrap()
            self.advance()
            stages.append(self.parse_stage())

    def parse_line_filters(self) -> ast.LineFilterStage:
        filters: list[ast.LineFilter] = []
        while self.peek().kind in _LINE_FILTER_OPS:
            op_tok = self.advance()
            values: list[str] = []
            is_ip = self.at_kw("ip") and self.at("(", k=1)
            values.append(self.parse_line_filter_value(op_tok, is_ip))
            while self.at_kw("or"):
                self.advance()
                if (self.at_kw("ip") and self.at("(", k=1)) != is_ip:
                    self.unsupported("ip() and strings in one 'or' line filter")
                values.append(self.parse_line_filter_value(op_tok, is_ip))
            for value, op in ((v, op_tok.kind) for v in values if not is_ip):
                if op in ("|~", "!~"):
                    self.compile_regex(value, op_tok)
                if op in ("|>", "!>"):
                    from opsbook.loki.logql.pipeline import compile_line_pattern

                    try:
                        compile_line_pattern(value)
                    except ValueError as exc:
                        self.fail(str(exc), op_tok)
            filters.append(
                ast.LineFilter(op_tok.kind, tuple(values), is_ip, op_tok.line, op_tok.col)
            )
        return ast.LineFilterStage(tuple(filters))

    def parse_line_filter_value(self, op_tok: Token, is_ip: bool) -> str:
        """A line filter's string, or the pattern of ``ip("...")`` (``|=`` / ``!=`` only)."""
        if not is_ip:
            return str(self.expect(STRING, "string").value)
        ip_tok = self.advance()
        if op_tok.kind not in ("|=", "!="):
            self.fail("syntax error: unexpected ip, ip() line filters only take |= and !=", ip_tok)
        self.advance()
        pattern = str(self.expect(STRING, "string").value)
        self.expect(")", ")")
        from opsbook.loki.logql.pipeline import compile_ip_matcher

        try:
            compile_ip_matcher(pattern)
        except ValueError as exc:
            self.fail(str(exc), ip_tok)
        return pattern

    def parse_stage(self) -> ast.Stage:
        tok = self.peek()
        word = tok.text if tok.kind == IDENT else ""
        nxt = self.peek(1)
        is_keyword = word in _STAGE_KEYWORDS and nxt.kind not in _FILTER_CMP + ("=~", "!~")
        if not is_keyword:
            if tok.kind == IDENT or tok.kind == "(":
                return ast.LabelFilterStage(self.parse_label_filter())
            self.unexpected("a parser, a label filter or a formatting stage")
        self.advance()
        if word == "json":
            return ast.JsonStage(self.parse_extractions())
        if word == "logfmt":
            strict, keep_empty = self.parse_logfmt_flags()
            return ast.LogfmtStage(self.parse_extractions(), strict, keep_empty)
        if word == "regexp":
            value_tok = self.expect(STRING, "string")
            self.check_regexp_parser(str(value_tok.value), value_tok)
            return ast.RegexpStage(str(value_tok.value))
        if word == "pattern":
            value_tok = self.expect(STRING, "string")
            from opsbook.loki.logql.pipeline import compile_pattern

            try:
                compile_pattern(str(value_tok.value))
            except ValueError as exc:
                self.fail(str(exc), value_tok)
            return ast.PatternStage(str(value_tok.value))
        if word == "unpack":
            return ast.UnpackStage()
        if word == "decolorize":
            return ast.DecolorizeStage()
        if word == "line_format":
            value_tok = self.expect(STRING, "string")
            self.check_template(str(value_tok.value), value_tok)
            return ast.LineFormatStage(str(value_tok.value))
        if word == "label_format":
            return self.parse_label_format()
        if word in ("drop", "keep"):
            names = self.parse_named_matchers()
            return ast.DropStage(names) if word == "drop" else ast.KeepStage(names)
        self.unsupported(f"{word} parser", tok)

    def check_regexp_parser(self, pattern: str, tok: Token) -> None:
        """Loki's checks of a ``| regexp`` expression: RE2 syntax, then each named capture in
        order (a label name, not repeated), then at least one."""
        self.compile_regex(pattern, tok)
        seen: set[str] = set()
        for name in capture_names(pattern):
            if not _LABEL_NAME.fullmatch(name):
                self.fail(f"invalid extracted label name '{name}'", tok)
            if name in seen:
                self.fail(f"duplicate extracted label name '{name}'", tok)
            seen.add(name)
        if not seen:
            self.fail("at least one named capture must be supplied", tok)

    def check_template(self, text: str, tok: Token) -> None:
        from opsbook.loki.logql.template import TemplateError, TemplateUnsupported, compile_template

        try:
            compile_template(text)
        except TemplateUnsupported as exc:
            self.unsupported(f"template {exc}", tok)
        except TemplateError as exc:
            self.fail(f"invalid template: {exc}", tok)

    def parse_logfmt_flags(self) -> tuple[bool, bool]:
        strict = keep_empty = False
        while self.at("-") and self.at("-", k=1) and self.peek(2).kind == IDENT:
            self.advance()
            self.advance()
            flag_tok = self.advance()
            flag = flag_tok.text
            if flag == "keep" and self.at("-") and self.at_kw("empty", k=1):
                self.advance()
                self.advance()
                flag = "keep-empty"
            if flag == "strict":
                strict = True
            elif flag == "keep-empty":
                keep_empty = True
            else:
                self.fail(f"invalid logfmt flag: --{flag}", flag_tok)
        return strict, keep_empty

    def parse_extractions(self) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        if not self.at(IDENT):
            return ()
        while True:
            name_tok = self.expect(IDENT, "label name")
            if self.at("="):
                self.advance()
                path = str(self.expect(STRING, "string").value)
            else:
                path = name_tok.text
            out.append((name_tok.text, path))
            if not self.at(","):
                return tuple(out)
            self.advance()

    def parse_label_format(self) -> ast.LabelFormatStage:
        formats: list[tuple[str, str, bool]] = []
        seen: set[str] = set()
        while True:
            dst_tok = self.expect(IDENT, "label name")
            self.expect("=", "=")
            src_tok = self.peek()
            if src_tok.kind == IDENT:
                self.advance()
                formats.append((dst_tok.text, src_tok.text, False))
            elif src_tok.kind == STRING:
                self.advance()
                self.check_template(str(src_tok.value), src_tok)
                formats.append((dst_tok.text, str(src_tok.value), True))
            else:
                self.unexpected("label name or template string")
            if dst_tok.text in seen:
                self.fail(
                    f"multiple label name '{dst_tok.text}' appears in the same label_format",
                    dst_tok,
                )
            seen.add(dst_tok.text)
            if not self.at(","):
                return ast.LabelFormatStage(tuple(formats))
            self.advance()

    def parse_named_matchers(self) -> tuple[tuple[str, ast.Matcher | None], ...]:
        out: list[tuple[str, ast.Matcher | None]] = []
        while True:
            if self.at(IDENT) and self.peek(1).kind in ("=", "!=", "=~", "!~"):
                matcher = self.parse_matcher()
                out.append((matcher.name, matcher))
            else:
                out.append((self.expect(IDENT, "label name").text, None))
            if not self.at(","):
                return tuple(out)
            self.advance()

    def parse_unwrap(self) -> ast.Unwrap:
        self.expect("|")
        self.expect_kw("unwrap")
        conv = ""
        if self.peek().text in ("bytes", "duration", "duration_seconds") and self.at("(", k=1):
            conv = self.advance().text
            self.advance()
            label = self.expect(IDENT, "label name").text
            self.expect(")", ")")
        else:
            label = self.expect(IDENT, "label name").text
        post: list[ast.LabelFilter] = []
        while self.at("|"):
            if self.peek(1).kind != IDENT and self.peek(1).kind != "(":
                self.unexpected("a label filter after unwrap")
            if self.peek(1).text in _STAGE_KEYWORDS and self.peek(2).kind not in _FILTER_CMP:
                self.fail("only label filters are allowed after unwrap", self.peek(1))
            self.advance()
            post.append(self.parse_label_filter())
        return ast.Unwrap(label, conv, tuple(post))

    # ------------------------------------------------------------------ label filters
    def parse_label_filter(self) -> ast.LabelFilter:
        left = self.parse_lf_and()
        while self.at_kw("or"):
            self.advance()
            right = self.parse_lf_and()
            left = ast.LFOr(left, right)
        return left

    def parse_lf_and(self) -> ast.LabelFilter:
        left = self.parse_lf_unary()
        while self.at_kw("and"):
            self.advance()
            right = self.parse_lf_unary()
            left = ast.LFAnd(left, right)
        return left

    def parse_lf_unary(self) -> ast.LabelFilter:
        # A comma or a juxtaposed filter binds the filter before it to everything after it
        # (yacc shifts on those conflicts), so `a, b or c` is `a and (b or c)`.
        primary = self.parse_lf_primary()
        if self.at(","):
            self.advance()
            return ast.LFAnd(primary, self.parse_label_filter())
        if self.starts_label_filter():
            return ast.LFAnd(primary, self.parse_label_filter())
        return primary

    def starts_label_filter(self) -> bool:
        tok = self.peek()
        if tok.kind == "(":
            return True
        return (
            tok.kind == IDENT
            and tok.text not in ("or", "and", "offset", "by", "without")
            and self.peek(1).kind in _FILTER_CMP + ("=~", "!~")
        )

    def parse_lf_primary(self) -> ast.LabelFilter:
        if self.at("("):
            self.advance()
            self.enter()
            inner = self.parse_label_filter()
            self.depth -= 1
            self.expect(")", ")")
            return inner
        name_tok = self.expect(IDENT, "label name")
        op_tok = self.peek()
        op = op_tok.kind
        if op not in _FILTER_CMP and op not in ("=~", "!~"):
            self.unexpected("a comparison operator")
        self.advance()
        value = self.peek()
        name = name_tok.text
        if value.kind == STRING:
            if op not in ("=", "!=", "=~", "!~"):
                self.unexpected("a number, duration or bytes value")
            self.advance()
            return ast.LFString(self.make_matcher(name, op, str(value.value), value))
        if op in ("=~", "!~"):
            self.unexpected("string")
        cmp_op = "==" if op == "=" else op
        if value.kind == IDENT and value.text == "ip" and self.at("(", k=1):
            if op not in ("=", "!="):
                self.fail("ip() filter only supports = and !=", value)
            self.advance()
            self.advance()
            pattern = str(self.expect(STRING, "string").value)
            self.expect(")", ")")
            from opsbook.loki.logql.pipeline import compile_ip_matcher

            try:
                compile_ip_matcher(pattern)
            except ValueError as exc:
                self.fail(str(exc), value)
            return ast.LFIp(name, op, pattern)
        if value.kind == DURATION:
            self.advance()
            return ast.LFDuration(name, cmp_op, int(value.value))  # type: ignore[call-overload]
        if value.kind == BYTES:
            self.advance()
            return ast.LFBytes(name, cmp_op, int(value.value))  # type: ignore[call-overload]
        if value.kind in (NUMBER, "+", "-"):
            return ast.LFNumber(name, cmp_op, self.parse_number("number"))
        self.unexpected("a string, number, duration or bytes value")

    # ------------------------------------------------------------------ aggregations
    def parse_grouping(self) -> ast.Grouping:
        without = self.advance().text == "without"
        return ast.Grouping(without, self.parse_label_list())

    def parse_range_agg(self) -> ast.RangeAgg:
        op_tok = self.advance()
        op = op_tok.text
        self.expect("(", "(")
        param = None
        if self.peek().kind in ("+", "-") and self.at(NUMBER, k=1):
            # Loki's grammar takes a bare NUMBER here: quantile_over_time(-0.5, ...) is refused
            self.fail(f"syntax error: unexpected {self.peek().kind}, expecting NUMBER")
        if self.at(NUMBER):
            param = self.parse_number("number")
            self.expect(",", ",")
            if op != "quantile_over_time":
                self.fail(f"parameter {param:g} not supported for operation {op}", op_tok)
        elif op == "quantile_over_time":
            self.fail(f"parameter required for operation {op}", op_tok)
        log_range = self.parse_log_range()
        self.expect(")", ")")
        grouping = None
        if self.at_kw("by") or self.at_kw("without"):
            grouping = self.parse_grouping()
        if grouping is not None and op not in _RANGE_GROUPING_OK:
            self.fail(f"grouping not allowed for {op} aggregation", op_tok)
        if log_range.unwrap is not None and op in _UNWRAP_FORBIDDEN:
            self.fail(f"invalid aggregation {op} with unwrap", op_tok)
        if log_range.unwrap is None and op in _UNWRAP_REQUIRED:
            self.fail(f"invalid aggregation {op} without unwrap", op_tok)
        return ast.RangeAgg(op, log_range, param, grouping)

    def parse_log_range(self) -> ast.LogRange:
        self.enter()
        try:
            return self._parse_log_range()
        finally:
            self.depth -= 1

    def _parse_log_range(self) -> ast.LogRange:
        if self.at("("):
            self.advance()
            inner = self.parse_log_range_body(require_range=False)
            self.expect(")", ")")
            if inner.range_ns:
                return inner
            range_ns = self.parse_range()
            offset = self.parse_offset()
            return ast.LogRange(inner.selector, range_ns, offset, inner.unwrap)
        return self.parse_log_range_body(require_range=True)

    def parse_log_range_body(self, require_range: bool) -> ast.LogRange:
        if self.at("("):
            return self.parse_log_range()
        matchers = self.parse_selector()
        range_ns = 0
        offset = 0
        if self.at("["):
            range_ns = self.parse_range()
            offset = self.parse_offset()
        stages, unwrap = self.parse_pipeline(allow_unwrap=True)
        if not range_ns and self.at("["):
            range_ns = self.parse_range()
            offset = self.parse_offset()
        if not range_ns and require_range:
            self.unexpected("a range such as [5m]")
        return ast.LogRange(ast.LogSelector(matchers, stages), range_ns, offset, unwrap)

    def parse_range(self) -> int:
        self.expect("[", "[")
        tok = self.expect(DURATION, "a duration such as 5m")
        self.expect("]", "]")
        value = int(tok.value)  # type: ignore[call-overload]
        if value <= 0:
            self.fail("range must be greater than zero", tok)
        return value

    def parse_offset(self) -> int:
        if not self.at_kw("offset"):
            return 0
        self.advance()
        tok = self.expect(DURATION, "a duration such as 5m")
        return int(tok.value)  # type: ignore[call-overload]

    def parse_vector_agg(self) -> ast.VectorAgg:
        op_tok = self.advance()
        op = op_tok.text
        grouping = None
        if self.at_kw("by") or self.at_kw("without"):
            grouping = self.parse_grouping()
        self.expect("(", "(")
        param_tok = self.peek()
        param = None
        if self.at(NUMBER) and self.at(",", k=1):
            param = float(self.advance().value)  # type: ignore[arg-type]
            self.advance()
        inner = self.parse_expr(0)
        self.expect(")", ")")
        if grouping is None and (self.at_kw("by") or self.at_kw("without")):
            grouping = self.parse_grouping()
        if isinstance(inner, ast.LogSelector):
            self.fail(
                f"syntax error: unexpected log selector inside {op}(), expecting a metric "
                "expression such as count_over_time({...}[5m])",
                op_tok,
            )
        if op == "approx_topk" and grouping is not None:
            self.fail("approx_topk does not support grouping (by/without)", op_tok)
        int_param = None
        if op in ("topk", "bottomk", "approx_topk"):
            if param is None:
                self.fail(f"parameter required for operation {op}", op_tok)
            if param != int(param):
                self.fail(f"invalid parameter {op}({param:g},", param_tok)
            int_param = int(param)
            if int_param <= 0:
                self.fail(f"invalid parameter (must be greater than 0) {op}({int_param}", param_tok)
        elif param is not None:
            self.fail(f"unsupported parameter for operation {op}({param:g},", param_tok)
        return ast.VectorAgg(op, inner, grouping, int_param)

    def parse_label_replace(self) -> ast.LabelReplace:
        op_tok = self.advance()
        self.expect("(", "(")
        inner = self.parse_expr(0)
        if isinstance(inner, ast.LogSelector):
            self.fail("label_replace needs a metric expression", op_tok)
        args: list[Token] = []
        for _ in range(4):
            self.expect(",", ",")
            args.append(self.expect(STRING, "string"))
        self.expect(")", ")")
        dst, repl, src, regex = (str(t.value) for t in args)
        if not _LABEL_NAME.fullmatch(dst):
            self.fail(f"invalid destination label name in label_replace(): {dst}", args[0])
        compiled = self.compile_regex(regex, args[3], dotall=True)
        return ast.LabelReplace(inner, dst, repl, src, compiled)


def parse(text: str) -> ast.Expr:
    """Parse a LogQL query into an AST.

    >>> parse('{app="api"} |= "error"').matchers[0].name
    'app'
    """
    expr = Parser(text).parse()
    if tree_depth(expr) > MAX_DEPTH:  # long chains such as a + b + c + ... nest on the left
        raise LogQLParseError(f"query nests deeper than {MAX_DEPTH} levels")
    return expr


def tree_depth(expr: ast.Expr) -> int:
    """Depth of the expression tree (without recursion: any depth is measured)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for name in ("lhs", "rhs", "expr"):
            child = getattr(node, name, None)
            if child is not None:
                stack.append((child, depth + 1))
    return deepest
