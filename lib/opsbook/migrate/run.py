"""The top-level jobs the notebook calls: :func:`plan`, :func:`migrate`, :func:`rollback`.

>>> from opsbook.migrate import make_demo_chroma, migrate
>>> store = make_demo_chroma("/tmp/demo-chroma", n_docs=1500)          # doctest: +SKIP
>>> result = migrate(chroma_path=store, qdrant_path="/tmp/qdrant",
...                  work_dir="/tmp/work", dry_run=False)               # doctest: +SKIP
>>> result.integrity_ok, result.cutover_done                            # doctest: +SKIP
(True, True)
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from opsbook.actions import recorded
from opsbook.errors import ConfigError
from opsbook.migrate import cutover as aliases  # alias switching: cutover, rollback, cleanup
from opsbook.migrate import legacy, rates
from opsbook.migrate.backup import backup_directory, export_collections
from opsbook.migrate.checkpoint import Checkpoint, checkpoint_path, ids_digest
from opsbook.migrate.checkpoint import load as load_checkpoint
from opsbook.migrate.errors import ValidationFailed
from opsbook.migrate.exact import TopK
from opsbook.migrate.hashes import HashStore, store_path
from opsbook.migrate.pipeline import BatchStat, write_collection
from opsbook.migrate.searchcheck import load_truth, save_truth
from opsbook.migrate.source import ChromaSource, CollectionInfo, check_chroma_dir, open_source
from opsbook.migrate.target import KINDS, Target, open_target
from opsbook.migrate.validate import Findings, check_batch
from opsbook.migrate.verify import VerifyReport, search_sample, verify_collection

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass
class MigrationConfig:
    """Every knob of a migration; the notebook's parameters map onto these one to one."""

    chroma_path: str = ""
    chroma_url: str = ""
    collections: list[str] | None = None
    target: str = ""  # "" = server when qdrant_url is set, else local
    qdrant_path: str = ""
    qdrant_url: str = ""
    qdrant_api_key_env: str = "QDRANT_API_KEY"
    target_names: dict[str, str] | None = None
    batch_size: int = 100
    dry_run: bool = True
    resume: bool = False
    cutover: bool = True
    verify: bool = True
    backup: bool = True
    recall_threshold: float = 0.99  # index quality (ANN recall@10): warns, never blocks
    sample_queries: int = 1000  # queries checked against exact search; 0 = not measured
    allow_unverified_search: bool = False  # cut over even though sample_queries=0
    read_page: int = 2000  # records per source read (independent of batch_size)
    upload_workers: int = 1  # parallel upserts (server targets; embedded ones write serially)
    backup_dir: str = ""
    work_dir: str = ""
    progress: bool = False
    max_listed: int = 20
    run_label: str = ""  # tags a cutover; rollback with a label undoes only that cutover

    def __post_init__(self) -> None:
        if isinstance(self.collections, str):
            self.collections = [self.collections] if self.collections else None
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        for knob in ("read_page", "upload_workers"):
            value = getattr(self, knob)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{knob} must be a positive integer, got {value!r}")
        if not isinstance(self.sample_queries, int) or self.sample_queries < 0:
            raise ConfigError(
                f"sample_queries must be an integer >= 0, got {self.sample_queries!r}",
                hint="1000 is the default; 0 skips the search checks (then cutover needs "
                "allow_unverified_search=True)",
            )
        if not 0.0 <= float(self.recall_threshold) <= 1.0:
            raise ConfigError(f"recall_threshold must lie in [0, 1], got {self.recall_threshold}")
        if not self.work_dir:
            self.work_dir = tempfile.mkdtemp(prefix="opsbook-migrate-")
        if not self.target:
            self.target = "server" if self.qdrant_url else "local"
        if self.target not in KINDS:
            raise ConfigError(
                f"unknown target {self.target!r}", hint=f"choose one of {list(KINDS)}"
            )
        if not self.qdrant_path and self.target in ("local", "edge"):
            self.qdrant_path = str(Path(self.work_dir) / "qdrant")
        if not self.backup_dir:
            self.backup_dir = str(Path(self.work_dir) / "backup")

    @classmethod
    def from_kwargs(cls, config: MigrationConfig | None, **kwargs: Any) -> MigrationConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigError(
                f"unknown migration option(s) {unknown}", hint=f"known: {sorted(known)}"
            )
        if config is None:
            return cls(**kwargs)
        values = {f.name: getattr(config, f.name) for f in fields(cls)} | kwargs
        return cls(**values)

    def alias(self, collection: str) -> str:
        """Alias name in Qdrant for a source collection (its own name unless mapped)."""
        name = (self.target_names or {}).get(collection, collection)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(
                f"alias name {name!r} for collection {collection!r} is not valid",
                hint="use letters, digits, '.', '_' and '-' (at most 200)",
            )
        return name


