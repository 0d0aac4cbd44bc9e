"""Signed ledger entries: forgers without the private key, rotation, revocation, bad keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditkit import forge, rewrite_ledger, seal_one
from opsbook import audit, signing
from opsbook.cli import cli
from opsbook.errors import SigningKeyError


def test_signed_entries_verify(audit_dir: Path, key_a: signing.Signer) -> None:
    ids = [seal_one(audit_dir) for _ in range(3)]
    result = audit.verify_trail(audit_dir, require_signed=True)
    assert result.problems == [] and result.signed == 3 and result.unsigned == []
    entries = audit.read_ledger(audit_dir)
    assert [e["run_id"] for e in entries] == ids
    assert {e["key"] for e in entries} == {key_a.fingerprint}
    assert all(e["signature"] for e in entries)


@pytest.mark.parametrize("signatures", ["keep", "strip-forged"])
def test_forger_without_key_fails_naming_the_run(
    audit_dir: Path, key_a: signing.Signer, signatures: str
) -> None:
    ids = [seal_one(audit_dir) for _ in range(3)]
    forge(audit_dir, ids[1], signatures)
    problems = audit.verify(audit_dir)
    assert any(ids[1] in p for p in problems)
    expected = "does not verify" if signatures == "keep" else "unsigned after signed entries"
    assert any(ids[1] in p and expected in p for p in problems)
    assert all("run.json was modified" not in p for p in problems)  # the chain itself holds


def test_forger_stripping_every_signature_fails_require_signed(
    audit_dir: Path, key_a: signing.Signer
) -> None:
    ids = [seal_one(audit_dir) for _ in range(2)]
    forge(audit_dir, ids[0], "strip")
    assert audit.verify(audit_dir) == []  # an all-unsigned ledger looks legacy...
    problems = audit.verify(audit_dir, require_signed=True)  # ...which CI refuses
    assert problems == [
        f"ledger entry 1 (run {ids[0]}): unsigned (--require-signed)",
        f"ledger entry 2 (run {ids[1]}): unsigned (--require-signed)",
    ]


def test_forger_with_own_key_is_unknown(
    audit_dir: Path, key_a: signing.Signer, tmp_path: Path
) -> None:
    run_id = seal_one(audit_dir)
    mallory, _ = signing.keygen(tmp_path / "mallory.pem", tmp_path / "mallory-trust.json")
    entries = audit.read_ledger(audit_dir)
    entries[0]["key"] = mallory.fingerprint
    entries[0]["hash"] = audit.entry_hash(entries[0])
    entries[0]["signature"] = mallory.sign(entries[0]["hash"])
    rewrite_ledger(audit_dir, entries)
    assert audit.verify(audit_dir) == [
        f"ledger entry 1 (run {run_id}): signed by unknown key {mallory.fingerprint} "
        f"(not in {signing.trusted_keys_path()})"
    ]


def test_legacy_unsigned_records_still_verify(audit_dir: Path, keydir: Path) -> None:
    run_id = seal_one(audit_dir)  # no OPSBOOK_SIGNING_KEY: unsigned
    entries = audit.read_ledger(audit_dir)
    assert entries[0]["key"] == "unsigned" and "signature" not in entries[0]
    # a ledger line exactly as written before signing existed (no key field at all)
    legacy = {k: v for k, v in entries[0].items() if k not in ("key", "approvals")}
    legacy["hash"] = audit.entry_hash(legacy)
    rewrite_ledger(audit_dir, [legacy])
    result = audit.verify_trail(audit_dir)
    assert result.problems == [] and result.unsigned == [run_id]
    assert audit.verify(audit_dir, require_signed=True) == [
        f"ledger entry 1 (run {run_id}): unsigned (--require-signed)"
    ]


def test_rotation_keeps_old_records_verifiable(
    audit_dir: Path, key_a: signing.Signer, keydir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = seal_one(audit_dir)
    key_b, _ = signing.keygen(keydir / "b.pem", name="b")
    signing.retire(key_a.fingerprint)
    with pytest.raises(SigningKeyError, match="expired"):
        signing.signer_from_env(audit_dir)  # the retired key no longer signs
    monkeypatch.setenv(signing.KEY_ENV, str(keydir / "b.pem"))
    new = seal_one(audit_dir)
    assert audit.verify(audit_dir, require_signed=True) == []
    keys = [e["key"] for e in audit.read_ledger(audit_dir)]
    assert keys == [key_a.fingerprint, key_b.fingerprint]
    # an entry signed with the retired key after it expired does not verify
    entries = audit.read_ledger(audit_dir)
    entries[1]["key"] = key_a.fingerprint
    entries[1]["hash"] = audit.entry_hash(entries[1])
    entries[1]["signature"] = key_a.sign(entries[1]["hash"])
    rewrite_ledger(audit_dir, entries)
    problems = audit.verify(audit_dir)
    assert len(problems) == 1 and new in problems[0] and "expired at" in problems[0]
    assert old not in problems[0]


def test_revoked_key_fails_every_signature(audit_dir: Path, key_a: signing.Signer) -> None:
    ids = [seal_one(audit_dir) for _ in range(2)]
    signing.retire(key_a.fingerprint, revoke=True, reason="laptop stolen")
    problems = audit.verify(audit_dir)
    assert len(problems) == 2
    assert all("was revoked" in p and "laptop stolen" in p for p in problems)
    assert [i for i in ids if any(i in p for p in problems)] == ids
    with pytest.raises(SigningKeyError, match="revoked"):
        signing.signer_from_env(audit_dir)


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing", "does not exist"),
        ("garbage", "not an unencrypted PEM private key"),
        ("untrusted", "is not in the trusted-keys file"),
        ("inside", "is inside the audit root"),
        ("bad-trust", "trusted-keys file"),
    ],
)
def test_bad_key_refused_before_anything_is_written(
    audit_dir: Path,
    keydir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_runbook,
    setup: str,
    message: str,
) -> None:
    key = tmp_path / "k.pem"
    if setup == "garbage":
        key.write_text("not a key")
    elif setup == "untrusted":
        signing.keygen(key, tmp_path / "other-trust.json")
    elif setup == "inside":
        audit_dir.mkdir()
        key = audit_dir / "k.pem"
        signing.keygen(key)
    elif setup == "bad-trust":
        signing.keygen(key)
        (keydir / "trusted.json").write_text("{not json")
    monkeypatch.setenv(signing.KEY_ENV, str(key))
    before = sorted(p.name for p in audit_dir.iterdir()) if audit_dir.exists() else []
    path = write_runbook("""
    name: refused
    steps:
      - id: one
        notebook: notebooks/add.ipynb
    """)
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    after = sorted(p.name for p in audit_dir.iterdir()) if audit_dir.exists() else []
    assert after == before


def test_keygen_never_overwrites_and_trusts(keydir: Path, audit_dir: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["keygen", "--out", str(keydir / "k.pem"), "--name", "ci"])
    assert first.exit_code == 0, first.output
    trusted = json.loads((keydir / "trusted.json").read_text())
    assert [k["name"] for k in trusted["keys"]] == ["ci"]
    assert oct((keydir / "k.pem").stat().st_mode & 0o777) == "0o600"
    again = runner.invoke(cli, ["keygen", "--out", str(keydir / "k.pem")])
    assert again.exit_code == 2 and "never overwritten" in again.output


@pytest.mark.parametrize("signatures", ["keep", "strip-forged"])
def test_resume_check_catches_a_rechained_forgery(
    audit_dir: Path, key_a: signing.Signer, signatures: str
) -> None:
    ids = [seal_one(audit_dir, status="awaiting_approval") for _ in range(3)]
    assert audit.verify_one(audit_dir, ids[0]) == []
    forge(audit_dir, ids[0], signatures)  # run.json, its entry and every later entry
    problems = audit.verify_one(audit_dir, ids[0])
    assert problems, "a forged record must not be resumable"
    if signatures == "strip-forged":
        assert any(ids[0] in p and "stripped" in p for p in problems)
    # entries after the forged one were re-chained: their signatures no longer verify
    assert any(ids[1] in p and "does not verify" in p for p in problems)


def test_index_says_which_records_are_signed(
    audit_dir: Path, keydir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsbook import report

    unsigned = seal_one(audit_dir, runbook={"name": "unit"})
    signer, _ = signing.keygen(keydir / "a.pem")
    monkeypatch.setenv(signing.KEY_ENV, str(keydir / "a.pem"))
    signed = seal_one(audit_dir, runbook={"name": "unit"})
    page = report.audit_index(audit_dir).read_text()
    assert page.count("<th>sealed</th>") == 1
    assert page.count(f'<td><span title="{signer.fingerprint}">signed</span></td>') == 1
    assert page.count("<td>unsigned</td>") == 1
    assert unsigned in page and signed in page
