"""Charts are figures whose content follows the classification."""

from __future__ import annotations

from pathlib import Path

from matplotlib.colors import to_hex

from opsbook.archive import DEMO_NOW, charts, classify, inventory


def test_size_chart_colours_labels_by_decision(demo: Path) -> None:
    classification = classify(inventory(demo, now=DEMO_NOW))
    ax = charts.size_chart(classification).axes[0]
    colours = {t.get_text(): to_hex(t.get_color()) for t in ax.get_yticklabels()}
    assert len(colours) == 14
    assert colours["legacy-auth"] == charts.COLOURS["blocked"]
    assert colours["orchestrator"] == charts.COLOURS["archive"]
    assert colours["web"] == charts.COLOURS["keep"]
    widths = [p.get_width() for p in ax.patches]
    assert len(widths) == 28  # source and dependency bar per app


def test_dependency_chart_draws_every_node_and_edge(demo: Path) -> None:
    classification = classify(inventory(demo, now=DEMO_NOW))
    ax = charts.dependency_chart(classification).axes[0]
    labels = {t.get_text() for t in ax.texts if type(t).__name__ == "Text"}
    assert labels == {n.name for n in classification.inventory.nodes()}
    edges = sum(len(n.depends_on) for n in classification.inventory.nodes())
    assert len([c for c in ax.get_children() if type(c).__name__ == "Annotation"]) == edges


def test_layers_put_dependants_right_of_dependencies_and_survive_cycles() -> None:
    layer = charts._layers(["a", "b", "c"], [("a", "b"), ("b", "c")])
    assert layer == {"c": 0, "b": 1, "a": 2}
    cyclic = charts._layers(["a", "b"], [("a", "b"), ("b", "a")])
    assert set(cyclic) == {"a", "b"}


def test_timeline_and_before_after(demo: Path) -> None:
    classification = classify(inventory(demo, now=DEMO_NOW))
    ax = charts.timeline_chart(classification).axes[0]
    assert len(ax.collections) == 14  # one scatter of commits per app
    fig = charts.before_after_chart(14, 8, 20_000_000, 9_000_000)
    counts = [p.get_height() for p in fig.axes[0].patches]
    assert counts == [14, 8]


def test_evidence_chart_is_apps_by_families_with_the_decision(demo: Path) -> None:
    classification = classify(inventory(demo, now=DEMO_NOW))
    ax = charts.evidence_chart(classification).axes[0]
    apps = [t.get_text() for t in ax.get_yticklabels()]
    assert apps == list(classification.verdicts)
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "activity",
        "production",
        "dependants",
        "lifecycle",
        "ci",
        "ownership",
        "publication",
        "decision",
    ]
    assert len(ax.patches) == 14 * 8  # 7 family cells + the decision per app
    row = 14 - 1 - apps.index("orchestrator")
    cells = {round(p.get_x(), 1): to_hex(p.get_facecolor()) for p in ax.patches if p.get_y() == row}
    assert cells[3.0] == charts.STANCE_COLOURS["for"]  # lifecycle: declared experimental
    assert cells[1.0] == charts.STANCE_COLOURS["against"]  # production: fly.toml, deploy
    assert cells[7.0] == charts.COLOURS["archive"]
    decisions = [
        t.get_text() for t in ax.texts if "\n" in t.get_text() and t.get_color() == "white"
    ]
    assert decisions.count("archive\nmedium") + decisions.count("archive\nlow") == 6