@dataclass
class CollectionPlan:
    """What the dry run found and would do for one collection."""

    info: CollectionInfo
    alias: str
    current: str | None
    findings: Findings
    read_s: float

    def row(self) -> dict:
        i = self.info
        return {
            "collection": i.name,
            "records": i.count,
            "dim": i.dim,
            "chroma_space": i.metric,
            "space_from": i.metric_from,
            "qdrant_distance": i.distance,
            "alias": self.alias,
            "alias_now": self.current,
            "errors": self.findings.errors,
            "notes": sum(self.findings.counts.values()) - self.findings.errors,
            "findings": dict(self.findings.counts),
            "would_create": f"{self.alias}__<run tag> ({i.dim}-d, {i.distance}), "
            f"then alias {self.alias} -> it",
        }


@dataclass
class Plan:
    """The dry run's result: per-collection plans and an estimated duration."""

    config: MigrationConfig
    source: str
    target: str
    collections: list[CollectionPlan]
    estimated_s: float
    estimate_basis: str = ""  # where the write and verify rates of the estimate come from

    @property
    def total_records(self) -> int:
        return sum(c.info.count for c in self.collections)

    @property
    def ok(self) -> bool:
        return all(c.findings.ok for c in self.collections)

    def table(self) -> Any:
        import pandas as pd

        return pd.DataFrame([c.row() for c in self.collections])

    def findings(self) -> Any:
        import pandas as pd

        rows = [
            e | {"collection": c.info.name} for c in self.collections for e in c.findings.examples
        ]
        return pd.DataFrame(rows, columns=["collection", "kind", "id", "detail"])


@dataclass
class CollectionResult:
    """One collection's migration: where it went, how fast, how it verified."""

    info: CollectionInfo
    alias: str
    staging: str
    resumed_from: int
    batches: list[BatchStat]
    write_s: float
    report: VerifyReport | None
    checkpoint: Checkpoint | None = None
    truth: TopK | None = None
    chroma: list[list[tuple[str, float]]] | None = None
    truth_s: float = 0.0  # sampling queries and asking Chroma (counted as verification)
    adopted: int = 0  # records an older opsbook wrote, hashed from the source on resume
    renormalised: int = 0  # of those, Cosine points rewritten with unit vectors (legacy.py)


