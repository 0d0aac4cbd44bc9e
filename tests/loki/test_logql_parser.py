"""Parser: tables of valid and invalid LogQL, positions of errors, unsupported constructs."""

from __future__ import annotations

import pytest

from opsbook.loki.logql import LogQLParseError, UnsupportedLogQL, ast, parse

VALID = [
    '{app="api"}',
    '{app="api", env!="dev"}',
    '{app=~"api|web", env!~"dev.*"}',
    '{app!=""}',
    '{app="a"} |= "x" != "y" |~ "z+" !~ "w"',
    '{app="a"} |= "x" or "y"',
    '{app="a"} |= `raw\\n`',
    '{app="a"} | json',
    '{app="a"} | json a="b.c", d="e[0]", f',
    '{app="a"} | logfmt',
    '{app="a"} | logfmt --strict --keep-empty',
    '{app="a"} | logfmt a, b="c"',
    '{app="a"} | regexp "(?P<ip>\\\\S+) (?P<verb>\\\\w+)"',
    '{app="a"} | pattern "<ip> - <_> <verb>"',
    '{app="a"} | unpack',
    '{app="a"} | decolorize',
    '{app="a"} | json | status >= 500',
    '{app="a"} | json | status == 500 and level="error" or level="warn"',
    '{app="a"} | json | status > 400, status < 500',
    '{app="a"} | json | (a="x" or b="y") c="z"',
    '{app="a"} | logfmt | duration > 1m30s',
    '{app="a"} | logfmt | size >= 10KiB',
    '{app="a"} | logfmt | n = -1.5',
    '{app="a"} | json | addr = ip("10.0.0.0/8")',
    'rate_counter({app="a"} | unwrap x [1m])',
    'approx_topk(2, rate({app="a"}[1m]))',
    '{app="a"} |= ip("10.0.0.1")',
    '{app="a"} != ip("10.0.0.1") or ip("::1")',
    '{app="a"} | line_format "{{.a}} {{ .b | ToUpper }} {{ printf \\"%s\\" .c }}"',
    '{app="a"} | label_format x=y, z="{{.a}}-{{.b}}"',
    '{app="a"} | drop a, b="x", __error__',
    '{app="a"} | keep a, b',
    '{app="a"} | __error__=""',
    'count_over_time({app="a"}[5m])',
    'count_over_time({app="a"} |= "x" [5m] offset 1h)',
    'count_over_time({app="a"}[5m] offset 1h |= "x")',
    'rate(({app="a"} | json)[1m])',
    'sum_over_time({app="a"} | logfmt | unwrap bytes [1m])',
    'avg_over_time({app="a"} | logfmt | unwrap duration(d) | __error__="" [1m]) by (x)',
    'quantile_over_time(0.99, {app="a"} | json | unwrap latency [5m]) without (pod)',
    'absent_over_time({app="a"}[1m])',
    'sum by (a) (rate({app="a"}[1m]))',
    'sum(rate({app="a"}[1m])) by (a)',
    'topk(3, sum by (a) (rate({app="a"}[1m])))',
    'sort_desc(count_over_time({app="a"}[1m]))',
    'sum(rate({app="a"}[1m])) / sum(rate({app="b"}[1m]))',
    'rate({app="a"}[1m]) > bool 2',
    'rate({app="a"}[1m]) and on (x) rate({app="b"}[1m])',
    'rate({app="a"}[1m]) * on (x) group_left (y) rate({app="b"}[1m])',
    'rate({app="a"}[1m]) / ignoring (y) group_right rate({app="b"}[1m])',
    "vector(1)",
    "1 + 2 * 3",
    'label_replace(rate({app="a"}[1m]), "dst", "$1", "src", "(.*)")',
    '# comment\n{app="a"}',
]

