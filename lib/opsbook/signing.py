"""Ed25519 signing keys and the trusted-keys file that verification checks against.

A hash chain anyone can recompute proves nothing against someone who can write the
audit folder; a signature made with a private key kept *outside* that folder does.

- The private key is a PEM file (PKCS#8, unencrypted, mode 0600) named by
  ``$OPSBOOK_SIGNING_KEY``; it must not live under the audit root. Without it, runs
  still work and their ledger entries are ``unsigned``.
- Public keys live in a trusted-keys file controlled by the repo or the operator:
  ``$OPSBOOK_TRUSTED_KEYS``, default ``audit-keys/trusted.json`` in the project root.
  It must not live under the audit root either (a forger could add a key there).
- A key is named by its fingerprint, ``ed25519:`` + the first 32 hex digits of the
  sha256 of its raw public key. Every signed ledger entry carries the fingerprint.
- Rotation: ``opsbook keygen`` adds a new key; ``opsbook keys retire FP`` gives the old
  one an ``expires_at`` (signatures made before it stay valid, later ones do not);
  ``opsbook keys revoke FP`` marks a compromised key: every signature it made fails.

Trusted-keys file format (JSON)::

    {"version": 1, "keys": [{"fingerprint": "ed25519:...", "public_key": "<base64 raw>",
      "name": "ci", "added_at": "...Z", "expires_at": null, "revoked_at": null,
      "revoked_reason": null}]}
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from opsbook.errors import SigningKeyError

KEY_ENV = "OPSBOOK_SIGNING_KEY"
TRUSTED_ENV = "OPSBOOK_TRUSTED_KEYS"
DEFAULT_TRUSTED = Path("audit-keys") / "trusted.json"


def _now() -> str:
    from opsbook.audit import now_iso

    return now_iso()


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class Signer:
    """A loaded private key and its fingerprint."""

    key: Ed25519PrivateKey
    fingerprint: str
    path: Path

    def sign(self, message: str) -> str:
        return _b64(self.key.sign(message.encode("utf-8")))


@dataclass
class TrustedKey:
    fingerprint: str
    public_key: str
    name: str = ""
    added_at: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    revoked_reason: str | None = None

    def public(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key))

    def unusable_at(self, when: str | None) -> str | None:
        """Why a signature made at ``when`` by this key cannot be trusted (None: it can)."""
        if self.revoked_at:
            reason = f": {self.revoked_reason}" if self.revoked_reason else ""
            return f"key {self.fingerprint} was revoked at {self.revoked_at}{reason}"
        if self.expires_at and (when is None or when > self.expires_at):
            return f"key {self.fingerprint} expired at {self.expires_at} (signed at {when})"
        return None


class TrustStore:
    """The trusted public keys, by fingerprint."""

    def __init__(self, path: Path, keys: dict[str, TrustedKey] | None = None) -> None:
        self.path = path
        self.keys: dict[str, TrustedKey] = keys or {}

    @classmethod
    def load(cls, path: Path | None = None) -> TrustStore:
        path = path or trusted_keys_path()
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            keys = {}
            for item in data["keys"]:
                key = TrustedKey(**item)
                key.public()  # a malformed public key fails here, not in verify
                keys[key.fingerprint] = key
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SigningKeyError(
                f"trusted-keys file {path} is unreadable: {type(exc).__name__}: {exc}",
                hint=f"fix or restore it (format in `opsbook keygen --help`); ${TRUSTED_ENV} "
                "names another file",
            ) from None
        return cls(path, keys)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"version": 1, "keys": [asdict(k) for k in self.keys.values()]}
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)

    def get(self, fp: str) -> TrustedKey:
        if fp not in self.keys:
            known = ", ".join(self.keys) or "none"
            raise SigningKeyError(
                f"key {fp} is not in the trusted-keys file {self.path} (trusted: {known})",
                hint="add it with `opsbook keygen` or `opsbook keys trust PUBLIC_KEY`",
            )
        return self.keys[fp]

    def check(
        self, fp: str | None, signature: str | None, message: str, when: str | None
    ) -> str | None:
        """Why ``signature`` over ``message`` is not acceptable (None when it is)."""
        if not fp or not signature:
            return "unsigned"
        key = self.keys.get(fp)
        if key is None:
            return f"signed by unknown key {fp} (not in {self.path})"
        try:
            key.public().verify(base64.b64decode(signature, validate=True), message.encode())
        except (InvalidSignature, ValueError):
            return f"signature by {fp} does not verify (forged or edited)"
        return key.unusable_at(when)


def trusted_keys_path() -> Path:
    """``$OPSBOOK_TRUSTED_KEYS``, else ``audit-keys/trusted.json`` in the project root."""
    if os.environ.get(TRUSTED_ENV):
        return Path(os.environ[TRUSTED_ENV]).expanduser().resolve()
    from opsbook.paths import project_root

    return project_root() / DEFAULT_TRUSTED


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def refuse_inside_root(path: Path, root: Path, what: str) -> None:
    if _inside(path, root):
        raise SigningKeyError(
            f"the {what} {path} is inside the audit root {root}: anyone who can write the "
            "records could change it",
            hint="keep keys outside the audit folder (see README, Audit records)",
        )


def load_private(path: Path) -> Signer:
    """Read an Ed25519 private key (PEM) or raise a :class:`SigningKeyError`."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(
            f"signing key {path} does not exist",
            hint=f"create one with `opsbook keygen --out {path}` or unset {KEY_ENV}",
        ) from None
    except OSError as exc:
        raise SigningKeyError(f"signing key {path} is unreadable: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(blob, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"signing key {path} is not an unencrypted PEM private key ({exc})",
            hint="`opsbook keygen` writes one",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {path} is not an Ed25519 key")
    return Signer(key, fingerprint(key.public_key()), path)


def signer_from_env(root: Path, trust: TrustStore | None = None) -> Signer | None:
    """The signer named by ``$OPSBOOK_SIGNING_KEY`` (None when unset), checked to be
    outside ``root``, trusted, not expired and not revoked: a run refuses to start
    (nothing written) rather than seal records nobody can verify."""
    value = os.environ.get(KEY_ENV)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    refuse_inside_root(path, root, "signing key")
    signer = load_private(path)
    trust = trust or TrustStore.load()
    refuse_inside_root(trust.path, root, "trusted-keys file")
    key = trust.get(signer.fingerprint)
    problem = key.unusable_at(_now())
    if problem:
        raise SigningKeyError(
            f"signing key {path}: {problem}",
            hint="create a new key with `opsbook keygen` and point OPSBOOK_SIGNING_KEY at it",
        )
    if key.public_key != _b64(
        signer.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    ):
        raise SigningKeyError(f"signing key {path} does not match trusted key {key.fingerprint}")
    return signer


def keygen(out: Path, trusted: Path | None = None, name: str = "") -> tuple[Signer, TrustStore]:
    """Write a new private key to ``out`` (never overwriting) and trust its public key."""
    trust = TrustStore.load(trusted)
    if out.exists():
        raise SigningKeyError(
            f"{out} already exists: a key is never overwritten",
            hint="choose another --out path (rotation keeps old keys in the trusted file)",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fp = fingerprint(public)
    trust.keys[fp] = TrustedKey(fp, _b64(raw), name=name, added_at=_now())
    trust.save()
    return Signer(key, fp, out.resolve()), trust


def retire(
    fp: str, trusted: Path | None = None, *, revoke: bool = False, reason: str = ""
) -> TrustedKey:
    """Expire (rotation: older signatures stay valid) or revoke (all invalid) a key."""
    trust = TrustStore.load(trusted)
    key = trust.get(fp)
    if revoke:
        key.revoked_at = key.revoked_at or _now()
        key.revoked_reason = reason or key.revoked_reason
    else:
        key.expires_at = key.expires_at or _now()
    trust.save()
    return key


def describe(trust: TrustStore) -> list[dict[str, Any]]:
    return [asdict(k) for k in trust.keys.values()]
