"""Ruler YAML: load, validate, thresholds, write back."""

from __future__ import annotations

import pytest
import yaml

from opsbook.errors import ConfigError
from opsbook.loki.rules import (
    RuleFileError,
    dump_rules,
    load_rules,
    parse_rules,
    range_windows_ns,
    split_threshold,
    with_thresholds,
    write_rules,
)
from opsbook.loki.timeutil import NS_PER_S

from .conftest import rules_path

P0 = ["ServiceDown", "HighErrorRate", "VectorDBErrors", "HighLatencyP95", "AIBudgetExceeded"]


def _doc(**rule) -> dict:
    base = {"alert": "A", "expr": 'sum(count_over_time({a="b"}[1m])) > 1'}
    base.update(rule)
    return {"groups": [{"name": "g", "rules": [{k: v for k, v in base.items() if v is not None}]}]}


def test_shipped_p0_rules_are_valid_and_complete():
    groups = load_rules(rules_path())
    names = [r.name for g in groups for r in g.rules]
    assert names == P0
    by_name = {r.name: (g, r) for g in groups for r in g.rules}
    assert by_name["HighErrorRate"][1].for_ns == 120 * NS_PER_S
    assert by_name["AIBudgetExceeded"][0].interval_ns == 300 * NS_PER_S
    assert all(r.labels.get("severity") == "page" for _, r in by_name.values())
    assert split_threshold(by_name["HighLatencyP95"][1].expr).value == 2000
    assert split_threshold(by_name["AIBudgetExceeded"][1].expr).value == 2
    assert split_threshold(by_name["ServiceDown"][1].expr) is None


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (_doc(expr=None), "'expr' must be a non-empty"),
        (_doc(record="x"), "exactly one of 'alert' or 'record'"),
        (_doc(**{"for": "two minutes"}), "is not a duration"),
        (_doc(labels={"bad-name": "x"}), "not a valid label name"),
        (_doc(labels={"sev": ["list"]}), "must be a string"),
        (_doc(expr='{a="b"} |= "error"'), "log query"),
        (_doc(expr='sum(count_over_time({a="b"}[1m]) > '), "does not parse"),
        (_doc(severity="page"), "unknown key(s) ['severity']"),
        (
            {
                "groups": [
                    {"name": "g", "interval": "0s", "rules": [_doc()["groups"][0]["rules"][0]]}
                ]
            },
            "interval must be positive",
        ),
        ({"groups": [{"name": "g", "rules": []}]}, "'rules' must be a non-empty list"),
        ({"groups": [{"name": "g", "rules": _doc()["groups"][0]["rules"]}] * 2}, "duplicate group"),
        ({"rules": []}, "'groups' list"),
        ({"groups": [], "extra": 1}, "unknown top-level"),
        (
            {"groups": [{"name": "g", "rules": [{"record": "not a metric", "expr": "vector(1)"}]}]},
            "not a valid metric name",
        ),
    ],
)
def test_invalid_rule_documents_are_rejected_with_the_problem(doc, problem):
    with pytest.raises(RuleFileError) as info:
        parse_rules(doc)
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once():
    doc = {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {"alert": "A", "expr": ""},
                    {"alert": "B", "expr": "vector(1) > 0", "for": "soon"},
                ],
            }
        ]
    }
    with pytest.raises(RuleFileError) as info:
        parse_rules(doc)
    assert len(info.value.problems) == 2
    assert "alert 'A'" in info.value.problems[0] and "alert 'B'" in info.value.problems[1]


