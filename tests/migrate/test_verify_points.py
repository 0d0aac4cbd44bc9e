"""migrate.verify on crafted points: each mismatch kind with its exact count."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from opsbook.migrate import verify
from opsbook.migrate.hashes import canonical, digest, document_digest, vector_digest
from opsbook.migrate.ids import point_id
from opsbook.migrate.payload import DOCUMENT_KEY, ID_KEY, METADATA_KEY
from opsbook.migrate.searchcheck import SearchReport

VEC = np.array([0.5, 0.25, 1.0], dtype=np.float32)
META = {"lang": "en", "n": 3}


def _stored(cid: str, doc: str | None = "hello", meta: dict | None = META) -> tuple:
    return (point_id(cid), cid, vector_digest(VEC), document_digest(doc), digest(canonical(meta)))


def _payload(cid: str, **extra: object) -> dict:
    return {ID_KEY: cid, DOCUMENT_KEY: "hello", METADATA_KEY: META, **extra}


def _check(
    stored: tuple | None, pid: str, vector: np.ndarray, payload: dict
) -> verify.VerifyReport:
    report = verify.VerifyReport("docs", "docs_staging", 1)
    verify._check_point(report, stored, pid, vector, payload)
    return report


def test_an_identical_point() -> None:
    report = _check(_stored("a"), point_id("a"), VEC, _payload("a"))
    assert report.mismatches == Counter() and report.records_checked == 1
    assert report.ok and report.identical == 1


KEYS = sorted([DOCUMENT_KEY, ID_KEY, METADATA_KEY])


@pytest.mark.parametrize(
    ("payload", "vector", "kind", "detail"),
    [
        (_payload("a") | {DOCUMENT_KEY: "hell0"}, VEC, "document", "document differs"),
        (
            _payload("a") | {METADATA_KEY: {"lang": "en", "n": 3.0}},
            VEC,
            "metadata",
            "metadata differs (value or type)",
        ),
        (_payload("a"), VEC * 2, "vector", "vector bytes differ from those written"),
        # a changed chroma_id
        (_payload("b"), VEC, "payload", f"chroma_id 'b' / keys {KEYS}"),
        # an extra payload key
        (
            _payload("a", extra=1),
            VEC,
            "payload",
            f"chroma_id 'a' / keys {sorted([*KEYS, 'extra'])}",
        ),
    ],
)
def test_one_mismatch_kind_each(payload: dict, vector: np.ndarray, kind: str, detail: str) -> None:
    report = _check(_stored("a"), point_id("a"), vector, payload)
    assert report.mismatches == Counter({kind: 1}) and report.records_checked == 1
    assert report.ok is False and report.identical == 0
    # the example a person reads: the stored chroma_id (not the payload's) and what differs
    assert report.examples == [{"collection": "docs", "kind": kind, "id": "a", "detail": detail}]


def test_point_not_from_the_source_and_a_duplicate() -> None:
    pid = point_id("zzz")
    extra = _check(None, pid, VEC, _payload("zzz"))
    assert extra.mismatches == Counter({"extra": 1}) and extra.records_checked == 0
    assert extra.examples == [
        {
            "collection": "docs",
            "kind": "extra",
            "id": "zzz",
            "detail": f"point {pid} is not from the source",
        }
    ]
    other = "00000000-0000-0000-0000-000000000001"
    dup = _check(None, other, VEC, _payload("a"))
    assert dup.mismatches == Counter({"duplicate": 1}) and dup.records_checked == 0
    assert dup.examples == [
        {
            "collection": "docs",
            "kind": "duplicate",
            "id": "a",
            "detail": f"point {other} repeats a source id",
        }
    ]
    no_id = _check(None, "p", VEC, {})
    assert no_id.mismatches == Counter({"extra": 1})


def test_examples_are_capped_but_counts_are_not() -> None:
    report = verify.VerifyReport("docs", "s", 5, max_listed=2)
    for i in range(3):
        report.add("missing", str(i))
    assert report.mismatches == Counter({"missing": 3}) and len(report.examples) == 2


def test_identical_never_negative_and_counts_only_record_kinds() -> None:
    report = verify.VerifyReport("docs", "s", 2)
    report.records_checked = 1
    report.add("vector", "a")
    report.add("payload", "a")
    report.add("count", None)
    assert report.identical == 0
    report.records_checked = 3
    assert report.identical == 1


def test_each_failing_query_is_one_search_mismatch() -> None:
    report = verify.VerifyReport("docs", "s", 1)
    verify.add_search(report, SearchReport(queries=5, failures=3, examples=["q1", "q2"]))
    assert report.mismatches == Counter({"search": 3})
    assert [e["detail"] for e in report.examples] == ["q1", "q2", ""]
    assert report.search.failures == 3


def test_sample_ids_deterministic_and_bounded() -> None:
    ids = [f"id{i}" for i in range(10)]
    assert verify.sample_ids(ids, 0) == [] and verify.sample_ids([], 3) == []
    assert verify.sample_ids(ids, -1) == [] and len(verify.sample_ids(ids, 1)) == 1
    picked = verify.sample_ids(ids, 4, seed=1)
    assert len(picked) == 4 and picked == verify.sample_ids(ids, 4, seed=1)
    assert picked == sorted(picked, key=ids.index)
    assert sorted(verify.sample_ids(ids, 50)) == sorted(ids)


def test_batch_rows_equal_record_rows() -> None:
    from opsbook.migrate.hashes import batch_rows, record_row
    from opsbook.migrate.payload import build_payload

    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((4, 6)).astype(np.float32)
    cids = ["a", "0042", "Ünïcødé ✓", "x"]
    docs = ["doc", None, "", "✓"]
    metas = [{"b": 1, "a": [1.0, True]}, None, {"w": 2.0}, {"t": "第3章"}]
    payloads = [build_payload(*r) for r in zip(cids, docs, metas, strict=True)]
    pids = [point_id(c) for c in cids]
    want = [record_row(p, pl, v) for p, pl, v in zip(pids, payloads, vectors, strict=True)]
    assert batch_rows(pids, payloads, vectors) == want
    assert len({r[2] for r in want}) == 4  # every vector its own digest


def test_scrolled_vectors_keep_their_float32_bytes() -> None:
    from types import SimpleNamespace

    from opsbook.migrate.target import _page

    rows = np.random.default_rng(5).standard_normal((2, 384)).astype(np.float32)
    points = [
        SimpleNamespace(id=f"p{i}", vector=r.tolist(), payload={"i": i}) for i, r in enumerate(rows)
    ]
    points.append(SimpleNamespace(id="none", vector=None, payload=None))
    points.append(SimpleNamespace(id="huge", vector=[1e40, 2.0], payload={}))
    page = _page(points)
    assert [p for p, _, _ in page] == ["p0", "p1", "none", "huge"]
    assert [v.tobytes() for _, v, _ in page[:2]] == [r.tobytes() for r in rows]
    assert page[0][2] == {"i": 0} and page[2][2] == {}
    assert np.isnan(page[2][1]) and page[3][1].tolist() == [np.inf, 2.0]


def test_local_mode_is_searched_only_after_its_records_are_read(tmp_path) -> None:
    """qdrant-client local mode normalises stored Cosine vectors in place when it searches:
    a search beside the scroll changed the bytes the scroll read (20,412 false "vector"
    mismatches on 55k records). Engines that allow it search in parallel; local mode not."""
    import time as _time

    from opsbook.migrate.exact import TopK, unit_rows
    from opsbook.migrate.hashes import HashStore, batch_rows
    from opsbook.migrate.payload import build_payload
    from opsbook.migrate.source import CollectionInfo
    from opsbook.migrate.target import open_target

    class Recording:
        def __init__(self, inner) -> None:
            self.inner, self.calls = inner, []

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

        def scroll_records(self, name: str, page: int = 2000):
            for chunk in self.inner.scroll_records(name, 2):
                _time.sleep(0.05)  # a search thread, if any, starts meanwhile
                self.calls.append("scroll")
                yield chunk

        def search(self, *args, **kwargs):
            self.calls.append("search")
            return self.inner.search(*args, **kwargs)

    cids = [f"r{i}" for i in range(6)]
    vectors = unit_rows(np.random.default_rng(2).standard_normal((6, 8)), "Cosine")
    payloads = [build_payload(c, None, {"i": i}) for i, c in enumerate(cids)]
    pids = [point_id(c) for c in cids]
    memory = open_target("memory")
    assert not memory.reads_in_parallel and open_target("edge", tmp_path / "q").reads_in_parallel
    memory.create_collection("s", 8, "Cosine")
    memory.upsert("s", pids, vectors, payloads)
    found = memory.retrieve("s", pids)  # in memory it re-normalises on upsert: hash what it holds
    held = np.stack([found[p][0] for p in pids])
    hashes = HashStore(tmp_path / "h.sqlite")
    hashes.put(batch_rows(pids, payloads, held))
    truth = TopK(vectors[:2], "Cosine", k=3)
    truth.add(cids, vectors)
    target = Recording(memory)
    info = CollectionInfo("c", 6, 8, "cosine", "Cosine")
    report = verify.verify_collection(target, info, "s", hashes, truth)
    assert report.ok and report.records_checked == 6, report.examples
    assert target.calls == ["scroll"] * 3 + ["search"]
