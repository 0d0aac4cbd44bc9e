"""One exception hierarchy for opsbook.

Every error says what went wrong and what to do next. Errors worth retrying derive
from :class:`TransientError`; everything else is terminal. Domain packages define
their own leaf classes under these.
"""

from __future__ import annotations


class OpsbookError(Exception):
    """Base of every error opsbook raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}\n  hint: {hint}" if hint else message)


class TransientError(OpsbookError):
    """A failure that may succeed when retried (timeouts, 429, 5xx, busy servers)."""


class ConfigError(OpsbookError):
    """Bad input from the user: a wrong path, an unknown parameter, a bad value."""

    exit_code = 2


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

    exit_code = 4


class StepFailed(OpsbookError):
    """A runbook step failed: the executed notebook shows the failing cell."""

    exit_code = 1


class AwaitingApproval(OpsbookError):
    """A run stopped at an approval gate that was not approved."""

    exit_code = 3


class ApprovalRequired(AwaitingApproval):
    """A production change from an interactive kernel has no approval: nothing changed."""


class AuditError(OpsbookError):
    """The audit trail is inconsistent: tampered, missing or reordered records."""

    exit_code = 5
