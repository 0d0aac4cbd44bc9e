"""Glue for the notebook: resolve parameters, summarise a run, write artifacts, fail loudly.

Kept out of the notebook so each cell stays one call, and tested like the rest.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from opsbook.migrate.errors import IntegrityFailed, ValidationFailed
from opsbook.migrate.fixture import make_demo_chroma
from opsbook.migrate.run import MigrationConfig, MigrationResult, Plan


def prepare(
    demo_docs: int = 1500, rollback: bool = False, **params: Any
) -> tuple[MigrationConfig, str]:
    """A :class:`MigrationConfig` from notebook parameters, plus a line saying what was chosen.

    With neither ``chroma_path`` nor ``chroma_url``, a small demo store of ``demo_docs``
    documents is generated in the work dir (reused when it is already there), except
    in rollback mode, which never reads the source.
    """
    if not params.get("work_dir"):
        params["work_dir"] = tempfile.mkdtemp(prefix="opsbook-migrate-")
    note = ""
    if rollback:
        cfg = MigrationConfig(**params)
        return cfg, f"ROLLBACK of the last cutover journalled in {cfg.work_dir} ({cfg.target})."
    if not params.get("chroma_path") and not params.get("chroma_url"):
        demo = Path(params["work_dir"]) / "demo-chroma"
        if not (demo / "chroma.sqlite3").exists():
            make_demo_chroma(demo, n_docs=demo_docs)
        params["chroma_path"] = str(demo)
        note = f"No source given: using a generated demo store of {demo_docs} documents at {demo}. "
    cfg = MigrationConfig(**params)
    source = cfg.chroma_path or cfg.chroma_url
    where = cfg.qdrant_url if cfg.target == "server" else cfg.qdrant_path
    note += (
        f"Source {source} → target {cfg.target} ({where}); work dir {cfg.work_dir}; "
        f"{'DRY RUN (nothing written to the target)' if cfg.dry_run else 'LIVE'}."
    )
    return cfg, note


def output_folder(output_dir: str) -> Path:
    """The step's artifact folder, or a temp one."""
    path = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="opsbook-migrate-out-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def summary(
    cfg: MigrationConfig,
    plan: Plan | None,
    result: MigrationResult | None,
    rolled_back: list[dict] | None = None,
    started: float | None = None,
) -> dict[str, Any]:
    """Every value the notebook records, in one JSON-ready dict."""
    mode = "rollback" if rolled_back is not None else "dry_run" if result is None else "migrate"
    out: dict[str, Any] = {
        "mode": mode,
        "target": cfg.target,
        "work_dir": cfg.work_dir,
        "qdrant_path": cfg.qdrant_path,
        "total_records": 0,
        "counts": {},
        "mismatches": {},
        "recall_at_10": {},
        "search": {},
        "search_verified": None,
        "duration_s": 0.0,
        "records_per_s": 0.0,
        "records_written": 0,
        "integrity_ok": None,
        "cutover_done": False,
        "estimated_s": None,
        "estimate_basis": None,
        "staging": {},
        "backup_path": None,
        "validation": {},
        "rolled_back": rolled_back or [],
    }
    if plan is not None:
        out["total_records"] = plan.total_records
        out["estimated_s"] = round(plan.estimated_s, 2)
        out["estimate_basis"] = plan.estimate_basis
        out["validation"] = {c.info.name: dict(c.findings.counts) for c in plan.collections}
        out["counts"] = {
            c.info.name: {"source": c.info.count, "target": None} for c in plan.collections
        }
        out["integrity_ok"] = plan.ok
    if result is not None:
        out.update(
            total_records=result.total_records,
            counts=result.counts(),
            mismatches=result.mismatches(),
            recall_at_10=result.recall_at_10(),
            search=result.search(),
            search_verified=result.search_verified,
            cutover_requested=cfg.cutover,
            allow_unverified_search=cfg.allow_unverified_search,
            records_per_s=round(result.records_per_s, 1),
            records_written=result.records_written,
            integrity_ok=result.integrity_ok and (plan is None or plan.ok),
            cutover_done=result.cutover_done,
            backup_path=result.backup_path,
            staging={c.info.name: c.staging for c in result.collections},
            verify_s=round(result.verify_s, 3),
            write_s=round(result.write_s, 3),
            migrate_s=round(result.duration_s, 3),
            skipped=result.skipped,
        )
    if started is not None:
        out["duration_s"] = round(time.perf_counter() - started, 3)
    return out


def write_artifacts(
    out: dict[str, Any], result: MigrationResult | None, folder: Path
) -> list[Path]:
    """summary.json, and mismatches.csv when there is a live result."""
    written = [folder / "summary.json"]
    written[0].write_text(json.dumps(out, indent=1, default=str))
    if result is not None:
        path = folder / "mismatches.csv"
        result.mismatch_examples().to_csv(path, index=False)
        written.append(path)
    return written


def raise_if_failed(out: dict[str, Any]) -> None:
    """Fail the step (after the records were written) when validation or integrity failed."""
    if out["mode"] == "dry_run" and out["integrity_ok"] is False:
        raise ValidationFailed(
            f"the dry run found records that cannot migrate: {out['validation']}",
            hint="see the findings table; fix the source, then run again",
        )
    if out["mode"] == "migrate" and not out["integrity_ok"]:
        raise IntegrityFailed(
            f"verification failed, no cutover: {out['mismatches']}",
            hint="see the mismatch table and mismatches.csv; the aliases "
            "still point where they did",
        )
    if (
        out["mode"] == "migrate"
        and out.get("cutover_requested")
        and not out["search_verified"]
        and not out.get("allow_unverified_search")
    ):
        raise IntegrityFailed(
            "search was not verified (sample_queries=0), so no alias moved",
            hint="run again with sample_queries > 0 (1000 is the default), or pass "
            "allow_unverified_search=True to cut over without the search check",
        )
