"""Secrets and settings from environment variables.

Parameters and runbooks carry the *name* of an environment variable, never its value;
this module is the one place that reads the value. Inside a runbook step (the kernel
runs in another process than the runner that seals the record) it reports the *name*
of every variable it read to ``$OPSBOOK_STEP_DIR/secrets-read.txt``, before returning
the value; the runner and the papermill child read that file and redact the value
(in every encoding, see :mod:`opsbook.redact`) like a declared secret.
"""

from __future__ import annotations

import os
from pathlib import Path

from opsbook.errors import SecretError

_SEEN_SECRETS: set[str] = set()
_REPORTED: set[str] = set()


def secret(env_name: str | None, *, required: bool = False) -> str | None:
    """Return the value of the environment variable ``env_name`` (or None when unset).

    >>> secret("QDRANT_API_KEY")  # doctest: +SKIP
    """
    if not env_name:
        if required:
            raise SecretError("no environment variable name given for a required secret")
        return None
    if not env_name.replace("_", "").isalnum():
        raise SecretError(
            f"{env_name!r} is not an environment variable name",
            hint="pass the NAME of the variable (e.g. QDRANT_API_KEY), never the secret itself",
        )
    value = os.environ.get(env_name)
    if value is None or value == "":
        if required:
            raise SecretError(
                f"environment variable {env_name} is not set",
                hint=f"export {env_name}=... before running, or see .env.example",
            )
        return None
    _SEEN_SECRETS.add(value)
    _report_read(env_name)
    return value


def _report_read(env_name: str) -> None:
    """Tell the runner (through the step folder) that this variable holds a secret."""
    step_dir = os.environ.get("OPSBOOK_STEP_DIR")
    if not step_dir or env_name in _REPORTED:
        return
    from opsbook.redact import READ_FILE

    with open(Path(step_dir) / READ_FILE, "a", encoding="utf-8") as fh:
        fh.write(env_name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    _REPORTED.add(env_name)


def seen_secrets() -> set[str]:
    """Every secret value :func:`secret` handed out in this process (for redaction)."""
    return set(_SEEN_SECRETS)


def audit_root() -> Path:
    """Root folder of audit records: ``$OPSBOOK_AUDIT_DIR``, else ``audit/`` of the project
    the cwd is in (so a kernel in ``notebooks/`` and the runner share one ledger), else
    ``./audit``."""
    if os.environ.get("OPSBOOK_AUDIT_DIR"):
        return Path(os.environ["OPSBOOK_AUDIT_DIR"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "runbooks").is_dir() and (folder / "notebooks").is_dir():
            return folder / "audit"
    return here / "audit"
