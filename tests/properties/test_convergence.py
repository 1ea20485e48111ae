"""Convergence properties over random org states drawn from the scenario model.

Each example starts from the ``healthy`` scenario and breaks it with a random set of the
mutations the failure catalogue describes (the flow switched off, no Run As user, an app not
granted, a wrong profile, missing permission sets or licences, an inactive user, a narrowed IP
range, stored URLs on the old instance...). Then, for every example:

* one apply reaches the baseline: the next plan is empty;
* a second apply makes no write call (the sandbox's write counter does not move);
* apply changes nothing the plan did not list (the org's tables and metadata, diffed).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import orgstate as st
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from remediate import engine
from remediate.journal import Journal
from remediate.sandbox.scenario import Scenario

COPILOT_USER = "copilot.integration@acme.example.com"
WORKATO_USER = "workato.integration@acme.example.com"
OLD_INSTANCE = "https://usa238.salesforce.com"

Mutation = Callable[[Scenario], None]


def _app(spec: Scenario, name: str) -> object:
    return next(a for a in spec.connected_apps if a.name == name)


def _user(spec: Scenario, username: str) -> object:
    return next(u for u in spec.users if u.username == username)


def _set(getter: Callable[[Scenario], object], **values: object) -> Mutation:
    def mutate(spec: Scenario) -> None:
        target = getter(spec)
        for key, value in values.items():
            setattr(target, key, value)
    return mutate


MUTATIONS: dict[str, Mutation] = {
    "C1 flow off": _set(lambda s: _app(s, "Copilot_for_Sales"), client_credentials=False),
    "C2 no Run As": _set(lambda s: _app(s, "Copilot_for_Sales"), run_as=None),
    "C3 app not granted": _set(lambda s: _app(s, "Copilot_for_Sales"), permission_sets=[]),
    "C4 wrong profile": _set(lambda s: _user(s, WORKATO_USER),  # same licence: writable (U2)
                             profile="Minimum Access - API Only Integrations"),
    "C5 no permission set": _set(lambda s: _user(s, COPILOT_USER), permission_sets=[]),
    "C6 no licence": _set(lambda s: _user(s, COPILOT_USER), licenses=[], permission_sets=[]),
    "C7 API not enabled": _set(lambda s: _user(s, WORKATO_USER), permission_sets=[]),
    "C8 copilot inactive": _set(lambda s: _user(s, COPILOT_USER), active=False),
    "C8 workato inactive": _set(lambda s: _user(s, WORKATO_USER), active=False),
    "C10 named credential": _set(lambda s: s.named_credentials[0], endpoint=OLD_INSTANCE),
    "C10 remote site": _set(lambda s: s.remote_sites[0], url=OLD_INSTANCE),
}


@hs.composite
def breakages(draw: hs.DrawFn) -> tuple[list[str], tuple[int, int] | None]:
    """Which mutations to apply, and Workato's narrowed login IP range (C11), if any."""
    names = draw(hs.lists(hs.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=6,
                          unique=True))
    narrowed = draw(hs.none() | hs.tuples(hs.integers(0, 255), hs.integers(0, 255)))
    return names, narrowed


def broken_org(names: list[str], narrowed: tuple[int, int] | None) -> Scenario:
    spec = st.scenario("healthy").model_copy(deep=True)
    for name in names:
        MUTATIONS[name](spec)
    if narrowed is not None:
        low, high = sorted(narrowed)
        profile = next(p for p in spec.profiles if p.name == "Workato Integration")
        profile.login_ip_ranges = [(f"192.0.2.{low}", f"192.0.2.{high}")]
    return spec


@pytest.fixture(scope="module", autouse=True)
def _fast() -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    st.fast_setup(mp)
    yield
    mp.undo()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(breakages())
def test_one_apply_reaches_the_baseline_changes_only_planned_fields_and_a_second_writes_nothing(
        breakage: tuple[list[str], tuple[int, int] | None]) -> None:
    names, narrowed = breakage
    check_one_apply_converges(names, narrowed)


#: Found by the property above: the Workato user on a wrong profile that grants API Enabled *and*
#: without the API permission set. user.api_enabled once judged the current profile, so the
#: first plan only moved the profile. Pinned so it stays fixed.
def test_a_wrong_profile_with_api_enabled_and_no_api_permission_set_converge_in_one_apply(
        ) -> None:
    check_one_apply_converges(["C4 wrong profile", "C7 API not enabled"], None)


def check_one_apply_converges(names: list[str], narrowed: tuple[int, int] | None) -> None:
    spec, sandbox = st.demo_sandbox(broken_org(names, narrowed))
    before = st.snapshot(sandbox.org)
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "journal.jsonl")
        first = st.run_apply(st.open_demo(spec, sandbox), journal)
        assert first.error is None, (names, first.error)
        assert first.planned, f"{names}: the mutations should make drift"

        after = st.snapshot(sandbox.org)
        extra, missing = st.unexplained(st.diff_keys(before, after),
                                        st.change_keys(first.planned))
        assert extra == [], f"{names}: changed outside the plan: {extra}"
        assert missing == [], f"{names}: planned but not made: {missing}"

        handle = st.open_demo(spec, sandbox)
        assert engine.assess(handle).plan.empty, names
        writes = sandbox.writes
        second = st.run_apply(handle, journal)
        assert second.error is None and second.planned == []
        assert sandbox.writes == writes, f"{names}: a second apply wrote"
