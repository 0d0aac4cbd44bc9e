"""The dry run's estimate: from the last live run's measured rates, else the benchmark's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsbook.migrate import plan, rates


def test_without_a_measurement_the_reference_figures_and_their_basis() -> None:
    r = rates.load("/nonexistent-work-dir", "edge")
    assert (r.write, r.verify) == rates.REFERENCE["edge"]
    assert r.basis == rates.REFERENCE_BASIS["edge"]
    assert "assumed" in rates.load("/nonexistent-work-dir", "server").basis


def test_a_live_run_measurement_is_used_next_time(tmp_path: Path) -> None:
    assert rates.record(tmp_path, "edge", 5000, 2.0, 5000, 0.5)
    assert rates.record(tmp_path, "local", 3000, 3.0, 3000, 1.5)
    r = rates.load(tmp_path, "edge")
    assert (r.write, r.verify) == (2500.0, 10000.0)
    assert r.basis.startswith("measured by the live run of ") and "(5,000 records)" in r.basis
    assert rates.load(tmp_path, "local").write == 1000.0  # kinds kept apart
    assert rates.estimate(5000, 1.0, r) == 1.0 + 2.0 + 0.5


@pytest.mark.parametrize(
    ("written", "write_s", "verify_s"), [(999, 1.0, 1.0), (5000, 0.0, 1.0), (5000, 1.0, 0.0)]
)
def test_too_small_or_untimed_runs_are_not_stored(
    tmp_path: Path, written: int, write_s: float, verify_s: float
) -> None:
    assert not rates.record(tmp_path, "edge", written, write_s, written, verify_s)
    assert not (tmp_path / rates.FILE).exists()


def test_an_unreadable_rates_file_falls_back_to_the_reference(tmp_path: Path) -> None:
    (tmp_path / rates.FILE).write_text(json.dumps({"edge": {"write_rps": "fast"}}))
    assert rates.load(tmp_path, "edge").basis == rates.REFERENCE_BASIS["edge"]


def test_the_plan_states_its_basis(demo_store: Path, tmp_path: Path) -> None:
    one = {"collections": ["release-notes"], "target": "edge"}  # 60 records: a quick read
    before = plan(chroma_path=str(demo_store), work_dir=str(tmp_path), **one)
    assert before.estimate_basis.endswith(rates.REFERENCE_BASIS["edge"])
    rates.record(tmp_path, "edge", 600, 1.0, 600, 1.0)  # below MIN_RECORDS: ignored
    rates.record(tmp_path, "edge", 60_000, 6.0, 60_000, 2.0)
    after = plan(chroma_path=str(demo_store), work_dir=str(tmp_path), **one)
    assert "write at 10,000 rec/s + verify at 30,000 rec/s: measured by" in after.estimate_basis
    read_s = sum(c.read_s for c in after.collections)
    n = after.total_records
    assert after.estimated_s == pytest.approx(read_s + n / 10_000 + n / 30_000, abs=0.06)
