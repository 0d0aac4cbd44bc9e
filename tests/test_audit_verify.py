"""Audit verification, one tamper kind per test, each with the exact problem it must name.

Fast (no notebooks): records are sealed with :func:`auditkit.seal_one`. Mutation testing
(``make mutate``) runs this file against ``audit.verify_trail`` and its helpers, the
checkpoint check and the file ledger.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from auditkit import rewrite_ledger, seal_one, writable
from opsbook import audit, checkpoint, ledger, runlock, signing

HOST = socket.gethostname()


def _entries(root: Path) -> list[dict]:
    return audit.read_ledger(root)


def _rechain(entries: list[dict]) -> list[dict]:
    """What a forger with opsbook's own functions does after editing entries (no key)."""
    prev = audit.GENESIS
    for seq, entry in enumerate(entries, start=1):
        entry["seq"], entry["prev"] = seq, prev
        entry["hash"] = audit.entry_hash(entry)
        prev = entry["hash"]
    return entries


def _unlock_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture
def ids(audit_dir: Path) -> list[str]:
    return [seal_one(audit_dir) for _ in range(3)]


# ------------------------------------------------------------------ intact trail


def test_an_intact_unsigned_trail(audit_dir: Path, ids: list[str]) -> None:
    result = audit.verify_trail(audit_dir)
    assert result.problems == [] and result.notes == []
    assert (result.entries, result.signed, result.unsigned) == (3, 0, ids)
    assert result.unledgered == {} and result.remote == [] and result.checkpoints == 0
    assert [audit.verify_one(audit_dir, run_id) for run_id in ids] == [[], [], []]


def test_sealed_files_are_read_only(audit_dir: Path, ids: list[str]) -> None:
    modes = {p.stat().st_mode & 0o777 for p in (audit_dir / ids[0]).rglob("*") if p.is_file()}
    assert modes == {0o444}


def test_an_absent_root_verifies_empty(tmp_path: Path) -> None:
    result = audit.verify_trail(tmp_path / "nothing")
    assert (result.problems, result.entries, result.unledgered) == ([], 0, {})


# ------------------------------------------------------------------ record tampering


def test_deleted_record_folder(audit_dir: Path, ids: list[str]) -> None:
    _unlock_tree(audit_dir / ids[1])
    shutil.rmtree(audit_dir / ids[1])
    assert audit.verify(audit_dir) == [f"record {ids[1]}: folder missing (deleted?)"]
    assert audit.verify_one(audit_dir, ids[1]) == [f"record {ids[1]}: folder missing (deleted?)"]


def test_deleted_run_json(audit_dir: Path, ids: list[str]) -> None:
    writable(audit_dir / ids[0])
    (audit_dir / ids[0]).chmod(0o755)
    (audit_dir / ids[0] / "run.json").unlink()
    assert audit.verify(audit_dir) == [f"record {ids[0]}: run.json missing"]


def test_run_json_replaced_by_garbage(audit_dir: Path, ids: list[str]) -> None:
    writable(audit_dir / ids[2] / "run.json").write_text("{not json")
    assert audit.verify(audit_dir) == [
        f"record {ids[2]}: run.json was modified after sealing",
        f"record {ids[2]}: run.json is not valid JSON",
    ]


def test_edited_run_json(audit_dir: Path, ids: list[str]) -> None:
    path = writable(audit_dir / ids[0] / "run.json")
    data = json.loads(path.read_text())
    data["status"] = "failed"
    path.write_text(json.dumps(data))
    assert audit.verify(audit_dir) == [f"record {ids[0]}: run.json was modified after sealing"]


def test_modified_missing_and_added_artifacts(audit_dir: Path, ids: list[str]) -> None:
    writable(audit_dir / ids[0] / "out.txt").write_text("edited\n")
    (audit_dir / ids[1]).chmod(0o755)
    (audit_dir / ids[1] / "out.txt").unlink()
    (audit_dir / ids[2]).chmod(0o755)
    (audit_dir / ids[2] / "later.txt").write_text("added")
    assert audit.verify(audit_dir) == [
        f"record {ids[0]}: out.txt modified (sha256 differs)",
        f"record {ids[1]}: out.txt missing",
        f"record {ids[2]}: unexpected file later.txt added after sealing",
    ]
    assert audit.verify_one(audit_dir, ids[2]) == [
        f"record {ids[2]}: unexpected file later.txt added after sealing"
    ]