@dataclass
class MigrationResult:
    """Everything a live run did, for tables, charts and records."""

    config: MigrationConfig
    collections: list[CollectionResult]
    duration_s: float
    write_s: float
    verify_s: float
    backup_path: str | None
    backup_s: float
    cutover_done: bool = False
    cutover_entry: dict | None = None
    skipped: list[str] = field(default_factory=list)  # empty collections: nothing to create
    started_at: float = field(default_factory=time.time)

    @property
    def total_records(self) -> int:
        return sum(c.info.count for c in self.collections)

    @property
    def records_written(self) -> int:
        """Records upserted by this run (a resumed run skips finished batches)."""
        return sum(b.records for c in self.collections for b in c.batches)

    @property
    def records_per_s(self) -> float:
        """Write throughput of this run: records written / write time (0 if none written)."""
        written = self.records_written
        return written / self.write_s if written and self.write_s > 0 else 0.0

    @property
    def integrity_ok(self) -> bool:
        """Every record matched, and every measured exact search agreed with the truth."""
        return all(c.report is not None and c.report.ok for c in self.collections)

    @property
    def search_verified(self) -> bool:
        """The exact-search check ran (sample_queries > 0) on every collection."""
        return all(c.report is not None and c.report.search.measured for c in self.collections)

    @property
    def cutover_allowed(self) -> bool:
        """Integrity passed, and search was verified or explicitly allowed not to be."""
        return self.integrity_ok and (self.search_verified or self.config.allow_unverified_search)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            c.info.name: {
                "source": c.info.count,
                "target": c.report.target_count if c.report else -1,
            }
            for c in self.collections
        }

    def mismatches(self) -> dict[str, dict[str, int]]:
        return {
            c.info.name: dict(c.report.mismatches) if c.report else {} for c in self.collections
        }

    def search(self) -> dict[str, dict]:
        """Per collection: exact-search integrity and index quality, or "not measured"."""
        return {c.info.name: c.report.search.summary() for c in self.collections if c.report}

    def recall_at_10(self) -> dict[str, dict[str, float | str]]:
        """Per collection: recall@10 vs exact of Chroma's HNSW and of the target's ANN index
        ("not measured" when no query ran, or when the target has no ANN index)."""
        out = {}
        for name, s in self.search().items():
            out[name] = {
                "chroma": s.get("chroma_recall", "not measured"),
                "target": s.get("target_recall", "not measured"),
            }
        return out

    def table(self) -> Any:
        import pandas as pd

        rows = []
        for c in self.collections:
            r = c.report
            rows.append(
                {
                    "collection": c.info.name,
                    "staging": c.staging,
                    "alias": c.alias,
                    "source": c.info.count,
                    "target": r.target_count if r else None,
                    "mismatches": sum(r.mismatches.values()) if r else None,
                    "exact_search": _search_cell(r),
                    "chroma_recall@10": _recall_cell(r, "chroma"),
                    "target_recall@10": _recall_cell(r, "target"),
                    "identical_records": r.identical if r else None,
                    "resumed_from": c.resumed_from,
                    "write_s": round(c.write_s, 2),
                    "verified": "PASS" if r and r.ok else "FAIL",
                }
            )
        return pd.DataFrame(rows)

    def mismatch_examples(self) -> Any:
        import pandas as pd

        rows = [e for c in self.collections if c.report for e in c.report.examples]
        return pd.DataFrame(rows, columns=["collection", "kind", "id", "detail"])


def _search_cell(report: VerifyReport | None) -> str | None:
    if report is None:
        return None
    if not report.search.measured:
        return "not measured"
    return "FAIL" if report.search.failures else f"PASS ({report.search.exact_queries} queries)"


def _recall_cell(report: VerifyReport | None, who: str) -> float | str | None:
    if report is None:
        return None
    value = report.search.chroma_recall if who == "chroma" else report.search.target_recall
    return "not measured" if value is None else round(value, 4)


@contextlib.contextmanager
def _opened(
    cfg: MigrationConfig, *, need_target: bool = True
) -> Iterator[tuple[ChromaSource, Target | None]]:
    """Source and target, both checked before anything is written; closed on exit."""
    from opsbook.settings import secret

    source = open_source(cfg.chroma_path or None, cfg.chroma_url or None, cfg.work_dir)
    target = None
    try:
        if need_target:
            key = secret(cfg.qdrant_api_key_env) if cfg.target == "server" else None
            target = open_target(cfg.target, cfg.qdrant_path or None, cfg.qdrant_url or None, key)
        yield source, target
    finally:
        if target is not None:
            target.close()
        source.close()


def _target_exists(cfg: MigrationConfig) -> bool:
    return cfg.target in ("server", "memory") or bool(
        cfg.qdrant_path and Path(cfg.qdrant_path).exists() and any(Path(cfg.qdrant_path).iterdir())
    )


def _target_identity(cfg: MigrationConfig) -> str:
    if cfg.target == "server":
        return f"server:{cfg.qdrant_url.rstrip('/')}"
    return f"{cfg.target}:{Path(cfg.qdrant_path).expanduser().resolve()}"


