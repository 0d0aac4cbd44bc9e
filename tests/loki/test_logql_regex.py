"""RE2 regexes (``logql/regex.py``): Go syntax, Go's refusals, linear time, Go's replace."""

from __future__ import annotations

import re

import pytest

from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import LogQLParseError
from opsbook.loki.logql.parser import parse
from opsbook.loki.logql.regex import (
    RegexSyntaxError,
    capture_names,
    compile_re2,
    expand_go_template,
)
from opsbook.loki.rules import RuleFileError, parse_rules

# (pattern, text, whole-text match expected) — constructs Go's regexp accepts
GO_SYNTAX = [
    (r"\pL+", "héllo", True),
    (r"\p{Greek}+", "αβγ", True),
    (r"\PL+", "123", True),
    (r"\Q.*+\E", ".*+", True),
    (r"\Q.*+\E", "abc", False),
    (r"(?<name>\d+)", "42", True),
    (r"(?P<name>\d+)", "42", True),
    (r"[[:alpha:]]+", "abc", True),
    (r"[[:^alpha:]]+", "123", True),
    (r"[[:^alpha:]]+", "a1", False),
    (r"(?i)ERROR", "error", True),
    (r"(?U)a+", "aaa", True),
    (r"a\z", "a", True),
    (r"\x{263a}", "☺", True),
    (r"\101", "A", True),  # octal
    (r"a.c", "a\nc", False),  # . does not match a newline without (?s)
    (r"(?s)a.c", "a\nc", True),
    (r"\d+", "٣", False),  # \d is ASCII in Go
]

# constructs Go's regexp refuses (Loki reports a parse error)
REFUSED = [
    r"(?=x)",
    r"(?!x)",
    r"(?<=x)a",
    r"(?<!x)a",
    r"(a)\1",
    r"a**",
    r"a++",
    r"\C",
    r"a\Z",
    r"x{1001}",
    r"(?P=name)",
    r"[z-a]",
    r"(a",
    r"\8",
]


@pytest.mark.parametrize(("pattern", "text", "expected"), GO_SYNTAX)
def test_go_syntax_is_accepted_and_matches_like_go(pattern: str, text: str, expected: bool) -> None:
    assert compile_re2(pattern).test_full(text) is expected


@pytest.mark.parametrize("pattern", REFUSED)
def test_constructs_go_refuses_are_refused(pattern: str) -> None:
    with pytest.raises(RegexSyntaxError, match="^error parsing regexp: "):
        compile_re2(pattern)


def test_backslash_c_inside_quoted_literal_is_a_literal() -> None:
    assert compile_re2(r"\Q\C\E").test_full("\\C")


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    regex = compile_re2("(a+)+$")
    hostile = "a" * 100_000 + "!"
    assert regex.test(hostile) is False
    assert regex.test(hostile[:-1]) is True
    assert compile_re2("(x+x+)+y").search("x" * 50_000) is None


def test_dotall_wraps_like_prometheus_matchers() -> None:
    assert compile_re2("a.b", dotall=True).test_full("a\nb")
    assert not compile_re2("a.b").test_full("a\nb")


def test_search_groups_by_name_and_number_in_characters() -> None:
    match = compile_re2(r"(?P<word>\pL+) (\d+)").search("→ wörld 42 tail")
    assert match is not None
    assert match.group("word") == "wörld"
    assert match.group(2) == "42"
    assert match.group() == "wörld 42"
    assert match.span() == (2, 10)
    assert compile_re2(r"(a)|(b)").search("b").group(1) is None  # type: ignore[union-attr]
    with pytest.raises(IndexError):
        match.group("nope")


def test_groupindex_lists_named_groups() -> None:
    assert compile_re2(r"(?P<a>x)(y)(?<b>z)").groupindex == {"a": 1, "b": 3}