def test_added_folder_without_files_is_not_a_file(audit_dir: Path, ids: list[str]) -> None:
    (audit_dir / ids[0]).chmod(0o755)
    (audit_dir / ids[0] / "empty").mkdir()
    assert audit.verify(audit_dir) == []


def test_artifact_list_differs_from_the_ledger_entry(audit_dir: Path, ids: list[str]) -> None:
    entries = _entries(audit_dir)
    entries[2]["artifacts"] = {"out.txt": "0" * 64}
    rewrite_ledger(audit_dir, _rechain(entries))
    assert audit.verify(audit_dir) == [
        f"record {ids[2]}: run.json lists other artifacts than its ledger entry"
    ]


def test_entry_without_artifacts_is_an_older_record(audit_dir: Path, ids: list[str]) -> None:
    entries = _entries(audit_dir)
    del entries[0]["artifacts"]
    rewrite_ledger(audit_dir, _rechain(entries))
    assert audit.verify(audit_dir) == []


# ------------------------------------------------------------------ ledger tampering


def test_dropped_ledger_line(audit_dir: Path, ids: list[str]) -> None:
    entries = _entries(audit_dir)
    rewrite_ledger(audit_dir, [entries[0], entries[2]])
    result = audit.verify_trail(audit_dir)
    assert result.problems == [
        f"ledger entry 2 (run {ids[2]}): sequence number 3 where 2 was expected: "
        "ledger lines dropped or reordered",
        f"ledger entry 2 (run {ids[2]}): does not chain to the entry before it: a ledger "
        "line was dropped, inserted or reordered",
        f"record {ids[1]}: not in the ledger: unknown (no run lock): a planted folder, a "
        "dropped ledger line or a run from before run locks",
    ]
    assert result.unledgered == {ids[1]: "unknown"}
    assert audit.verify_one(audit_dir, ids[1]) == [
        f"record {ids[1]}: not in the ledger (never sealed, or its ledger line was dropped)"
    ]


def test_reordered_ledger_lines(audit_dir: Path, ids: list[str]) -> None:
    entries = _entries(audit_dir)
    rewrite_ledger(audit_dir, [entries[1], entries[0], entries[2]])
    assert audit.verify(audit_dir) == [
        f"ledger entry 1 (run {ids[1]}): sequence number 2 where 1 was expected: "
        "ledger lines dropped or reordered",
        f"ledger entry 1 (run {ids[1]}): does not chain to the entry before it: a ledger "
        "line was dropped, inserted or reordered",
        f"ledger entry 2 (run {ids[0]}): sequence number 1 where 2 was expected: "
        "ledger lines dropped or reordered",
        f"ledger entry 2 (run {ids[0]}): does not chain to the entry before it: a ledger "
        "line was dropped, inserted or reordered",
        f"ledger entry 3 (run {ids[2]}): does not chain to the entry before it: a ledger "
        "line was dropped, inserted or reordered",
    ]
    assert audit.verify_one(audit_dir, ids[2]) == [
        f"ledger entry 3 (run {ids[2]}): does not chain to the entry before it: a ledger "
        "line was dropped, inserted or reordered"
    ]


def test_edited_ledger_entry(audit_dir: Path, ids: list[str]) -> None:
    entries = _entries(audit_dir)
    entries[1]["status"] = "failed"  # hash not recomputed
    rewrite_ledger(audit_dir, entries)
    expected = [f"ledger entry 2 (run {ids[1]}): entry hash does not match its content (edited)"]
    assert audit.verify(audit_dir) == expected
    assert audit.verify_one(audit_dir, ids[1]) == expected