def _plan_collection(
    source: ChromaSource, target: Target | None, cfg: MigrationConfig, name: str
) -> CollectionPlan:
    t0 = time.perf_counter()
    info = source.info(name)
    alias = cfg.alias(name)
    current = None
    if target is not None and info.dim is not None:
        if cfg.cutover:
            aliases.check_alias_name(target, alias, info.dim, info.distance)
        current = target.aliases().get(alias)
    findings = Findings(max_examples=cfg.max_listed)
    for batch in source.batches(name, 1000):
        check_batch(batch, findings, info.dim, info.distance)
    return CollectionPlan(info, alias, current, findings, time.perf_counter() - t0)


def plan(config: MigrationConfig | None = None, **kwargs: Any) -> Plan:
    """Dry run: read and validate everything, check the target, write nothing to it."""
    cfg = MigrationConfig.from_kwargs(config, **kwargs)
    if cfg.chroma_path:
        check_chroma_dir(cfg.chroma_path)
    with _opened(cfg, need_target=_target_exists(cfg)) as (source, target):
        names = source.check_names(cfg.collections)
        plans = [_plan_collection(source, target, cfg, n) for n in names]
        identity = target.identity if target else _target_identity(cfg)
        src = source.identity
    total = sum(p.info.count for p in plans)
    read_s = sum(p.read_s for p in plans)
    speed = rates.load(cfg.work_dir, cfg.target)
    basis = (
        f"source copy ~{read_s:.1f}s (this dry run's read) + write at {speed.write:,.0f} rec/s "
        f"+ verify at {speed.verify:,.0f} rec/s: {speed.basis}"
    )
    return Plan(cfg, src, identity, plans, rates.estimate(total, read_s, speed), basis)


def _staging_checkpoint(
    cfg: MigrationConfig,
    source: ChromaSource,
    target: Target,
    info: CollectionInfo,
    tag: str,
    source_ids: list[str],
) -> Checkpoint:
    alias = cfg.alias(info.name)
    path = checkpoint_path(Path(cfg.work_dir), source.identity, info.name, target.identity, alias)
    digest = ids_digest(source_ids)
    old = load_checkpoint(path)
    if old is not None and cfg.resume and target.exists(old.staging):
        old.check_source(info.count, digest)
        return old  # one without record hashes (an older opsbook) is adopted: legacy.py
    if old is not None:
        if old.staging not in target.aliases().values() and target.exists(old.staging):
            target.delete_collection(old.staging)  # an unfinished or superseded staging copy
        _hashes_path(old).unlink(missing_ok=True)
        _truth_path(old).unlink(missing_ok=True)
    new = Checkpoint(
        path,
        source.identity,
        info.name,
        target.identity,
        alias,
        staging=f"{alias}__{tag}",
        total=info.count,
        digest=digest,
    )
    target.create_collection(new.staging, info.dim or 0, info.distance)
    new.save()
    return new


def _hashes_path(cp: Checkpoint) -> Path:
    return store_path(cp.path, cp.staging)


def _truth_path(cp: Checkpoint) -> Path:
    return cp.path.with_name(f"{cp.path.stem}.{cp.staging}.truth.npz")


def _progress(cfg: MigrationConfig, total: int) -> Any:
    if not cfg.progress:
        return None
    from tqdm import tqdm  # plain text: renders the same in a kernel, a log and HTML

    return tqdm(total=total, unit="rec", desc="migrate", mininterval=1.0, smoothing=0.1)


def _start_truth(
    cfg: MigrationConfig,
    source: ChromaSource,
    info: CollectionInfo,
    source_ids: list[str],
    pool: ThreadPoolExecutor,
) -> tuple[TopK, Future | None]:
    """Sampled queries, an empty exact top-k for them, and Chroma's (HNSW) answers coming:
    Chroma searches its index in the background while the records are written."""
    queries = search_sample(source, info, source_ids, cfg.sample_queries)
    truth = TopK(queries, info.distance, 10)
    chroma = pool.submit(source.query, info.name, queries, 10) if len(queries) else None
    return truth, chroma


