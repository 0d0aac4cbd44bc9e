"""Chroma → Qdrant migration that proves every record (see ``run.py`` for the jobs).

Public API: :func:`plan` (dry run), :func:`checklist` (what must hold before approving the
live run), :func:`migrate`, :func:`rollback`, :func:`cleanup`,
:func:`restore` (a backup), :func:`make_demo_chroma` (the demo fixture).
"""

from opsbook.migrate.approval import checklist
from opsbook.migrate.backup import restore
from opsbook.migrate.fixture import make_demo_chroma
from opsbook.migrate.run import (
    MigrationConfig,
    MigrationResult,
    Plan,
    cleanup,
    migrate,
    plan,
    rollback,
)

__all__ = [
    "MigrationConfig",
    "MigrationResult",
    "Plan",
    "checklist",
    "cleanup",
    "make_demo_chroma",
    "migrate",
    "plan",
    "restore",
    "rollback",
]