def test_unreadable_ledger_line(audit_dir: Path, ids: list[str]) -> None:
    lines = (audit_dir / audit.LEDGER).read_text().splitlines()
    lines[1] = lines[1][:-5]
    writable(audit_dir / audit.LEDGER).write_text("\n".join(lines) + "\n")
    result = audit.verify_trail(audit_dir)
    assert result.problems == [
        "ledger line 2: unreadable (edited?)",
        f"ledger entry 3 (run {ids[2]}): does not chain to the entry before it: a ledger "
        "line was dropped, inserted or reordered",
        f"record {ids[1]}: not in the ledger: unknown (no run lock): a planted folder, a "
        "dropped ledger line or a run from before run locks",
    ]
    assert result.entries == 3
    # from the first record on: the unreadable line is named and the walk goes on past it
    assert audit.verify_one(audit_dir, ids[0]) == [
        "ledger line 2: unreadable (edited?)",
        f"ledger entry 3 (run {ids[2]}): does not chain to the entry before it: a ledger "
        "line was dropped, inserted or reordered",
    ]


def test_run_listed_twice(audit_dir: Path, ids: list[str]) -> None:
    entries = _entries(audit_dir)
    rewrite_ledger(audit_dir, _rechain([*entries, dict(entries[0])]))
    assert audit.verify(audit_dir) == [
        f"ledger entry 4 (run {ids[0]}): run listed twice in the ledger"
    ]


# ------------------------------------------------------------------ unledgered folders


def test_unledgered_folder_with_unreadable_run_json(audit_dir: Path, ids: list[str]) -> None:
    planted = audit_dir / "20990101T000000Z-planted-abcdef"
    planted.mkdir()
    (planted / "run.json").write_bytes(b"\xff\xfe not json")
    (audit_dir / "loose-file.txt").write_text("a file, not a record")
    result = audit.verify_trail(audit_dir)
    assert result.problems == [
        f"record {planted.name}: not in the ledger: unknown (no run lock): a planted folder, "
        "a dropped ledger line or a run from before run locks"
    ]
    assert result.unledgered == {planted.name: "unknown"}
    runs = [json.loads((audit_dir / i / "run.json").read_text()) for i in sorted(ids)]
    assert audit.list_runs(audit_dir) == runs  # history and the index skip it, no crash


@pytest.mark.parametrize("blob", [b"\xff\xfe not utf-8", b"[1, 2]", b"{not json"])
def test_sealed_run_json_unreadable_is_named(audit_dir: Path, ids: list[str], blob: bytes) -> None:
    writable(audit_dir / ids[1] / "run.json").write_bytes(blob)
    assert audit.verify(audit_dir) == [
        f"record {ids[1]}: run.json was modified after sealing",
        f"record {ids[1]}: run.json is not valid JSON",
    ]


def test_running_record_is_a_note_unless_strict(audit_dir: Path, ids: list[str]) -> None:
    running_id, _ = audit.new_record(audit_dir, "alive")  # this process holds its lock
    detail = runlock.state(audit_dir, running_id).detail
    result = audit.verify_trail(audit_dir)
    assert result.problems == []
    assert result.notes == [f"record {running_id}: not in the ledger: running ({detail})"]
    assert result.unledgered == {running_id: "running"}
    strict = audit.verify_trail(audit_dir, strict=True)
    assert strict.problems == [
        f"record {running_id}: not in the ledger: running ({detail}) (--strict)"
    ]
    assert strict.notes == []


def test_interrupted_record_names_recover(audit_dir: Path, ids: list[str]) -> None:
    gone_id, _ = audit.new_record(audit_dir, "gone")
    lock = runlock.lock_path(audit_dir, gone_id)
    lock.write_text(json.dumps(json.loads(lock.read_text()) | {"process_start": 1.0}))
    detail = runlock.state(audit_dir, gone_id).detail
    assert audit.verify(audit_dir) == [
        f"record {gone_id}: not in the ledger: interrupted ({detail}); seal it as failed "
        f"with `opsbook recover {gone_id}`"
    ]


def test_hidden_folders_are_not_records(audit_dir: Path, ids: list[str]) -> None:
    (audit_dir / ".cache").mkdir()
    assert audit.verify(audit_dir) == []


# ------------------------------------------------------------------ signatures