# (pattern, names in the order Go's SubexpNames lists them, unnamed groups left out)
CAPTURE_NAMES = [
    (r"(?P<a>x)(y)(?<b>z)", ["a", "b"]),
    (r"(?P<a>x)(?P<a>y)", ["a", "a"]),
    (r"(?:(?P<a>x)|(?P<b>y))(?P<a>z)", ["a", "b", "a"]),
    (r"[(?P<a>x)](?P<b>y)", ["b"]),  # inside a character class: literal text
    (r"[]](?P<x>a)[^]](?P<y>b)", ["x", "y"]),  # a leading ] is a literal of the class
    (r"[[:alpha:](](?P<z>.)", ["z"]),
    (r"\((?P<q>a)\)", ["q"]),
    (r"\Q(?P<a>x)\E(?P<b>y)", ["b"]),  # quoted literal text
    (r"\Q(?P<a>x)", []),  # \Q up to the end of the pattern
]


@pytest.mark.parametrize(("pattern", "names"), CAPTURE_NAMES)
def test_capture_names_lists_every_named_group_in_order(pattern: str, names: list[str]) -> None:
    compile_re2(pattern)  # a pattern RE2 accepts
    assert capture_names(pattern) == names


# | regexp expressions Loki refuses (log.NewRegexpParser) and its message
REGEXP_PARSER_REFUSED = [
    (r"(?P<a>\\d+) (?P<a>\\w+)", "duplicate extracted label name 'a'"),
    (r"(?P<a>x)|(?P<b>y)|(?P<a>z)", "duplicate extracted label name 'a'"),
    (r"(?<a>x)(?P<a>y)", "duplicate extracted label name 'a'"),
    (r"(?P<b>x)(?P<b>y)(?P<__c>z)", "duplicate extracted label name 'b'"),  # first problem
    (r"(\\d+)", "at least one named capture must be supplied"),
    (r"x", "at least one named capture must be supplied"),
    (r"(?P<a.b>x)", "error parsing regexp"),  # Go refuses the name itself
    (r"(?P<1a>x)(?P<1a>y)", "invalid extracted label name '1a'"),  # Go takes it, Loki not
]


@pytest.mark.parametrize(("pattern", "message"), REGEXP_PARSER_REFUSED)
def test_regexp_parser_refusals(pattern: str, message: str) -> None:
    with pytest.raises(LogQLParseError, match=re.escape(message)):
        parse(f'{{app="api"}} | regexp "{pattern}"')


@pytest.mark.parametrize(
    "pattern", [r"(?P<a>x)[(?P<a>y)]", r"(?P<a>x)\\Q(?P<a>y)\\E", r"(?P<a>x)(?P<b>y)"]
)
def test_regexp_parser_accepts_a_name_written_once(pattern: str) -> None:
    assert parse(f'{{app="api"}} | regexp "{pattern}"') is not None


def test_lone_surrogates_in_text_do_not_crash() -> None:
    assert compile_re2("a").test("\udc80a")
    match = compile_re2("(a+)").search("\udc80aa")
    assert match is not None and match.group(1) == "aa"


@pytest.mark.parametrize(
    ("pattern", "text", "repl", "expected"),
    [
        ("a*", "baaac", "X", "XbXcX"),  # Go: no empty match right after a match
        ("", "abc", "-", "-a-b-c-"),
        ("b", "abcb", "[$0]", "a[b]c[b]"),
        (r"(?P<k>\w+)=(\d+)", "a=1 b=2", "${2}:$k", "1:a 2:b"),
        (r"(\w+)", "ab", "$1x", ""),  # $1x names group "1x": none, so empty
        (r"(\w+)", "ab", "$$1", "$1"),
        ("é", "éaé", "e", "eae"),
        ("x", "héllo", "y", "héllo"),
    ],
)
def test_sub_expands_like_go_replace_all_string(
    pattern: str, text: str, repl: str, expected: str
) -> None:
    regex = compile_re2(pattern)
    assert regex.sub(lambda m: expand_go_template(repl, m), text) == expected


# ----------------------------------------------------------------------------- through the engine

S = 1_000_000_000
T0 = 1_699_999_980


@pytest.fixture()
def logs() -> LocalLogs:
    store = LocalLogs([])
    lines = ["a" * 5_000 + "!", "a" * 5_000, "b" + "a" * 41, "sélection Ωmega", "x=1 y=2"]
    store.add_lines(
        {"app": "api", "zone": "eu-ouest"}, [(T0 * S + i, t) for i, t in enumerate(lines)]
    )
    store.add_lines({"app": "δb", "zone": "us"}, [(T0 * S + 10, "ok")])
    return store


