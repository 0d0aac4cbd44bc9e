"""Mutation testing for the modules that verify, count and refuse (``make mutate``).

A small driver over Python's ``ast`` (mutmut 3 copies the tree into ``mutants/`` and
rewrites every function into a trampoline, which does not fit a ``lib/`` layout with an
editable install in a shared 2-core box; this driver is what we need and no more).

For each target (a module, the functions in it that carry a promise, and that module's
own test files) it:

1. runs the tests once in this process (they must pass; this also imports everything),
2. enumerates mutants inside the named functions, one operator at a time:
   comparison flips (``<``/``<=``, ``<``/``>=``, ``==``/``!=``, ``in``/``not in``,
   ``is``/``is not``), ``and``/``or`` swap, ``not`` removal, integer constants +1/-1/0,
   ``True``/``False`` swap, ``+``/``-`` and ``*``/``/`` swap, ``return x`` ->
   ``return None`` and statement deletion (replaced by ``pass``),
3. for each mutant forks; the child swaps the function's ``__code__`` for the mutated
   one (so every ``from x import f`` reference sees it too) and runs the module's tests
   with ``-x -q``; a failing run kills the mutant. A run that outlives the timeout
   (by default 10x an unmutated run in a child, at least 60 s) counts as a kill only if it
   used more than twice the CPU time of an unmutated run (CPU time does not grow with
   the machine's load); one that was waiting for a core of a loaded machine is run once
   more with three times the limit, and only a second timeout counts.
   Timed-out mutants are listed apart (``timeouts``),
4. prints mutants / killed / score per module and every surviving mutant as file:line.

Limits (say them when you quote a score): only code inside the named functions is
mutated (module constants and default arguments are not); a test that runs opsbook in a
*subprocess* does not see the mutant; string constants are not mutated (messages).

Usage::

    .venv/bin/python tests/mutation/run.py                 # every target
    .venv/bin/python tests/mutation/run.py audit ledger    # targets by name
    .venv/bin/python tests/mutation/run.py --sample 40     # at most 40 mutants a target
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import CodeType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Target:
    """A module, the functions mutated in it (``Class.method`` for methods) and its tests."""

    name: str
    module: str
    functions: list[str]
    tests: list[str]
    pytest_args: list[str] = field(default_factory=list)


TARGETS = [
    Target(
        "pubsub-accounting",
        "opsbook.pubsub.workers",
        ["_Flow.add", "_handle", "_conn_report"],
        ["tests/pubsub/test_accounting.py"],
    ),
    Target(
        "pubsub-verdict",
        "opsbook.pubsub.verdict",
        [
            "_fmt",
            "outcome",
            "_median",
            "_repeats",
            "_shown",
            "latency_claim",
            "throughput_claim",
            "_single",
            "connections_claim",
            "memory_claim",
            "delivery_claim",
            "_kb",
            "cluster_pattern",
        ],
        ["tests/pubsub/test_units.py", "tests/pubsub/test_verdict.py"],
    ),
    Target(
        "audit-verify",
        "opsbook.audit",
        [
            "verify_trail",
            "_chain_problems",
            "_signature_problem",
            "_unledgered",
            "_elsewhere",
            "verify_record",
            "verify_one",
            "entry_hash",
        ],
        [
            "tests/test_audit_record_forms.py",
            "tests/test_audit_verify.py",
            "tests/test_ledger.py",
            "tests/test_signing.py",
        ],
    ),
    Target(
        "checkpoint",
        "opsbook.checkpoint",
        ["check_against", "parse", "load", "current", "for_head"],
        ["tests/test_ledger.py", "tests/test_audit_verify.py"],
    ),
    Target(
        "migrate-verify",
        "opsbook.migrate.verify",
        [
            "_check_point",
            "VerifyReport.add",
            "VerifyReport.identical",
            "VerifyReport.ok",
            "add_search",
            "sample_ids",
            "check_records",
            "check_search",
            "verify_collection",
        ],
        ["tests/migrate/test_verify_points.py", "tests/migrate/test_verify_collection.py"],
    ),
    Target(
        "migrate-search",
        "opsbook.migrate.searchcheck",
        [
            "SearchReport.measured",
            "SearchReport.chroma_recall",
            "SearchReport.target_recall",
            "SearchReport.warnings",
            "SearchReport.summary",
            "check",
        ],
        ["tests/migrate/test_verify_collection.py", "tests/migrate/test_exact.py"],
    ),
    Target(
        "migrate-exact",
        "opsbook.migrate.exact",
        ["same_top_k", "recall", "TopK.tolerance", "TopK.add"],
        ["tests/migrate/test_exact.py", "tests/migrate/test_verify_collection.py"],
    ),
    Target(
        "pubsub-harness",
        "opsbook.pubsub.harness",
        ["Bench._result", "_expected"],
        ["tests/pubsub/test_accounting.py"],
    ),
    Target(
        "archive-txn",
        "opsbook.archive.txn",
        [
            "Transaction._inside",
            "Transaction.makedirs",
            "Transaction.rename",
            "Transaction.write",
            "Transaction.prune",
            "Transaction.rollback",
            "Transaction.__exit__",
        ],
        ["tests/archive/test_txn.py"],
    ),
    Target(
        "archive-paths",
        "opsbook.archive.paths",
        ["contained", "is_within"],
        ["tests/archive/test_txn.py"],
        ["-k", "contained or is_within or refuse or archive_dir"],
    ),
    Target(
        "archive-apply",
        "opsbook.archive.apply",
        ["check_archive_dir", "_archive_dir", "_dep_folders", "_move_apps"],
        ["tests/archive/test_txn.py"],
    ),
    Target(
        "logql-windows",
        "opsbook.loki.logql.evaluator",
        [
            "Evaluator.extract",
            "Evaluator.range_agg",
            "Evaluator._window_values",
            "Evaluator._window_sums",
            "Evaluator._absent",
            "Evaluator._check_errors",
            "counter_rate",
            "_counter_rates",
            "_minus",
        ],
        [
            "tests/loki/test_logql_range_steps.py",
            "tests/loki/test_logql_windows.py",
            # per-entry labels (structured metadata) take their own branch of extract
            "tests/loki/test_logql_structured_metadata.py",
        ],
    ),
    Target(
        "runbook-validation",
        "opsbook.runbook.validation",
        [
            "_validate",
            "_qualified",
            "_check_uses_step",
            "_check_mapped_type",
            "_check_used_ref",
            "_check_on_failure_cycles",
            "_check_summary",
            "_check_param_specs",
            "_check_bounds_spec",
            "_check_notebook_step",
            "_earlier_ids",
            "_check_value_type",
            "_check_template",
            "_check_rollback_ref",
            "_check_step_ref",
            "_notebook_type",
            "_types_compatible",
        ],
        [
            "tests/runbook/test_validation_rules.py",
            "tests/runbook/test_validation.py",
            "tests/runbook/test_compose.py",
        ],
    ),
    Target(
        "runbook-params",
        "opsbook.runbook.params",
        [
            "value_fits",
            "with_article",
            "format_number",
            "coerce_cli_value",
            "_typed",
            "check_value",
            "resolve_parameters",
            "check_approvals",
        ],
        ["tests/runbook/test_params.py", "tests/runbook/test_validation_rules.py"],
    ),
    Target(
        "ledger",
        "opsbook.ledger",
        ["FileLedger.entries", "FileLedger.head", "FileLedger.append", "open_ledger"],
        ["tests/test_ledger.py", "tests/test_audit_verify.py"],
    ),
]


# ------------------------------------------------------------------------ mutants


@dataclass
class Mutant:
    function: str
    line: int
    what: str
    code: CodeType | None = None


_FLIP = {
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.Lt: [ast.LtE, ast.GtE],
    ast.LtE: [ast.Lt, ast.Gt],
    ast.Gt: [ast.GtE, ast.LtE],
    ast.GtE: [ast.Gt, ast.Lt],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
}
_ARITH = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_SYMBOL = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}

# A site mutation: (line, description, apply) where apply edits the node in place.
Site = tuple[int, str, Callable[[ast.AST], None]]


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _returns_none(node: ast.Return) -> bool:
    value = node.value
    return value is None or (isinstance(value, ast.Constant) and value.value is None)


def _node_sites(node: ast.AST) -> Iterator[Site]:
    """Every mutation of one node (not of its children)."""
    line = getattr(node, "lineno", 0)
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for new in _FLIP.get(type(op), []):

                def flip(n: ast.AST, i: int = i, new: type = new) -> None:
                    n.ops[i] = new()  # type: ignore[attr-defined]

                yield line, f"{_SYMBOL[type(op)]} -> {_SYMBOL[new]}", flip
    elif isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        name = "and -> or" if isinstance(node.op, ast.And) else "or -> and"
        yield line, name, lambda n: setattr(n, "op", other())
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        # ``not x`` -> ``not not x``: the truth of x, as if ``not`` were removed
        yield (
            line,
            "not removed",
            lambda n: setattr(n, "operand", ast.UnaryOp(ast.Not(), n.operand)),
        )
    elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _ARITH:
        new = _ARITH[type(node.op)]
        yield line, f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[new]}", lambda n: setattr(n, "op", new())
    elif isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            yield line, f"{value} -> {not value}", lambda n: setattr(n, "value", not value)
        elif isinstance(value, int):
            for new_value in sorted({value + 1, value - 1, 0} - {value}):
                yield (
                    line,
                    f"{value} -> {new_value}",
                    lambda n, v=new_value: setattr(n, "value", v),
                )
    elif isinstance(node, ast.Return) and not _returns_none(node):
        yield line, "return value -> None", lambda n: setattr(n, "value", None)


def _children(node: ast.AST) -> Iterator[ast.AST]:
    """Child nodes that run inside the function (not annotations, not default values)."""
    for name, value in ast.iter_fields(node):
        if name in ("annotation", "returns", "decorator_list", "type_comment"):
            continue
        if name == "args" and isinstance(node, ast.FunctionDef | ast.Lambda):
            continue
        if isinstance(value, ast.AST):
            yield value
        elif isinstance(value, list):
            yield from (v for v in value if isinstance(v, ast.AST))


def _walk(node: ast.AST) -> Iterator[tuple[ast.AST, Site]]:
    for site in _node_sites(node):
        yield node, site
    for name, value in ast.iter_fields(node):
        if isinstance(value, list) and name in ("body", "orelse", "finalbody"):
            for index, stmt in enumerate(value):
                if _is_docstring(stmt) or isinstance(stmt, ast.Pass):
                    continue
                yield (
                    node,
                    (
                        stmt.lineno,
                        f"statement deleted: {ast.unparse(stmt).splitlines()[0][:60]}",
                        lambda n, name=name, index=index: _delete(n, name, index),
                    ),
                )
    for child in _children(node):
        yield from _walk(child)


def _delete(node: ast.AST, name: str, index: int) -> None:
    getattr(node, name)[index] = ast.Pass()


def _find_def(tree: ast.Module, qualname: str) -> ast.FunctionDef:
    scope: list[ast.stmt] = tree.body
    *owners, name = qualname.split(".")
    for owner in owners:
        cls = next(n for n in scope if isinstance(n, ast.ClassDef) and n.name == owner)
        scope = cls.body
    return next(n for n in scope if isinstance(n, ast.FunctionDef) and n.name == name)


def _find_code(code: CodeType, qualname: str) -> CodeType:
    for part in qualname.split("."):
        code = next(c for c in code.co_consts if isinstance(c, CodeType) and c.co_name == part)
    return code


def mutants(path: Path, functions: list[str]) -> list[Mutant]:
    """Every mutant of ``functions`` in the module at ``path``, compiled."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    found: list[Mutant] = []
    for qualname in functions:
        func = _find_def(tree, qualname)
        sites = [site for _, site in _walk_func(func)]
        for index, (line, what, _) in enumerate(sites):
            mutated = copy.deepcopy(tree)
            mfunc = _find_def(mutated, qualname)
            node, (_, _, apply) = _nth_site(mfunc, index)
            apply(node)
            ast.fix_missing_locations(mutated)
            code = compile(mutated, str(path), "exec", dont_inherit=True)
            found.append(Mutant(qualname, line, what, _find_code(code, qualname)))
    return found


