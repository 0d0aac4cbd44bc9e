"""Signed checkpoints of the ledger head, kept outside the audit folder.

A checkpoint says "at time T the ledger had S entries and its last hash was H", signed
with the signing key (after Go's checksum database and Sigstore's Rekor, whose signed
tree heads witnesses keep). Whoever holds a checkpoint can later tell whether the
ledger was truncated (fewer than S entries) or rewritten (entry S no longer has hash H),
even by someone able to rewrite every file of the audit folder.

One line each::

    opsbook-checkpoint/1 seq=12 head=<sha256 hex> at=2026-11-30T04:00:00.000Z key=ed25519:<fp> sig=<base64>

(``key=unsigned sig=-`` without a signing key). ``opsbook checkpoint`` prints the
current one; after every seal one is appended to the witness file
``$OPSBOOK_WITNESS`` when set (appended, never rewritten); ``opsbook verify
--checkpoint LINE|FILE`` checks the ledger against one line or every line of a file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsbook.errors import CheckpointError
from opsbook.signing import Signer, TrustStore, refuse_inside_root

WITNESS_ENV = "OPSBOOK_WITNESS"
MAGIC = "opsbook-checkpoint/1"
GENESIS = "0" * 64
_LINE = re.compile(
    rf"^{re.escape(MAGIC)} seq=(?P<seq>\d+) head=(?P<head>[0-9a-f]{{64}}) "
    r"at=(?P<at>\S+) key=(?P<key>\S+) sig=(?P<sig>\S+)$"
)


@dataclass
class Checkpoint:
    seq: int
    head: str
    at: str
    key: str
    sig: str
    source: str = ""

    @property
    def message(self) -> str:
        return f"{MAGIC} seq={self.seq} head={self.head} at={self.at} key={self.key}"

    @property
    def line(self) -> str:
        return f"{self.message} sig={self.sig}"

    @property
    def signed(self) -> bool:
        return self.key != "unsigned"


def for_head(head: dict[str, Any] | None, signer: Signer | None) -> Checkpoint:
    """A checkpoint of the ledger whose last entry is ``head`` (None: empty ledger)."""
    from opsbook.audit import now_iso

    seq = int(head["seq"]) if head else 0
    digest = str(head["hash"]) if head else GENESIS
    cp = Checkpoint(seq, digest, now_iso(), signer.fingerprint if signer else "unsigned", "-")
    if signer:
        cp.sig = signer.sign(cp.message)
    return cp


def current(root: Path, signer: Signer | None) -> Checkpoint:
    """A checkpoint of the ledger under ``root`` as it is now."""
    from opsbook.audit import read_ledger

    entries = read_ledger(root)
    for entry in entries:
        if "_unreadable" in entry:
            raise CheckpointError(
                f"ledger line {entry['_line']} is unreadable: not checkpointing a broken ledger",
                hint="run `opsbook verify`",
            )
    return for_head(entries[-1] if entries else None, signer)


def witness_path(root: Path) -> Path | None:
    value = os.environ.get(WITNESS_ENV)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    refuse_inside_root(path, root, "witness file")
    return path


def append(path: Path, cp: Checkpoint) -> None:
    """Append one checkpoint line to a witness file (never rewritten)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (cp.line + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def witness(root: Path, signer: Signer | None, entry: dict[str, Any]) -> Checkpoint | None:
    """After a seal: append the checkpoint of ``entry`` to ``$OPSBOOK_WITNESS`` (if set)."""
    path = witness_path(root)
    if path is None:
        return None
    cp = for_head(entry, signer)
    append(path, cp)
    return cp


def parse(line: str, source: str = "") -> Checkpoint:
    match = _LINE.match(line.strip())
    if not match:
        where = f" ({source})" if source else ""
        raise CheckpointError(
            f"not a checkpoint line{where}: {line.strip()[:120]!r}",
            hint=f"a checkpoint looks like `{MAGIC} seq=N head=<64 hex> at=TIME key=FP sig=B64`"
            " (print one with `opsbook checkpoint`)",
        )
    return Checkpoint(
        int(match["seq"]), match["head"], match["at"], match["key"], match["sig"], source
    )


def load(value: str) -> list[Checkpoint]:
    """Checkpoints from a line, or from every non-empty line of a file."""
    if value.strip().startswith(MAGIC):
        return [parse(value, "command line")]
    path = Path(value).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"--checkpoint {value[:120]!r} is neither a checkpoint line nor a readable file",
            hint="pass the line printed by `opsbook checkpoint` or the witness file",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint file {path} is unreadable: {exc}") from None
    found = [
        parse(line, f"{path}:{number}")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.startswith("#")
    ]
    if not found:
        raise CheckpointError(f"checkpoint file {path} holds no checkpoint")
    return found


def check_against(cp: Checkpoint, entries: list[dict[str, Any]], trust: TrustStore) -> list[str]:
    """Problems of the ledger ``entries`` against one checkpoint."""
    label = f"checkpoint seq={cp.seq} at {cp.at}" + (f" ({cp.source})" if cp.source else "")
    problems = []
    if cp.signed:
        problem = trust.check(cp.key, cp.sig, cp.message, cp.at)
        if problem:
            problems.append(f"{label}: {problem}")
    if len(entries) < cp.seq:
        problems.append(
            f"{label}: the ledger has {len(entries)} entries, the checkpoint saw {cp.seq}: "
            "the ledger was truncated or rolled back"
        )
    elif cp.seq == 0:
        pass
    elif entries[cp.seq - 1].get("hash") != cp.head:
        problems.append(
            f"{label}: ledger entry {cp.seq} no longer has the checkpointed hash "
            f"{cp.head[:16]}…: the ledger was rewritten or forked"
        )
    return problems
