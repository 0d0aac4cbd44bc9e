"""Cost of signed audit records: verify time, sealing cost per run, record size overhead.

    .venv/bin/python benchmarks/audit_signing.py [--records 10000] [--artifacts 3]

Builds two audit roots with the same records (a run.json plus a few small artifacts
each, sealed with :func:`opsbook.audit.seal_record`): one unsigned (the baseline, as
before signing existed) and one signed with an Ed25519 key. Prints side by side:

- sealing cost per run (redact, hash, write run.json, chmod, append; + sign),
- ``verify`` time over all records (chain, every artifact hash, + every signature),
- the same with a checkpoint held outside,
- the signature work alone (sign / check every entry), which the file hashing of a
  full verify hides on a loaded disk,
- ledger bytes per entry and the share of a whole record the signature adds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from opsbook import audit, checkpoint, signing


def build(root: Path, count: int, artifacts: int, signer: signing.Signer | None) -> list[float]:
    """Seal ``count`` records under ``root``; return the seconds each seal took."""
    costs = []
    for n in range(count):
        run_id, folder = audit.new_record(root, f"bench-{n}")
        for a in range(artifacts):
            (folder / f"artifact{a}.txt").write_text(f"run {n} artifact {a}\n" * 20)
        data = {
            "run_id": run_id,
            "status": "succeeded",
            "user": "bench@host",
            "parameters": {"n": n, "url": "http://localhost:3100"},
            "approvals": [],
        }
        start = time.perf_counter()
        audit.seal_record(root, folder, data, signer=signer)
        costs.append(time.perf_counter() - start)
    return costs


def timed_verify(root: Path, trust: signing.TrustStore, **options: object) -> float:
    start = time.perf_counter()
    problems = audit.verify(root, trust=trust, **options)
    elapsed = time.perf_counter() - start
    assert problems == [], problems[:3]
    return elapsed


def record_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--artifacts", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="verify runs, best kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsbook-bench-") as tmp:
        base = Path(tmp)
        os.environ[signing.TRUSTED_ENV] = str(base / "keys" / "trusted.json")
        signer, trust = signing.keygen(base / "keys" / "bench.pem", name="bench")
        roots = {"unsigned": base / "unsigned", "signed": base / "signed"}
        seal_costs = {
            "unsigned": build(roots["unsigned"], args.records, args.artifacts, None),
            "signed": build(roots["signed"], args.records, args.artifacts, signer),
        }
        held = [checkpoint.current(roots["signed"], signer)]
        verify_s = {name: float("inf") for name in roots}
        verify_cp = float("inf")
        for _ in range(args.repeats):  # interleaved, best of: load on the machine varies
            for name, root in roots.items():
                verify_s[name] = min(verify_s[name], timed_verify(root, trust))
            verify_cp = min(
                verify_cp,
                timed_verify(roots["signed"], trust, checkpoints=held, require_signed=True),
            )
        entries = audit.read_ledger(roots["signed"])
        start = time.perf_counter()
        for entry in entries:
            signer.sign(entry["hash"])
        sign_all = time.perf_counter() - start
        start = time.perf_counter()
        for entry in entries:
            assert (
                trust.check(entry["key"], entry["signature"], entry["hash"], entry["sealed_at"])
                is None
            )
        check_all = time.perf_counter() - start
        sizes = {
            name: (root / audit.LEDGER).stat().st_size / args.records
            for name, root in roots.items()
        }
        totals = {name: record_bytes(root) / args.records for name, root in roots.items()}

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:7.2f} ms (p90 {sorted(values)[int(len(values) * 0.9)] * 1000:.2f})"

    print(f"{args.records} records, {args.artifacts} artifacts each (shared 2-core machine)")
    print(f"{'':28}{'unsigned':>24}{'signed':>24}{'ratio':>8}")
    print(
        f"{'seal per run (median)':28}{ms(seal_costs['unsigned']):>24}{ms(seal_costs['signed']):>24}"
        f"{statistics.median(seal_costs['signed']) / statistics.median(seal_costs['unsigned']):8.2f}"
    )
    print(
        f"{'verify all records':28}{verify_s['unsigned']:>22.2f} s{verify_s['signed']:>22.2f} s"
        f"{verify_s['signed'] / verify_s['unsigned']:8.2f}"
    )
    print(f"{'verify + checkpoint + req.':28}{'':>24}{verify_cp:>22.2f} s")
    print(
        f"{'signatures alone':28}{'':>24}{check_all:>22.2f} s"
        f"   (check {check_all / len(entries) * 1e6:.0f} us, sign {sign_all / len(entries) * 1e6:.0f} us per entry)"
    )
    print(
        f"{'ledger bytes per entry':28}{sizes['unsigned']:>24.0f}{sizes['signed']:>24.0f}"
        f"{sizes['signed'] / sizes['unsigned']:8.2f}"
    )
    print(
        f"{'record bytes per run (all)':28}{totals['unsigned']:>24.0f}{totals['signed']:>24.0f}"
        f"{totals['signed'] / totals['unsigned']:8.2f}"
    )


if __name__ == "__main__":
    main()
