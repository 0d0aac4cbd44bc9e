"""Secrets and settings from environment variables.

Parameters and runbooks carry the *name* of an environment variable, never its value;
this module is the one place that reads the value, and it remembers every value it
handed out so the audit writer can redact it from every artifact.
"""

from __future__ import annotations

import os
from pathlib import Path

from opsbook.errors import SecretError

_SEEN_SECRETS: set[str] = set()


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
    return value


def audit_root() -> Path:
    """Root folder of audit records: ``$OPSBOOK_AUDIT_DIR`` or ``./audit``."""
    return Path(os.environ.get("OPSBOOK_AUDIT_DIR", "audit")).resolve()
