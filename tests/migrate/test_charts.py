"""Charts draw what the result holds; dry runs draw labelled empty frames."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from opsbook.migrate import migrate, plan
from opsbook.migrate.charts import (
    counts_chart,
    pass_fail_table,
    recall_chart,
    records_chart,
    throughput_chart,
)


@pytest.fixture(scope="module")
def result(demo_store: Path, tmp_path_factory: pytest.TempPathFactory):
    return migrate(
        chroma_path=str(demo_store),
        work_dir=str(tmp_path_factory.mktemp("w")),
        dry_run=False,
        target="edge",
        backup=False,
    )


def test_counts_chart_has_two_bars_per_collection(result) -> None:
    fig = counts_chart(result)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 2 * len(result.collections)
    assert sorted(heights[:3]) == sorted(heights[3:])  # source == target
    assert sum(heights) == 2 * result.total_records


def test_throughput_chart_has_a_line_per_collection(result) -> None:
    ax = throughput_chart(result).axes[0]
    assert len(ax.lines) == 3
    assert sum(len(line.get_xdata()) for line in ax.lines) == sum(
        len(c.batches) for c in result.collections
    )


def test_records_and_recall_charts(result) -> None:
    bars = records_chart(result).axes[0]
    assert sum(p.get_height() for p in bars.patches) == result.total_records  # all identical
    recall = recall_chart(result).axes[0]
    # Chroma's HNSW boxes only: embedded targets have no ANN index ("no ANN index" notes)
    assert len(recall.texts) == len(result.collections)
    assert isinstance(recall_chart(result), Figure)


def test_pass_fail_table(result) -> None:
    table = pass_fail_table(result)
    assert list(table["overall"]) == ["PASS"] * 3
    assert set(table.columns) >= {"count", "ids", "vectors", "payloads", "search"}


def test_dry_run_charts_are_empty_frames(demo_store: Path, tmp_path: Path) -> None:
    p = plan(chroma_path=str(demo_store), work_dir=str(tmp_path))
    assert sum(b.get_height() for b in counts_chart(p).axes[0].patches) == p.total_records
    for chart in (throughput_chart, records_chart, recall_chart):
        fig = chart(p)
        assert not fig.axes[0].axison and fig.axes[0].texts
    assert pass_fail_table(p).empty
