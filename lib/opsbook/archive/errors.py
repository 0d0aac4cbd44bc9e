"""Errors raised by the archive audit: what went wrong and what to do next."""

from __future__ import annotations

from opsbook.errors import ConfigError, OpsbookError


class NotAGitRepo(ConfigError):
    """The path is not the root of a git working tree."""


class MissingAppsDir(ConfigError):
    """None of the apps directories exists in the repository."""


class UnknownCandidate(ConfigError):
    """An explicit candidate names no app found by the inventory."""


class DirtyWorkingTree(ConfigError):
    """Apply or restore refused: the working tree has uncommitted changes."""


class DetachedHead(ConfigError):
    """Apply or restore refused: HEAD is detached, so there is no branch to commit to."""


class ArchiveConflict(ConfigError):
    """A destination path already exists (archive dir or restore target)."""


class NotArchived(ConfigError):
    """Restore found no archive manifest entry for the app."""


class UnsafePath(ConfigError):
    """A path from a manifest, config or parameter leaves the repository or enters .git."""


class ApplyFailed(OpsbookError):
    """Apply or restore failed part-way; the tree was put back to where it was."""


class VerifyFailed(OpsbookError):
    """After apply, something still points at an archived app (listed in the message)."""
