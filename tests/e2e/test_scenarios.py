"""The corpus: production-shaped apps with marked faults, and healthy apps that tempt false alarms.

Each app under `tests/scenarios/buggy/` is served with `inspector run`, set off, and watched with
`inspector doctor --watch --json`: every line marked ``# bug: KIND`` must be named by a finding of
that kind. Each app under `tests/scenarios/healthy/` must draw no warning at all. The servers run a
few at a time (each mostly waits on its own requests), once per session for the selected ones.
"""

from __future__ import annotations

import os

import pytest

from tests.scenarios import runner

pytestmark = pytest.mark.e2e

SCENARIOS = runner.scenario_files()
BUGGY = [item for item in SCENARIOS if not item.healthy]
HEALTHY = [item for item in SCENARIOS if item.healthy]
JOBS = int(os.environ.get("INSPECTOR_SCENARIO_JOBS", "4"))


@pytest.fixture(scope="session")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, runner.Outcome]:
    """Run every scenario this session selected, concurrently, once."""
    selected = {
        item.callspec.params["scenario"].name
        for item in request.session.items
        if hasattr(item, "callspec") and "scenario" in item.callspec.params
    }
    chosen = [item for item in SCENARIOS if item.name in selected]
    return runner.run_all(chosen, tmp_path_factory.mktemp("scenarios"), JOBS)


def _outcome(outcomes: dict[str, runner.Outcome], scenario: runner.ScenarioFile) -> runner.Outcome:
    outcome = outcomes[scenario.name]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.error is None, outcome.error
    return outcome


@pytest.mark.timeout(600)
@pytest.mark.parametrize("scenario", BUGGY, ids=[item.name for item in BUGGY])
def test_doctor_names_every_marked_fault(
    outcomes: dict[str, runner.Outcome], scenario: runner.ScenarioFile
) -> None:
    outcome = _outcome(outcomes, scenario)
    assert outcome.marks, f"{scenario.name} marks no line with '# bug: KIND'"
    assert not outcome.missed, outcome.explain()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("scenario", HEALTHY, ids=[item.name for item in HEALTHY])
def test_doctor_raises_no_warning_on_a_healthy_app(
    outcomes: dict[str, runner.Outcome], scenario: runner.ScenarioFile
) -> None:
    outcome = _outcome(outcomes, scenario)
    assert not outcome.marks, f"{scenario.name} is healthy but marks faults"
    assert not outcome.warnings, outcome.explain()


def test_the_corpus_covers_every_failure_family() -> None:
    """At least 30 buggy and 10 healthy apps, and every finding kind marked somewhere."""
    from inspector.diagnose.findings import KINDS
    from tests.scenarios.spec import marks

    marked = {kind for item in BUGGY for mark in marks(item.path) for kind in mark.kinds}
    assert len(BUGGY) >= 30 and len(HEALTHY) >= 10, (len(BUGGY), len(HEALTHY))
    assert not (marked - set(KINDS)), f"marks name kinds that do not exist: {marked - set(KINDS)}"
    assert not (set(KINDS) - marked), f"kinds no scenario marks: {set(KINDS) - marked}"
