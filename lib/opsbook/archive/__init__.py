"""Archive audit: find experimental and dead apps in a monorepo and archive them safely.

>>> from opsbook.archive import inventory, classify, plan_archive, apply_archive
>>> inv = inventory("/path/to/repo", apps_dirs=["apps"], staleness_days=90)  # doctest: +SKIP
>>> classification = classify(inv)  # doctest: +SKIP
>>> plan = plan_archive(classification)  # doctest: +SKIP
>>> checklist(classification, plan)  # what must hold before approving  # doctest: +SKIP
>>> result = apply_archive(plan)  # doctest: +SKIP
"""

from opsbook.archive.apply import (
    ApplyResult,
    ArchivePlan,
    VerifyReport,
    apply_archive,
    plan_archive,
    verify_archive,
)
from opsbook.archive.approval import checklist
from opsbook.archive.classify import Classification, classify
from opsbook.archive.errors import (
    ApplyFailed,
    ArchiveConflict,
    DetachedHead,
    DirtyWorkingTree,
    MissingAppsDir,
    NotAGitRepo,
    NotArchived,
    UnknownCandidate,
)
from opsbook.archive.fixture import DEMO_NOW, make_demo_monorepo, make_large_monorepo
from opsbook.archive.inventory import App, Inventory, inventory
from opsbook.archive.restore import RestoreResult, restore

__all__ = [
    "DEMO_NOW",
    "App",
    "ApplyFailed",
    "ApplyResult",
    "ArchiveConflict",
    "ArchivePlan",
    "Classification",
    "DetachedHead",
    "DirtyWorkingTree",
    "Inventory",
    "MissingAppsDir",
    "NotAGitRepo",
    "NotArchived",
    "RestoreResult",
    "UnknownCandidate",
    "VerifyReport",
    "apply_archive",
    "checklist",
    "classify",
    "inventory",
    "make_demo_monorepo",
    "make_large_monorepo",
    "plan_archive",
    "restore",
    "verify_archive",
]