def _catch_up_truth(
    cfg: MigrationConfig, source: ChromaSource, info: CollectionInfo, truth: TopK, stop: int
) -> None:
    """Feed the truth the records written by an earlier, interrupted run (source [0, stop))."""
    if len(truth.queries) == 0 or stop <= 0:
        return
    for page in source.batches(info.name, cfg.read_page):
        keep = min(len(page), stop - page.offset)
        if keep <= 0:
            return
        if page.vectors is not None and page.vectors.size:
            truth.add(page.ids[:keep], page.vectors[:keep])


def _migrate_collection(
    cfg: MigrationConfig,
    source: ChromaSource,
    target: Target,
    info: CollectionInfo,
    bar: Any,
    tag: str,
    pool: ThreadPoolExecutor,
) -> CollectionResult:
    source_ids = source.all_ids(info.name)
    cp = _staging_checkpoint(cfg, source, target, info, tag, source_ids)
    resumed_from = cp.next_offset
    adopting = legacy.needs_adoption(cp, _hashes_path(cp).exists())
    if bar is not None:
        bar.update(resumed_from)
    t_truth = time.perf_counter()  # sampling and Chroma's answers: search checks, not writing
    stats: list[BatchStat] = []
    saved = None
    if cp.done and not adopting:
        saved = load_truth(_truth_path(cp), info.distance, cfg.sample_queries)
    asking: Future | None = None
    chroma: list[list[tuple[str, float]]] | None = None
    renormalised = 0
    if saved is not None:
        truth, chroma = saved
    else:
        truth, asking = _start_truth(cfg, source, info, source_ids, pool)
        if not adopting:
            _catch_up_truth(cfg, source, info, truth, cp.next_offset)
    truth_s = time.perf_counter() - t_truth
    t0 = time.perf_counter()
    if adopting:  # digests of what an older opsbook wrote, from the source (and the truth)
        hashes = HashStore(_hashes_path(cp))
        try:
            renormalised = legacy.adopt(source, target, info, cp, hashes, truth, cfg.read_page)
        finally:
            hashes.close()
    if not cp.done:
        hashes = HashStore(_hashes_path(cp))
        try:
            stats = write_collection(
                source,
                target,
                info,
                cp,
                cfg.batch_size,
                hashes,
                truth,
                on_batch=(lambda s: bar.update(s.records)) if bar else None,
                read_page=cfg.read_page,
                workers=cfg.upload_workers if target.kind == "server" else 1,
            )
        except ValidationFailed:
            hashes.close()
            target.delete_collection(cp.staging)  # never leave a half-written staging copy
            _hashes_path(cp).unlink(missing_ok=True)
            cp.path.unlink(missing_ok=True)
            raise
        finally:
            hashes.close()
    elif bar is not None:
        bar.update(info.count - resumed_from)
    write_s = time.perf_counter() - t0
    if asking is not None:  # the wait for Chroma's answers (if any) counts as verification
        t_wait = time.perf_counter()
        chroma = asking.result()
        truth_s += time.perf_counter() - t_wait
    if saved is None:
        save_truth(_truth_path(cp), truth, chroma)
    return CollectionResult(
        info,
        cp.target_collection,
        cp.staging,
        resumed_from,
        stats,
        write_s,
        None,
        cp,
        truth,
        chroma,
        truth_s,
        adopted=resumed_from if adopting else 0,
        renormalised=renormalised,
    )


def _verify(cfg: MigrationConfig, target: Target, r: CollectionResult) -> VerifyReport:
    """Verify one written collection against its stored digests and exact truth."""
    assert r.checkpoint is not None and r.truth is not None
    hashes = HashStore(_hashes_path(r.checkpoint))
    try:
        return verify_collection(
            target,
            r.info,
            r.staging,
            hashes,
            r.truth,
            r.chroma,
            source_count=r.checkpoint.total,
            recall_threshold=cfg.recall_threshold,
            max_listed=cfg.max_listed,
        )
    finally:
        hashes.close()


def _check_target(cfg: MigrationConfig, target: Target, infos: list[CollectionInfo]) -> None:
    for info in infos:
        if info.dim is None:
            continue
        if cfg.cutover:
            aliases.check_alias_name(target, cfg.alias(info.name), info.dim, info.distance)