def _walk_func(func: ast.FunctionDef) -> Iterator[tuple[ast.AST, Site]]:
    for index, stmt in enumerate(func.body):
        if _is_docstring(stmt):
            continue
        yield (
            func,
            (
                stmt.lineno,
                f"statement deleted: {ast.unparse(stmt).splitlines()[0][:60]}",
                lambda n, index=index: _delete(n, "body", index),
            ),
        )
        yield from _walk(stmt)


def _nth_site(func: ast.FunctionDef, index: int) -> tuple[ast.AST, Site]:
    for i, found in enumerate(_walk_func(func)):
        if i == index:
            return found
    raise IndexError(index)


# ------------------------------------------------------------------------ running


def _pytest_args(target: Target) -> list[str]:
    return [
        "-p",
        "no:cacheprovider",
        "-x",
        "-q",
        "--no-header",
        "-p",
        "no:randomly",
        *target.pytest_args,
        *[str(ROOT / t) for t in target.tests],
    ]


def _quiet() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def _run_mutant(func: Any, mutant: Mutant, target: Target, timeout: float) -> tuple[str, float]:
    """``killed``, ``timeout`` or ``survived`` (one try; see ``_judge``), and the CPU
    seconds the child used."""
    import pytest

    pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            _quiet()
            if mutant.code is not None:  # None: the unmutated run (its CPU time)
                func.__code__ = mutant.code
            code = int(pytest.main(_pytest_args(target)))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            outcome = "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
            return outcome, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, _, usage = os.wait4(pid, 0)
            return "timeout", usage.ru_utime + usage.ru_stime
        time.sleep(0.05)