def test_signed_trail_counts(audit_dir: Path, key_a: signing.Signer) -> None:
    ids = [seal_one(audit_dir) for _ in range(2)]
    result = audit.verify_trail(audit_dir, require_signed=True)
    assert (result.problems, result.signed, result.unsigned) == ([], 2, [])
    assert audit.verify_one(audit_dir, ids[1]) == []


def test_unsigned_first_then_signed_is_legacy(
    audit_dir: Path, keydir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = seal_one(audit_dir)
    signing.keygen(keydir / "a.pem", name="a")
    monkeypatch.setenv(signing.KEY_ENV, str(keydir / "a.pem"))
    seal_one(audit_dir)
    result = audit.verify_trail(audit_dir)
    assert (result.problems, result.signed, result.unsigned) == ([], 1, [first])


def test_signature_stripped_after_signed_entries(audit_dir: Path, key_a: signing.Signer) -> None:
    ids = [seal_one(audit_dir) for _ in range(3)]
    entries = _entries(audit_dir)
    for entry in entries[1:]:
        entry.pop("signature")
        entry["key"] = audit.UNSIGNED
    rewrite_ledger(audit_dir, _rechain(entries))
    result = audit.verify_trail(audit_dir)
    assert result.problems == [
        f"ledger entry 2 (run {ids[1]}): unsigned after signed entries (signature stripped?)",
        f"ledger entry 3 (run {ids[2]}): unsigned after signed entries (signature stripped?)",
    ]
    assert (result.signed, result.unsigned) == (1, ids[1:])


def test_forged_signature_in_verify_one(audit_dir: Path, key_a: signing.Signer) -> None:
    run_id = seal_one(audit_dir)
    entries = _entries(audit_dir)
    entries[0]["signature"] = key_a.sign("something else")
    rewrite_ledger(audit_dir, entries)
    expected = [
        f"ledger entry 1 (run {run_id}): signature by {key_a.fingerprint} does not verify "
        "(forged or edited)"
    ]
    assert audit.verify(audit_dir) == expected
    assert audit.verify_one(audit_dir, run_id) == expected


def test_verify_one_uses_the_trust_store_it_is_given(
    audit_dir: Path, key_a: signing.Signer, tmp_path: Path
) -> None:
    run_id = seal_one(audit_dir)
    assert audit.verify_one(audit_dir, run_id) == []  # the default store trusts key a
    empty = signing.TrustStore(tmp_path / "empty.json")
    assert audit.verify_one(audit_dir, run_id, empty) == [
        f"ledger entry 1 (run {run_id}): signed by unknown key {key_a.fingerprint} "
        f"(not in {empty.path})"
    ]


def test_signature_without_a_key_field(audit_dir: Path, key_a: signing.Signer) -> None:
    run_id = seal_one(audit_dir)
    entries = _entries(audit_dir)
    entries[0]["key"] = audit.UNSIGNED  # signature kept: not "unsigned", an unknown key
    rewrite_ledger(audit_dir, _rechain(entries))
    trust = signing.TrustStore.load()
    assert audit.verify(audit_dir) == [
        f"ledger entry 1 (run {run_id}): signed by unknown key unsigned (not in {trust.path})"
    ]


def test_entry_hash_ignores_hash_and_signature_only() -> None:
    entry = {"seq": 1, "run_id": "r", "hash": "h", "signature": "s"}
    assert audit.entry_hash(entry) == audit.sha256_text('{"run_id":"r","seq":1}')
    assert audit.entry_hash(entry | {"key": "k"}) != audit.entry_hash(entry)


# ------------------------------------------------------------------ chain rules


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, []),
        (
            {"seq": 2},
            ["L: sequence number 2 where 1 was expected: ledger lines dropped or reordered"],
        ),
        (
            {"prev": "f" * 64},
            [
                "L: does not chain to the entry before it: a ledger line was dropped, "
                "inserted or reordered"
            ],
        ),
        ({"hash": "e" * 64}, ["L: entry hash does not match its content (edited)"]),
    ],
)
def test_chain_problems_one_rule_each(change: dict, expected: list[str]) -> None:
    entry = {"seq": 1, "prev": audit.GENESIS, "run_id": "r"}
    entry["hash"] = audit.entry_hash(entry)
    entry.update(change)
    if "hash" not in change:
        entry["hash"] = audit.entry_hash(entry)
    assert audit._chain_problems(entry, 1, audit.GENESIS, "L") == expected


