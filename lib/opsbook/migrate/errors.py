"""Errors of the Chroma → Qdrant migration, each with what went wrong and what to do."""

from __future__ import annotations

from opsbook.errors import ConfigError, OpsbookError, ServiceUnavailable

__all__ = [
    "BackupError",
    "CheckpointMismatch",
    "IntegrityFailed",
    "MigrateError",
    "SourceNotFound",
    "SourceUnavailable",
    "SourceUnreadable",
    "TargetConflict",
    "TargetUnavailable",
    "UnknownCollection",
    "ValidationFailed",
]


class MigrateError(OpsbookError):
    """Base of the migration's own errors."""


class SourceNotFound(ConfigError):
    """The Chroma directory does not exist or is not a Chroma store."""


class SourceUnreadable(ConfigError):
    """The Chroma store exists but cannot be read: corrupt, foreign, too old, or vectors gone."""


class UnknownCollection(ConfigError):
    """A requested collection does not exist in the source (it is never created)."""


class TargetConflict(ConfigError):
    """A target collection or alias exists with a different vector size or distance."""


class CheckpointMismatch(ConfigError):
    """A checkpoint does not match the source it is asked to resume."""


class ValidationFailed(ConfigError):
    """The source holds records that cannot be migrated faithfully."""


class BackupError(MigrateError):
    """A backup could not be written, or does not match its manifest."""


class IntegrityFailed(MigrateError):
    """Verification found mismatches between source and target: no cutover happened."""


class SourceUnavailable(ServiceUnavailable):
    """The Chroma server could not be reached."""


class TargetUnavailable(ServiceUnavailable):
    """The Qdrant server could not be reached."""
