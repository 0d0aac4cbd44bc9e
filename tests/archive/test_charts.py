"""Charts are figures whose content follows the classification."""

from __future__ import annotations

from pathlib import Path

from matplotlib.colors import to_hex

from opsbook.archive import DEMO_NOW, charts, classify, inventory


def test_size_chart_colours_labels_by_decision(demo: Path) -> None:
    cls = classify(inventory(demo, now=DEMO_NOW))
    ax = charts.size_chart(cls).axes[0]
    colours = {t.get_text(): to_hex(t.get_color()) for t in ax.get_yticklabels()}
    assert len(colours) == 14
    assert colours["legacy-auth"] == charts.COLOURS["blocked"]
    assert colours["orchestrator"] == charts.COLOURS["archive"]
    assert colours["web"] == charts.COLOURS["keep"]
    widths = [p.get_width() for p in ax.patches]
    assert len(widths) == 28  # source and dependency bar per app


def test_dependency_chart_draws_every_node_and_edge(demo: Path) -> None:
    cls = classify(inventory(demo, now=DEMO_NOW))
    ax = charts.dependency_chart(cls).axes[0]
    labels = {t.get_text() for t in ax.texts if type(t).__name__ == "Text"}
    assert labels == {n.name for n in cls.inventory.nodes()}
    edges = sum(len(n.depends_on) for n in cls.inventory.nodes())
    assert len([c for c in ax.get_children() if type(c).__name__ == "Annotation"]) == edges


def test_layers_put_dependants_right_of_dependencies_and_survive_cycles() -> None:
    layer = charts._layers(["a", "b", "c"], [("a", "b"), ("b", "c")])
    assert layer == {"c": 0, "b": 1, "a": 2}
    cyclic = charts._layers(["a", "b"], [("a", "b"), ("b", "a")])
    assert set(cyclic) == {"a", "b"}


def test_timeline_and_before_after(demo: Path) -> None:
    cls = classify(inventory(demo, now=DEMO_NOW))
    ax = charts.timeline_chart(cls).axes[0]
    assert len(ax.collections) == 14  # one scatter of commits per app
    fig = charts.before_after_chart(14, 8, 20_000_000, 9_000_000)
    counts = [p.get_height() for p in fig.axes[0].patches]
    assert counts == [14, 8]