def _backup(cfg: MigrationConfig, source: ChromaSource, names: list[str]) -> str | None:
    if not cfg.backup:
        return None
    root = Path(cfg.backup_dir)
    if cfg.chroma_path:
        return str(backup_directory(check_chroma_dir(cfg.chroma_path), root))
    return str(export_collections(source, names, root))


def migrate(config: MigrationConfig | None = None, **kwargs: Any) -> MigrationResult | Plan:
    """Back up, write into staging collections, verify every record, then switch aliases.

    With ``dry_run=True`` (the default) this is :func:`plan`. The cutover happens only
    when every collection verified; otherwise no alias moves and ``integrity_ok`` is False.
    """
    cfg = MigrationConfig.from_kwargs(config, **kwargs)
    if cfg.dry_run:
        return plan(cfg)
    return _migrate_live(cfg)


@recorded("migrate.migrate")
def _migrate_live(cfg: MigrationConfig) -> MigrationResult:
    if cfg.chroma_path:
        check_chroma_dir(cfg.chroma_path)
    t_start = time.perf_counter()
    with _opened(cfg) as (source, target):
        assert target is not None
        names = source.check_names(cfg.collections)
        infos = [source.info(n) for n in names]
        skipped = [i.name for i in infos if i.dim is None]  # empty: no size to create with
        infos = [i for i in infos if i.dim is not None]
        _check_target(cfg, target, infos)
        t0 = time.perf_counter()
        backup_path = _backup(cfg, source, names)
        backup_s = time.perf_counter() - t0
        bar = _progress(cfg, sum(i.count for i in infos))
        try:
            tag = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:4]
            with ThreadPoolExecutor(1, thread_name_prefix="chroma-query") as pool:
                results = [
                    _migrate_collection(cfg, source, target, i, bar, tag, pool) for i in infos
                ]
        finally:
            if bar is not None:
                bar.close()
        write_s = sum(r.write_s for r in results)
        t0 = time.perf_counter()
        if cfg.verify:
            target.reopen()  # verify what was persisted, not what a cache holds
            for r in results:
                r.report = _verify(cfg, target, r)
        verify_s = time.perf_counter() - t0 + sum(r.truth_s for r in results)
        result = MigrationResult(cfg, results, 0.0, write_s, verify_s, backup_path, backup_s)
        result.skipped = skipped
        if cfg.verify:  # the next dry run in this work dir estimates from these
            rates.record(
                cfg.work_dir,
                cfg.target,
                result.records_written,
                write_s,
                result.total_records,
                verify_s,
            )
        if cfg.cutover and cfg.verify and result.cutover_allowed:
            result.cutover_entry = aliases.cutover(
                target,
                Path(cfg.work_dir),
                {r.alias: r.staging for r in results},
                label=cfg.run_label,
            )
            result.cutover_done = True
    result.duration_s = time.perf_counter() - t_start
    return result


def rollback(config: MigrationConfig | None = None, **kwargs: Any) -> list[dict]:
    """Switch the aliases of the last cutover back (nothing to do → [])."""
    return _rollback(MigrationConfig.from_kwargs(config, **kwargs))


@recorded("migrate.rollback")
def _rollback(cfg: MigrationConfig) -> list[dict]:
    key = None
    from opsbook.settings import secret

    if cfg.target == "server":
        key = secret(cfg.qdrant_api_key_env)
    with open_target(cfg.target, cfg.qdrant_path or None, cfg.qdrant_url or None, key) as target:
        return aliases.rollback(target, Path(cfg.work_dir), label=cfg.run_label)


def cleanup(config: MigrationConfig | None = None, **kwargs: Any) -> list[str]:
    """Delete collections replaced by a cutover and no longer behind any alias."""
    return _cleanup(MigrationConfig.from_kwargs(config, **kwargs))


@recorded("migrate.cleanup")
def _cleanup(cfg: MigrationConfig) -> list[str]:
    from opsbook.settings import secret

    key = secret(cfg.qdrant_api_key_env) if cfg.target == "server" else None
    with open_target(cfg.target, cfg.qdrant_path or None, cfg.qdrant_url or None, key) as target:
        return aliases.cleanup(target, Path(cfg.work_dir))