def test_yaml_syntax_error_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: [\n")
    with pytest.raises(RuleFileError, match="not valid YAML"):
        load_rules(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_rules(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("expr", "lhs", "op", "value"),
    [
        ('sum(count_over_time({a="b"}[1m])) > 10', 'sum(count_over_time({a="b"}[1m]))', ">", 10),
        (
            'sum by (s) (rate({a="b"} | json | status >= 500 [1m])) >= 0.5',
            'sum by (s) (rate({a="b"} | json | status >= 500 [1m]))',
            ">=",
            0.5,
        ),
        (
            'quantile_over_time(0.95, {a="b"} | unwrap x [5m]) by (s) < 2e3',
            'quantile_over_time(0.95, {a="b"} | unwrap x [5m]) by (s)',
            "<",
            2000,
        ),
        (
            'count_over_time({a=">"} |= "<" [1m]) != 0',
            'count_over_time({a=">"} |= "<" [1m])',
            "!=",
            0,
        ),
    ],
)
def test_split_threshold(expr, lhs, op, value):
    split = split_threshold(expr)
    assert (split.lhs, split.op, split.value) == (lhs, op, value)
    assert split_threshold(split.expr_with(value)) == split


@pytest.mark.parametrize(
    "expr",
    ['absent_over_time({a="b"}[2m])', 'sum(rate({a="b"}[1m])) > sum(rate({a="c"}[1m]))', ""],
)
def test_no_numeric_threshold(expr):
    assert split_threshold(expr) is None


def test_bool_modifier_is_kept():
    split = split_threshold('sum(rate({a="b"}[1m])) > bool 3')
    assert split.bool_modifier and split.expr_with(4) == 'sum(rate({a="b"}[1m])) > bool 4'


def test_with_thresholds_then_write_round_trips(tmp_path):
    groups = load_rules(rules_path())
    tuned = with_thresholds(groups, {"HighErrorRate": 25, "HighLatencyP95": 2500.5})
    out = write_rules(tuned, tmp_path / "tuned.yaml", header="tuned by a test")
    text = out.read_text()
    assert text.startswith("# tuned by a test\n")
    again = load_rules(out)
    exprs = {r.name: r.expr for g in again for r in g.rules}
    assert exprs["HighErrorRate"].endswith("> 25")
    assert exprs["HighLatencyP95"].endswith("> 2500.5")
    assert exprs["ServiceDown"] == {r.name: r.expr for g in groups for r in g.rules}["ServiceDown"]
    before = {r.name: (r.for_, r.labels, r.annotations) for g in groups for r in g.rules}
    after = {r.name: (r.for_, r.labels, r.annotations) for g in again for r in g.rules}
    assert before == after
    assert yaml.safe_load(text)["groups"][2]["interval"] == "5m"
    # the source is untouched (deep copy)
    assert {r.name: r.expr for g in groups for r in g.rules}["HighErrorRate"].endswith("> 10")


def test_tuning_an_absence_rule_or_unknown_rule_fails(tmp_path):
    groups = load_rules(rules_path())
    with pytest.raises(ConfigError, match="no numeric threshold"):
        with_thresholds(groups, {"ServiceDown": 3})
    with pytest.raises(ConfigError, match="no rule named"):
        with_thresholds(groups, {"Nope": 3})


def test_invalid_groups_are_not_written(tmp_path):
    groups = load_rules(rules_path())
    groups[0].rules[0].expr = '{a="b"}'
    target = tmp_path / "out.yaml"
    with pytest.raises(RuleFileError):
        write_rules(groups, target)
    assert not target.exists() and not list(tmp_path.iterdir())


def test_dump_keeps_multiline_exprs_as_blocks():
    text = dump_rules(load_rules(rules_path()))
    assert "expr: |" in text


def test_range_windows():
    assert range_windows_ns('rate({a="b"}[1m]) / rate({a="b"}[1h30m])') == [
        60 * NS_PER_S,
        5400 * NS_PER_S,
    ]


RULE = '      - alert: A\n        expr: sum(count_over_time({a="b"}[1m])) > 1\n'


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "groups:\n  - name: g\n    interval: soon\n    rules:\n" + RULE,
            ["groups[0] (group 'g'): interval 'soon' is not a duration (use 30s, 1m, 1h30m)"],
        ),
        (
            "groups:\n  - name: g\n    limit: -1\n    rules:\n" + RULE,
            ["groups[0] (group 'g'): 'limit' must be a non-negative integer"],
        ),
        (
            "groups:\n  - name: g\n    rules:\n" + RULE + "        for: soon\n",
            [
                "groups[0].rules[0] (group 'g', alert 'A'): "
                "for 'soon' is not a duration (use 30s, 1m, 1h30m)"
            ],
        ),
        (
            "groups:\n  - name: g\n    rules:\n" + RULE + "        annotations: [a, b]\n",
            ["groups[0].rules[0] (group 'g', alert 'A'): annotations must be a mapping of strings"],
        ),
        (
            "groups:\n  - name: g\n    rules:\n"
            + RULE
            + "        labels: {bad-name: x, ok: [1]}\n",
            [
                "groups[0].rules[0] (group 'g', alert 'A'): labels: 'bad-name' is not a valid "
                "label name; value of 'ok' must be a string"
            ],
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - record: r:x\n        expr: vector(1)\n"
            "        for: 1m\n",
            [
                "groups[0].rules[0] (group 'g', record 'r:x'): unknown key(s) ['for'] "
                "(allowed: ['expr', 'labels', 'record'])"
            ],
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - just a string\n",
            ["groups[0].rules[0] (group 'g'): must be a mapping"],
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: 5\n        expr: vector(1) > 0\n",
            ["groups[0].rules[0] (group 'g'): 'alert' must be a non-empty string"],
        ),
        (
            "groups:\n  - rules:\n" + RULE,
            ["groups[0]: 'name' must be a non-empty string"],
        ),
        (
            "groups:\n  - name: g\n    rules:\n" + RULE + "  - name: g\n    rules:\n" + RULE,
            ["groups[1] (group 'g'): duplicate group name (first at groups[0])"],
        ),
        (
            "groups:\n  - name: g\n    rules:\n"
            + RULE
            + "  - name: h\n    rules:\n"
            + RULE
            + "      - alert: B\n        expr: '{a=\"b\"}'\n",
            [
                "groups[1].rules[1] (group 'h', alert 'B'): expr is a log query; rules need a "
                "metric query (e.g. count_over_time(...))"
            ],
        ),
    ],
)
def test_bad_rule_files_name_the_file_and_the_path_inside_it(tmp_path, text, problems):
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    with pytest.raises(RuleFileError) as info:
        load_rules(path)
    assert info.value.problems == problems
    assert info.value.path == str(path)
    assert info.value.message.startswith(f"{path}: {len(problems)} problem(s)")