def _judge(func: Any, mutant: Mutant, target: Target, timeout: float, base_cpu: float) -> str:
    """``_run_mutant``; a timeout counts as a kill only if the child used more than twice
    the CPU time of the unmutated run (``base_cpu``: it was doing more work, not waiting
    for a core of a loaded machine); otherwise it is tried once more with three times the
    limit, and only a second timeout counts: a slow but passing run must not inflate the
    score."""
    outcome, cpu = _run_mutant(func, mutant, target, timeout)
    if outcome == "timeout" and cpu <= 2 * base_cpu:
        outcome, _ = _run_mutant(func, mutant, target, 3 * timeout)
    return outcome


def _resolve(module: Any, qualname: str) -> Any:
    """The function object whose ``__code__`` is swapped (a property's getter, a
    staticmethod's function)."""
    obj = module
    for part in qualname.split("."):
        owner = obj
        obj = getattr(obj, part)
        if isinstance(owner, type):
            raw = owner.__dict__.get(part)
            if isinstance(raw, property):
                obj = raw.fget
            elif isinstance(raw, staticmethod | classmethod):
                obj = raw.__func__
    return obj


def run_target(
    target: Target,
    sample: int | None,
    timeout: float | None,
    seed: int,
    lines: set[int] | None = None,
    start: int = 1,
) -> dict[str, Any]:
    import pytest

    started = time.monotonic()
    module = importlib.import_module(target.module)
    path = Path(module.__file__ or "")
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    if int(pytest.main(_pytest_args(target))) != 0:
        raise SystemExit(f"{target.name}: the tests fail before any mutation")
    baseline_s = time.monotonic() - started
    found = mutants(path, target.functions)
    if lines:  # re-check the survivors of an earlier run
        found = [m for m in found if m.line in lines]
    total = len(found)
    if sample and total > sample:
        found = sorted(random.Random(seed).sample(found, sample), key=lambda m: m.line)
    first = found[0] if found else None
    base_cpu = 0.0
    if first is not None:  # one unmutated run in a child, as a mutant's: its wall and CPU
        child_started = time.monotonic()
        _, base_cpu = _run_mutant(
            _resolve(module, first.function), replace(first, code=None), target, 3600.0
        )
        if timeout is None:
            timeout = max(60.0, 10 * (time.monotonic() - child_started))
    timeout = timeout or 60.0
    skipped = found[: start - 1]  # --from: the first ones were judged by an earlier run
    found = found[start - 1 :]
    results = []
    for number, mutant in enumerate(found, start=start):
        func = _resolve(module, mutant.function)
        outcome = _judge(func, mutant, target, timeout, base_cpu)
        results.append((mutant, outcome))
        if outcome != "killed":  # as soon as known: a long run can be read while it runs
            print(
                f"  {outcome}  {rel}:{mutant.line}  {mutant.function}: {mutant.what}",
                file=sys.stderr,
                flush=True,
            )
        if number % 25 == 0 or number == len(found) + start - 1:
            print(
                f"  {target.name}: {number}/{len(found) + start - 1}", file=sys.stderr, flush=True
            )
    killed = sum(1 for _, o in results if o != "survived")
    survivors, timeouts = (
        [
            {"where": f"{rel}:{m.line}", "function": m.function, "mutation": m.what}
            for m, o in results
            if o == kind
        ]
        for kind in ("survived", "timeout")
    )
    return {
        "target": target.name,
        "module": str(rel),
        "mutants": len(results),
        "enumerated": total,
        "killed": killed,
        "timeout_s": round(timeout, 1),
        "base_cpu_s": round(base_cpu, 1),
        "from": start,
        "skipped": len(skipped),
        "timeouts": timeouts,
        "score": round(100 * killed / len(results), 1) if results else None,
        "baseline_s": round(baseline_s, 1),
        "wall_s": round(time.monotonic() - started, 1),
        "survivors": survivors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="target names (default: all)")
    parser.add_argument("--sample", type=int, default=None, help="at most N mutants a target")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per mutant (default: 10x an unmutated run, at least 60; a timeout "
        "counts as a kill if the mutant used > 2x the CPU of an unmutated run, otherwise it "
        "is retried once with 3x)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument(
        "--from",
        dest="start",
        type=int,
        default=1,
        help="start at mutant number N (resume a long run; the counts cover N.. only)",
    )
    parser.add_argument(
        "--lines",
        type=lambda text: {int(n) for n in text.split(",")},
        default=None,
        help="only the mutants on these source lines, e.g. --lines 81,191 (re-check survivors)",
    )
    parser.add_argument(
        "--tests",
        nargs="+",
        default=None,
        help="run these test files instead (a 'before' score)",
    )
    parser.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        help="one more pytest argument, e.g. --pytest-arg='-mnot notebooks' (repeatable)",
    )
    args = parser.parse_args(argv)
    known = {t.name: t for t in TARGETS}
    if args.list:
        for t in TARGETS:
            print(f"{t.name:20} {t.module}  tests: {' '.join(t.tests)}")
        return 0
    unknown = [n for n in args.targets if n not in known]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; known: {', '.join(known)}")
    chosen = [known[n] for n in args.targets] or TARGETS
    if args.tests:
        chosen = [replace(t, tests=args.tests) for t in chosen]
    chosen = [replace(t, pytest_args=t.pytest_args + args.pytest_arg) for t in chosen]
    os.chdir(ROOT)
    started = time.monotonic()
    reports = []
    for target in chosen:  # each target's result as soon as it is known
        report = run_target(target, args.sample, args.timeout, args.seed, args.lines, args.start)
        reports.append(report)
        print(
            f"{target.name}: {report['killed']} of {report['mutants']} killed "
            f"({report['score']}%, {len(report['timeouts'])} of them by timeout), "
            f"{len(report['survivors'])} survived",
            file=sys.stderr,
            flush=True,
        )
    print(f"\n{'target':20} {'mutants':>8} {'killed':>7} {'score':>7}  module")
    for r in reports:
        sampled = f" (sample of {r['enumerated']})" if r["mutants"] < r["enumerated"] else ""
        print(
            f"{r['target']:20} {r['mutants']:>8} {r['killed']:>7} {r['score']:>6}%  "
            f"{r['module']}{sampled}"
        )
    for r in reports:
        for s in r["survivors"]:
            print(f"survived  {s['where']}  {s['function']}: {s['mutation']}")
        for s in r["timeouts"]:
            print(f"timeout   {s['where']}  {s['function']}: {s['mutation']} (counted killed)")
    wall = round(time.monotonic() - started, 1)
    print(f"\nmake mutate: {wall} s")
    if args.json:
        args.json.write_text(json.dumps({"wall_s": wall, "targets": reports}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
