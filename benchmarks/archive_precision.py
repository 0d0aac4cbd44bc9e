"""Archive audit against a real monorepo checkout and a reviewer's labels.

Prints every app's decision, confidence and rule, then precision and recall of the proposed
archive candidates against the labels (the apps a reviewer would archive). Nothing is
fetched: point it at a local clone. Example:

    .venv/bin/python benchmarks/archive_precision.py ../novu --apps-dir apps --apps-dir \
        packages --apps-dir libs --expect notification-center-angular \
        --expect notification-center-vue --now 2026-11-30
"""

from __future__ import annotations

import argparse
import time

from opsbook.archive import classify, inventory
from opsbook.archive.session import parse_now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo")
    parser.add_argument("--apps-dir", action="append", required=True)
    parser.add_argument("--expect", action="append", default=[], help="an app to archive")
    parser.add_argument("--now", default="", help="ISO date of the audit (default today)")
    parser.add_argument("--staleness-days", type=int, default=90)
    args = parser.parse_args()
    started = time.perf_counter()
    inv = inventory(args.repo, args.apps_dir, args.staleness_days, now=parse_now(args.now))
    classification = classify(inv)
    elapsed = time.perf_counter() - started
    print(classification.statement)
    table = classification.frame()
    table["rule"] = table["rule"].str.split(":").str[0]
    print(table[["app", "decision", "confidence", "rule"]].to_string(index=False))
    proposed, expected = set(classification.candidates), set(args.expect)
    hits = proposed & expected
    precision = len(hits) / len(proposed) if proposed else 1.0
    recall = len(hits) / len(expected) if expected else 1.0
    print(
        f"\napps {len(inv.apps)}, proposed {sorted(proposed)}, expected {sorted(expected)}\n"
        f"precision {precision:.2f} ({len(hits)}/{len(proposed)}), "
        f"recall {recall:.2f} ({len(hits)}/{len(expected)}); audit took {elapsed:.1f}s"
    )
    for name in sorted(proposed ^ expected):
        v = classification.verdicts[name]
        print(f"- {name}: {v.decision} by {v.rule_text()}")


if __name__ == "__main__":
    main()