def _lines(logs: LocalLogs, query: str) -> list[str]:
    data = logs.query_range(query, T0 * S, (T0 + 60) * S, limit=100, direction="forward")
    return [v[1] for stream in data["result"] for v in stream["values"]]


def test_catastrophic_line_filter_returns_the_matching_lines(logs: LocalLogs) -> None:
    got = _lines(logs, '{app="api"} |~ "(a+)+$"')
    assert got == ["a" * 5_000, "b" + "a" * 41, "sélection Ωmega"]
    assert _lines(logs, '{app="api"} !~ "(a+)+$"') == ["a" * 5_000 + "!", "x=1 y=2"]


def test_catastrophic_metric_query_finishes_with_the_right_count(logs: LocalLogs) -> None:
    data = logs.query('count_over_time({app="api"} |~ "(a+)+$" [1m])', time=(T0 + 30) * S)
    assert [r["value"][1] for r in data["result"]] == ["3"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('{app=~"\\\\pL+"} |= "ok"', ["ok"]),  # δb is letters only
        ('{app="api"} |~ "\\\\p{Greek}"', ["sélection Ωmega"]),
        ('{app="api"} |~ "\\\\Q=1 \\\\E"', ["x=1 y=2"]),
        ('{app="api"} | regexp "(?<k>\\\\pL+)=(?P<v>\\\\d)" | k="x"', ["x=1 y=2"]),
        ('{app="api", zone=~"[[:alpha:]]+-\\\\pL+"} |= "="', ["x=1 y=2"]),
    ],
)
def test_go_syntax_in_every_place_a_regex_appears(
    logs: LocalLogs, query: str, expected: list[str]
) -> None:
    assert _lines(logs, query) == expected


def test_regexp_parser_extracts_with_unicode_classes(logs: LocalLogs) -> None:
    data = logs.query_range(
        '{app="api"} |= "Ω" | regexp "(?P<word>\\\\pL+) (?P<greek>\\\\p{Greek}\\\\pL*)"',
        T0 * S,
        (T0 + 60) * S,
    )
    (stream,) = data["result"]
    assert stream["stream"]["word"] == "sélection" and stream["stream"]["greek"] == "Ωmega"


def test_label_replace_uses_go_names_and_expansion(logs: LocalLogs) -> None:
    query = 'label_replace(count_over_time({app="api"}[1m]), "region", "${r}!", "zone", "(?<r>\\\\pL+)-.*")'
    data = logs.query(query, time=(T0 + 30) * S)
    assert [r["metric"].get("region") for r in data["result"]] == ["eu!"]


def test_line_format_regex_replace_all_is_go_replace_all(logs: LocalLogs) -> None:
    query = '{app="api"} |= "x=1" | line_format `{{ regexReplaceAll "([a-z])=([0-9])" __line__ "${2}:$1" }}`'
    assert _lines(logs, query) == ["1:x 2:y"]


@pytest.mark.parametrize(
    "query",
    ['{app="api"} |~ "(?=a)"', '{app=~"(a)\\\\1"}', '{app="api"} | regexp "(?P<a>x)\\\\C"'],
)
def test_refused_regexes_are_parse_errors(logs: LocalLogs, query: str) -> None:
    with pytest.raises(LogQLParseError, match="error parsing regexp"):
        logs.query_range(query, T0 * S, (T0 + 60) * S)


def _rule(expr: str) -> dict:
    return {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": expr}]}]}


def test_check_rules_accepts_linear_time_regexes_and_go_syntax() -> None:
    for expr in (
        'sum(count_over_time({app="api"} |~ "(a+)+$" [5m])) > 0',
        'sum(count_over_time({app=~"\\\\pL+"} |~ "\\\\Q[x]\\\\E" [5m])) > 0',
    ):
        (group,) = parse_rules(_rule(expr))
        assert group.rules[0].expr == expr


def test_check_rules_refuses_what_loki_refuses() -> None:
    with pytest.raises(RuleFileError) as info:
        parse_rules(_rule('sum(count_over_time({app="api"} |~ "(?<!a)b" [5m])) > 0'))
    assert "error parsing regexp" in info.value.problems[0]