# ------------------------------------------------------------------ shared ledger


class _Shared:
    """A ledger that is not the file backend (as PostgreSQL is), stored in a file."""

    def __init__(self, url: str, root: Path) -> None:
        self._file = ledger.FileLedger(root)

    def append(self, build):  # type: ignore[no-untyped-def]
        return self._file.append(build)

    def entries(self) -> list[dict]:
        return self._file.entries()

    def describe(self) -> str:
        return "shared test ledger"


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.register_backend("sharedtest", _Shared)
    monkeypatch.setenv(ledger.LEDGER_URL_ENV, "sharedtest://x")


def _move_elsewhere(root: Path, run_id: str, host: str | None) -> None:
    entries = _entries(root)
    for entry in entries:
        if entry["run_id"] == run_id:
            entry["host"] = host
    rewrite_ledger(root, _rechain(entries))
    _unlock_tree(root / run_id)
    shutil.rmtree(root / run_id)


def test_record_of_another_host_is_a_note(audit_dir: Path, shared: None) -> None:
    ids = [seal_one(audit_dir) for _ in range(2)]
    _move_elsewhere(audit_dir, ids[0], "build-7")
    note = (
        f"record {ids[0]}: written on build-7; its 1 artifact(s) are not reachable from "
        "here (their sha256 are in the signed entry): point OPSBOOK_AUDIT_DIR at a shared "
        "folder to check them"
    )
    result = audit.verify_trail(audit_dir)
    assert (result.problems, result.notes, result.remote) == ([], [note], [ids[0]])
    strict = audit.verify_trail(audit_dir, require_artifacts=True)
    assert (strict.problems, strict.notes) == ([note + " (--require-artifacts)"], [])


@pytest.mark.parametrize("host", [HOST, None, ""])
def test_record_of_this_host_missing_is_deleted(
    audit_dir: Path, shared: None, host: str | None
) -> None:
    run_id = seal_one(audit_dir)
    _move_elsewhere(audit_dir, run_id, host)
    result = audit.verify_trail(audit_dir)
    assert result.problems == [f"record {run_id}: folder missing (deleted?)"]
    assert result.remote == []


def test_shared_record_present_here_is_verified(audit_dir: Path, shared: None) -> None:
    run_id = seal_one(audit_dir)
    entries = _entries(audit_dir)
    entries[0]["host"] = "build-7"
    rewrite_ledger(audit_dir, _rechain(entries))
    writable(audit_dir / run_id / "out.txt").write_text("edited")
    assert audit.verify(audit_dir) == [f"record {run_id}: out.txt modified (sha256 differs)"]


# ------------------------------------------------------------------ checkpoints


def _entries_for(n: int) -> list[dict]:
    return [{"seq": i, "hash": f"{i:064x}"} for i in range(1, n + 1)]


def _cp(seq: int, head: str | None = None, source: str = "") -> checkpoint.Checkpoint:
    return checkpoint.Checkpoint(seq, head or f"{seq:064x}", "T", "unsigned", "-", source)


def test_checkpoint_holds(tmp_path: Path) -> None:
    trust = signing.TrustStore(tmp_path / "t.json")
    assert checkpoint.check_against(_cp(2), _entries_for(3), trust) == []
    assert checkpoint.check_against(_cp(3), _entries_for(3), trust) == []
    assert checkpoint.check_against(_cp(0, audit.GENESIS), [], trust) == []
    assert checkpoint.check_against(_cp(0, audit.GENESIS), _entries_for(1), trust) == []


def test_checkpoint_truncation_exact(tmp_path: Path) -> None:
    trust = signing.TrustStore(tmp_path / "t.json")
    assert checkpoint.check_against(_cp(4, source="w.log:3"), _entries_for(3), trust) == [
        "checkpoint seq=4 at T (w.log:3): the ledger has 3 entries, the checkpoint saw 4: "
        "the ledger was truncated or rolled back"
    ]


