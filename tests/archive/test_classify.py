"""Classification, blocking and the cost model."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook.archive import DEMO_NOW, UnknownCandidate, classify, inventory
from opsbook.archive.classify import monthly_cost
from opsbook.archive.inventory import App
from opsbook.errors import ConfigError

from .helpers import MakeRepo

EXPERIMENTS = {"orchestrator", "unified-backend", "flan-router", "ibu-nuzantara"}


def test_demo_classification(demo: Path) -> None:
    classification = classify(inventory(demo, now=DEMO_NOW))
    status = {name: v.status for name, v in classification.verdicts.items()}
    assert {n for n, s in status.items() if s == "experimental"} == EXPERIMENTS
    assert {n for n, s in status.items() if s == "stale"} == {
        "legacy-auth",
        "marketing-v1",
        "status-page",
    }
    assert sum(s == "active" for s in status.values()) == 7
    assert set(classification.candidates) == EXPERIMENTS | {"marketing-v1", "status-page"}
    summary = classification.summary()
    assert (summary["apps_before"], summary["apps_after"], summary["active_after"]) == (14, 8, 7)


def test_stale_app_with_an_active_dependant_is_blocked_naming_it(demo: Path) -> None:
    classification = classify(inventory(demo, now=DEMO_NOW))
    assert classification.blocked == {"legacy-auth": ["web"]}
    verdict = classification.verdicts["legacy-auth"]
    assert verdict.decision == "blocked"
    assert any("web depends on it" in r for r in verdict.reasons)
    # status-page also depends on legacy-auth but is archived itself: it does not block
    assert "status-page" not in verdict.blocked_by


def test_reclaimable_bytes_and_saving_sum_the_candidates(demo: Path) -> None:
    inv = inventory(demo, now=DEMO_NOW)
    classification = classify(inv)
    assert classification.bytes_reclaimable == sum(
        inv.app(n).total_bytes for n in classification.candidates
    )
    assert classification.monthly_saving_usd == sum(
        monthly_cost(inv.app(n)) for n in classification.candidates
    )


def test_longer_window_makes_recent_experiments_the_only_candidates(demo: Path) -> None:
    classification = classify(inventory(demo, now=DEMO_NOW, staleness_days=3650))
    assert set(classification.candidates) == EXPERIMENTS


def test_no_markers_and_long_window_leaves_nothing(demo: Path) -> None:
    classification = classify(inventory(demo, now=DEMO_NOW, staleness_days=3650, markers=[]))
    assert classification.candidates == [] and classification.blocked == {}


def test_explicit_candidates_replace_the_automatic_choice(demo: Path) -> None:
    classification = classify(
        inventory(demo, now=DEMO_NOW), candidates=["apps/flan-router", "legacy-auth"]
    )
    assert classification.candidates == ["flan-router"]
    assert classification.blocked == {
        "legacy-auth": ["status-page", "web"]
    }  # status-page is kept now
    assert classification.verdicts["orchestrator"].decision == "keep"


def test_unknown_candidate_names_the_known_apps(demo: Path) -> None:
    with pytest.raises(UnknownCandidate, match="no app named 'flan_router'") as err:
        classify(inventory(demo, now=DEMO_NOW), candidates=["flan_router"])
    assert "flan-router" in (err.value.hint or "")


def test_candidates_as_a_string_is_refused(demo: Path) -> None:
    with pytest.raises(ConfigError, match="list of app names"):
        classify(inventory(demo, now=DEMO_NOW), candidates="flan-router")  # type: ignore[arg-type]


def test_blocking_cascades_through_blocked_candidates(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "apps/live/package.json": '{"name": "live", "dependencies": {"mid": "*"}}',
            "apps/mid/package.json": '{"name": "mid", "dependencies": {"base": "*"}}',
            "apps/base/package.json": '{"name": "base"}',
        },
        ages={"apps/mid/package.json": 400, "apps/base/package.json": 400},
    )
    classification = classify(inventory(repo, now=DEMO_NOW))
    assert classification.blocked == {"mid": ["live"], "base": ["mid"]}
    assert classification.candidates == []


@pytest.mark.parametrize(
    ("platforms", "costs", "expected"),
    [
        ([], None, 0.0),
        (["docker", "fly"], None, 15.0),
        (["docker"], None, 10.0),
        (["fly", "vercel"], {"fly": 5.0, "vercel": 7.0}, 12.0),
        (["gcp"], {"default": 3.0}, 3.0),
        (["fly"], 42, 42.0),
    ],
)
def test_cost_model(platforms: list[str], costs: object, expected: float) -> None:
    app = App(name="x", path="apps/x", platforms=platforms)
    assert monthly_cost(app, costs) == expected  # type: ignore[arg-type]
