"""Ledger backends side by side: appends/s by number of writers, verify time of a long chain.

    python benchmarks/ledger.py [--entries 100000] [--appends 200]

Needs the PostgreSQL server at $OPSBOOK_TEST_PG_URL (default: the local superuser over
TCP); it creates a scratch database and drops it. The file ledger in a temp folder is the
baseline measured in the same run. Every entry is signed with a throw-away Ed25519 key,
as a runner with OPSBOOK_SIGNING_KEY would sign it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opsbook import audit
from opsbook.ledger import FileLedger
from opsbook.ledger_pg import TABLE, PostgresLedger, _canonical
from opsbook.signing import Signer, TrustedKey, TrustStore, _b64, fingerprint

ADMIN_URL = os.environ.get("OPSBOOK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _signer() -> Signer:
    key = Ed25519PrivateKey.generate()
    return Signer(key, fingerprint(key.public_key()), Path("bench.pem"))


def _trust(signer: Signer, folder: Path) -> TrustStore:
    from cryptography.hazmat.primitives import serialization

    raw = signer.key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    store = TrustStore(folder / "trusted.json")
    store.keys[signer.fingerprint] = TrustedKey(signer.fingerprint, _b64(raw))
    return store


def _entry(head: dict | None, run_id: str, signer: Signer) -> dict:
    entry = {
        "seq": head["seq"] + 1 if head else 1,
        "run_id": run_id,
        "status": "succeeded",
        "run_json_sha256": "0" * 64,
        "sealed_at": audit.now_iso(),
        "prev": head["hash"] if head else audit.GENESIS,
        "key": signer.fingerprint,
    }
    entry["hash"] = audit.entry_hash(entry)
    entry["signature"] = signer.sign(entry["hash"])
    return entry


def _writer(kind: str, target: str, worker: int, count: int) -> None:
    signer = _signer()
    ledger = PostgresLedger(target) if kind == "pg" else FileLedger(Path(target))
    for n in range(count):
        ledger.append(lambda head, n=n: _entry(head, f"w{worker}-{n}", signer))


def appends_per_s(kind: str, target: str, writers: int, total: int) -> float:
    ctx = multiprocessing.get_context("fork")
    per = total // writers
    procs = [ctx.Process(target=_writer, args=(kind, target, w, per)) for w in range(writers)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return per * writers / (time.perf_counter() - start)


def chain(count: int, signer: Signer) -> list[dict]:
    entries, head = [], None
    for n in range(count):
        head = _entry(head, f"run-{n:06d}", signer)
        entries.append(head)
    return entries


def verify_seconds(entries_of, trust: TrustStore) -> tuple[float, int]:
    """Time to read every entry and check its chain link, hash and signature."""
    start = time.perf_counter()
    entries = entries_of()
    prev, problems = audit.GENESIS, 0
    for index, entry in enumerate(entries, start=1):
        problems += len(audit._chain_problems(entry, index, prev, "bench"))
        problems += bool(audit._signature_problem(entry, trust))
        prev = entry["hash"]
    return time.perf_counter() - start, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--appends", type=int, default=200)
    args = parser.parse_args()
    name = f"opsbook_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = psycopg.conninfo.conninfo_to_dict(ADMIN_URL)
    url = f"postgresql://{base.get('user', 'postgres')}@{base.get('host', '127.0.0.1')}:{base.get('port', 5432)}/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            print(f"appends/s ({args.appends} signed appends, fork()ed writers)")
            print(f"{'writers':>8} {'file':>10} {'postgres':>10} {'pg/file':>8}")
            for writers in (1, 4, 8):
                fresh = folder / f"file-{writers}"
                file_rate = appends_per_s("file", str(fresh), writers, args.appends)
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("DROP SCHEMA IF EXISTS opsbook CASCADE")
                PostgresLedger(url).init()
                pg_rate = appends_per_s("pg", url, writers, args.appends)
                print(
                    f"{writers:>8} {file_rate:>10.0f} {pg_rate:>10.0f} {pg_rate / file_rate:>8.2f}"
                )

            signer = _signer()
            trust = _trust(signer, folder)
            entries = chain(args.entries, signer)
            big = FileLedger(folder / "big")
            big.root.mkdir()
            big.path.write_text("".join(_canonical(e) + "\n" for e in entries))
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DROP SCHEMA IF EXISTS opsbook CASCADE")
            PostgresLedger(url).init()
            with (
                psycopg.connect(url) as conn,
                conn.cursor() as cur,
                cur.copy(
                    f"COPY {TABLE} (seq, run_id, prev, hash, key, sealed_at, body) FROM STDIN"
                ) as copy,
            ):
                for e in entries:
                    copy.write_row(
                        (
                            e["seq"],
                            e["run_id"],
                            e["prev"],
                            e["hash"],
                            e["key"],
                            e["sealed_at"],
                            _canonical(e),
                        )
                    )
            file_s, file_bad = verify_seconds(big.entries, trust)
            pg_s, pg_bad = verify_seconds(PostgresLedger(url).entries, trust)
            assert file_bad == pg_bad == 0
            print(f"\nverify {args.entries:,} signed entries (read + chain + hash + signature)")
            print(f"  file ledger:       {file_s:7.2f} s")
            print(f"  PostgreSQL ledger: {pg_s:7.2f} s   ratio to file {pg_s / file_s:.2f}")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