def test_checkpoint_fork_exact(tmp_path: Path) -> None:
    trust = signing.TrustStore(tmp_path / "t.json")
    assert checkpoint.check_against(_cp(2, "a" * 64), _entries_for(3), trust) == [
        "checkpoint seq=2 at T: ledger entry 2 no longer has the checkpointed hash "
        "aaaaaaaaaaaaaaaa…: the ledger was rewritten or forked"
    ]


def test_checkpoint_signed_by_unknown_key(tmp_path: Path, keydir: Path) -> None:
    signer, _ = signing.keygen(keydir / "x.pem", tmp_path / "other-trust.json")
    cp = checkpoint.for_head({"seq": 1, "hash": "1" * 64}, signer)
    assert cp.signed and cp.key == signer.fingerprint and cp.seq == 1
    trust = signing.TrustStore(tmp_path / "t.json")
    assert checkpoint.check_against(cp, [{"seq": 1, "hash": "1" * 64}], trust) == [
        f"checkpoint seq=1 at {cp.at}: signed by unknown key {signer.fingerprint} "
        f"(not in {trust.path})"
    ]
    unsigned = checkpoint.for_head(None, None)
    assert (unsigned.seq, unsigned.head, unsigned.signed) == (0, audit.GENESIS, False)


def test_checkpoint_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    one, two = _cp(1), _cp(2)
    path = tmp_path / "w.log"
    path.write_text(f"# witness\n\n{one.line}\n{two.line}\n")
    loaded = checkpoint.load(str(path))
    assert [(c.seq, c.source) for c in loaded] == [(1, f"{path}:3"), (2, f"{path}:4")]
    (tmp_path / "empty.log").write_text("# nothing\n\n")
    with pytest.raises(checkpoint.CheckpointError, match="holds no checkpoint"):
        checkpoint.load(str(tmp_path / "empty.log"))
    assert checkpoint.load(one.line) == [checkpoint.parse(one.line, "command line")]


def test_checkpoint_refuses_a_broken_ledger(audit_dir: Path) -> None:
    seal_one(audit_dir)
    writable(audit_dir / audit.LEDGER).write_text("{torn\n")
    with pytest.raises(checkpoint.CheckpointError, match="ledger line 1 is unreadable"):
        checkpoint.current(audit_dir, None)


# ------------------------------------------------------------------ file ledger


def test_file_ledger_entries_skip_blank_lines_and_mark_non_objects(tmp_path: Path) -> None:
    (tmp_path / "ledger.jsonl").write_text('{"seq": 1}\n\n   \n[1, 2]\n"text"\n{"seq": 2}\n')
    assert ledger.FileLedger(tmp_path).entries() == [
        {"seq": 1},
        {"_unreadable": "[1, 2]", "_line": 4},
        {"_unreadable": '"text"', "_line": 5},
        {"seq": 2},
    ]


def test_file_ledger_append_leaves_no_file_descriptor_open(tmp_path: Path) -> None:
    book = ledger.FileLedger(tmp_path)
    before = len(os.listdir("/proc/self/fd"))
    for seq in range(1, 4):
        book.append(lambda head, seq=seq: {"seq": seq})
    assert len(os.listdir("/proc/self/fd")) == before
    assert [e["seq"] for e in book.entries()] == [1, 2, 3]


def test_file_ledger_head_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    book = ledger.FileLedger(tmp_path)
    assert book.head() is None and book.entries() == []
    path.write_text("\n\n  \n")
    assert book.head() is None
    path.write_text('{"seq": 1}\n\n\n')
    assert book.head() == {"seq": 1}
    path.write_text('{"seq": 1}\n{"seq": 2}')  # a last line without its newline is whole
    assert book.head() == {"seq": 2}
    path.write_text('{"seq": 1}\n{"seq": 2, "pad": "' + "x" * 10_000 + '"}\n')
    assert book.head() == {"seq": 2, "pad": "x" * 10_000}
    path.write_text('{"seq": 1}\n' + "y" * 5000 + "\n")
    assert book.head() == {"_unreadable": "y" * 5000, "_line": "last"}
    path.write_text('{"seq": 1}\n[3]\n')
    assert book.head() == {"_unreadable": "[3]", "_line": "last"}


