"""One exception hierarchy for opsbook.

Every error says what went wrong and what to do next. Errors worth retrying derive
from :class:`TransientError`; everything else is terminal. Domain packages define
their own leaf classes under these.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code of ``opsbook`` and its domain commands (also in the README).

    ====  ===============================================
    0     every step succeeded (or was skipped by ``when:``)
    1     a step failed (the record says which cell)
    2     bad input: unknown parameter, wrong type, missing file
    3     stopped at an approval gate (resume with ``--approve``)
    4     the runbook is invalid (``opsbook validate`` explains)
    5     the audit trail failed verification
    ====  ===============================================
    """

    OK = 0
    FAILED = 1
    USAGE = 2
    AWAITING_APPROVAL = 3
    INVALID_RUNBOOK = 4
    TAMPERED = 5


class OpsbookError(Exception):
    """Base of every error opsbook raises on purpose."""

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}\n  hint: {hint}" if hint else message)


class TransientError(OpsbookError):
    """A failure that may succeed when retried (timeouts, 429, 5xx, busy servers)."""


class ConfigError(OpsbookError):
    """Bad input from the user: a wrong path, an unknown parameter, a bad value."""

    exit_code = ExitCode.USAGE


class ServiceUnavailable(TransientError):
    """A server (Redis, Chroma, Qdrant, Loki) could not be reached."""


class SecretError(ConfigError):
    """A secret's environment variable is missing or malformed."""


class SigningKeyError(ConfigError):
    """A signing or trusted key is missing, unreadable, unknown, expired or revoked."""


class CheckpointError(ConfigError):
    """A checkpoint line or file given to ``verify --checkpoint`` cannot be read."""


class RunbookError(ConfigError):
    """A runbook file is invalid: schema, template or notebook mismatch."""

    exit_code = ExitCode.INVALID_RUNBOOK


class AwaitingApproval(OpsbookError):
    """A run or a change stopped at an approval gate that was not approved."""

    exit_code = ExitCode.AWAITING_APPROVAL


class ApprovalRequired(AwaitingApproval):
    """A production change from an interactive kernel has no approval: nothing changed."""


class AuditError(OpsbookError):
    """The audit trail is inconsistent: tampered, missing or reordered records."""

    exit_code = ExitCode.TAMPERED


class OutputError(OpsbookError):
    """A step's recorded outputs do not match what its notebook declares."""


class RecordError(AuditError):
    """A run.json does not fit the record format (an unknown status, a missing field)."""