INVALID = [
    ("", 1, 1),
    ('{app=""}', 1, 1),
    ('{app=~".*"}', 1, 1),
    ('{app!="x"}', 1, 1),
    ("{}", 1, 1),
    ('{app="a"', 1, 9),
    ('{app="a"} |= ', 1, 14),
    ('{app="a"} | json | status >', 1, 28),
    ('count_over_time({app="a"})', 1, 26),
    ('sum_over_time({app="a"}[1m])', 1, 1),
    ('count_over_time({app="a"} | json | unwrap x [1m])', 1, 1),
    ('count_over_time({app="a"}[1m]) by (x)', 1, 1),
    ('quantile_over_time({app="a"} | unwrap x [1m])', 1, 1),
    ('topk(sum(rate({app="a"}[1m])))', 1, 1),
    ('topk(1.5, rate({app="a"}[1m]))', 1, 6),
    ('sum(2, rate({app="a"}[1m]))', 1, 5),
    ('rate({app="a"}[1m]) and 1', 1, 21),
    ('{app="a"} + 1', 1, 11),
    ('{app="a"} | regexp "(\\\\d+)"', 1, 20),
    ('{app="a"} | pattern "<a><b>"', 1, 21),
    ('{app="a"} | label_format a=b, a=c', 1, 31),
    ('{app="a"} | line_format "{{.a"', 1, 25),
    ('{app="a"} | line_format "{{ nosuchfunc .a }}"', 1, 25),
    ('{app="a"} |~ "(?=x)"', 1, 11),
    ('sum(rate({app="a"}[1m])\n  foo', 2, 3),
    ('sum(rate({app="a"}[1m]) by (x))', 1, 5),
    ('{app="a"}\n | json\n | status >= "x"', 3, 14),
    ('rate({app="a"}[1m]) + bool 1', 1, 23),
]

UNSUPPORTED = [
    'variants(count_over_time({app="a"}[1m])) of ({app="a"}[1m])',
    '{app="a"} | xml',
    '{app="a"} | line_format "{{ __timestamp__ }}"',
    '{app="a"} | line_format "{{ range .a }}x{{ end }}"',
]


@pytest.mark.parametrize("query", VALID)
def test_valid_queries_parse(query: str) -> None:
    assert parse(query) is not None


@pytest.mark.parametrize(("query", "line", "column"), INVALID)
def test_invalid_queries_report_position(query: str, line: int, column: int) -> None:
    with pytest.raises(LogQLParseError) as info:
        parse(query)
    assert (info.value.line, info.value.column) == (line, column), str(info.value)


@pytest.mark.parametrize("query", UNSUPPORTED)
def test_unsupported_constructs_are_named(query: str) -> None:
    with pytest.raises(UnsupportedLogQL) as info:
        parse(query)
    assert info.value.construct and info.value.line >= 1


def test_binary_precedence_and_right_associative_power() -> None:
    assert parse("1 + 2 * 3") == ast.Literal(7.0)
    assert parse("2 ^ 3 ^ 2") == ast.Literal(512.0)
    assert parse("(1 + 2) * 3") == ast.Literal(9.0)
    assert parse("10 - 4 - 3") == ast.Literal(3.0)
    assert parse("1 > 2") == ast.Literal(0.0)
    expr = parse('rate({a="b"}[1m]) + rate({a="c"}[1m]) * 2 > 1 or vector(0)')
    assert isinstance(expr, ast.BinOp) and expr.op == "or"
    assert isinstance(expr.lhs, ast.BinOp) and expr.lhs.op == ">"


def test_label_filter_grouping_follows_loki_grammar() -> None:
    # `and` binds tighter than `or`; a comma binds the filter before it to the rest.
    filt = parse('{a="b"} | x="1" or y="2" and z="3"').stages[0].filter  # type: ignore[union-attr]
    assert isinstance(filt, ast.LFOr) and isinstance(filt.right, ast.LFAnd)
    filt = parse('{a="b"} | x="1", y="2" or z="3"').stages[0].filter  # type: ignore[union-attr]
    assert isinstance(filt, ast.LFAnd) and isinstance(filt.right, ast.LFOr)


def test_range_forms_are_equivalent() -> None:
    forms = [
        'count_over_time({a="b"} |= "x" [5m] offset 1m)',
        'count_over_time({a="b"}[5m] offset 1m |= "x")',
        'count_over_time(({a="b"} |= "x")[5m] offset 1m)',
    ]
    ranges = [parse(q).range for q in forms]  # type: ignore[union-attr]
    assert ranges[0] == ranges[1] == ranges[2]
    assert ranges[0].range_ns == 300 * 10**9 and ranges[0].offset_ns == 60 * 10**9


def test_durations_and_bytes_literals() -> None:
    stage = parse('{a="b"} | x > 1h30m').stages[0]  # type: ignore[union-attr]
    assert stage.filter == ast.LFDuration("x", ">", 5400 * 10**9)
    stage = parse('{a="b"} | x > 1.5KiB').stages[0]  # type: ignore[union-attr]
    assert stage.filter == ast.LFBytes("x", ">", 1536)
    stage = parse('{a="b"} | x > 2d').stages[0]  # type: ignore[union-attr]
    assert stage.filter == ast.LFDuration("x", ">", 2 * 86400 * 10**9)


def test_string_escapes() -> None:
    stage = parse('{a="b"} |= "tab\\there \\"q\\" \\u00e9"').stages[0]  # type: ignore[union-attr]
    assert stage.filters[0].values == ('tab\there "q" é',)