def test_file_ledger_appends_one_line_each(tmp_path: Path) -> None:
    book = ledger.FileLedger(tmp_path)
    book.append(lambda head: {"b": 1, "a": "é"})
    book.append(lambda head: {"seq": 2})
    assert (tmp_path / "ledger.jsonl").read_text(encoding="utf-8") == (
        '{"a":"é","b":1}\n{"seq":2}\n'
    )
    assert (tmp_path / ".ledger.lock").exists()


def test_open_ledger_chooses_by_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(ledger.open_ledger(tmp_path), ledger.FileLedger)
    assert isinstance(ledger.open_ledger(tmp_path, "file"), ledger.FileLedger)
    ledger.register_backend("sharedtest", _Shared)
    assert isinstance(ledger.open_ledger(tmp_path, "sharedtest://x"), _Shared)
    monkeypatch.setenv("OPSBOOK_LEDGER", "sharedtest://old-spelling")
    assert ledger.ledger_url() == "sharedtest://old-spelling"
    assert isinstance(ledger.open_ledger(tmp_path), _Shared)
    assert ledger.is_shared(ledger.open_ledger(tmp_path)) is True
    assert ledger.is_shared(ledger.FileLedger(tmp_path)) is False
    with pytest.raises(ledger.ConfigError) as info:
        ledger.open_ledger(tmp_path, "nosuch://user:secret@host/db")
    assert "secret" not in str(info.value) and "'host/db'" in str(info.value)
    assert "known backends: file, postgres, postgresql, sharedtest" in str(info.value.hint)


# ------------------------------------------------------------------ survivors of make mutate


def test_garbage_line_inserted_between_entries(audit_dir: Path, ids: list[str]) -> None:
    lines = (audit_dir / audit.LEDGER).read_text().splitlines()
    writable(audit_dir / audit.LEDGER).write_text("\n".join([lines[0], "{x", *lines[1:]]) + "\n")
    chain = (
        "does not chain to the entry before it: a ledger line was dropped, inserted or reordered"
    )
    assert audit.verify(audit_dir) == [
        "ledger line 2: unreadable (edited?)",
        f"ledger entry 3 (run {ids[1]}): sequence number 2 where 3 was expected: "
        "ledger lines dropped or reordered",
        f"ledger entry 3 (run {ids[1]}): {chain}",  # nothing chains to an unreadable line
        f"ledger entry 4 (run {ids[2]}): sequence number 3 where 4 was expected: "
        "ledger lines dropped or reordered",
    ]


def test_checkpoint_messages_quote_at_most_120_characters(tmp_path: Path) -> None:
    long = "z" * 200
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.parse(long, "w.log:1")
    assert info.value.args[0].startswith(f"not a checkpoint line (w.log:1): {'z' * 120!r}")
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load(str(tmp_path / long))
    assert info.value.args[0].startswith(f"--checkpoint {str(tmp_path / long)[:120]!r} is neither")


def test_checkpoint_file_missing_or_unreadable(tmp_path: Path) -> None:
    with pytest.raises(
        checkpoint.CheckpointError, match="neither a checkpoint line nor a readable"
    ):
        checkpoint.load(str(tmp_path))  # a folder
    (tmp_path / "bad.log").write_bytes(b"\xff\xfe")
    with pytest.raises(checkpoint.CheckpointError, match=r"bad.log is unreadable"):
        checkpoint.load(str(tmp_path / "bad.log"))


def test_new_ledger_file_mode(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        ledger.FileLedger(tmp_path).append(lambda head: {"seq": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "ledger.jsonl").stat().st_mode & 0o777 == 0o644


def test_postgres_backend_loads_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "opsbook.ledger_pg", raising=False)
    for scheme in ("postgresql", "postgres"):
        monkeypatch.delitem(ledger._BACKENDS, scheme, raising=False)
    book = ledger.open_ledger(tmp_path, "postgresql://runner@127.0.0.1:1/none")
    assert type(book).__name__ == "PostgresLedger" and ledger.is_shared(book)
