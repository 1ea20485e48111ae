"""The read planner (salesforce/planner.py) plans without I/O, and a fetch fills the inventory
with answers to reads only: the parts collected on the way (the organization row, the My
Domain) live in the planner's typed scratch, never under a string key (ADR 0030)."""

from __future__ import annotations

import typing

import orgstate as st
import pytest

from remediate import engine
from remediate.salesforce import planner
from remediate.steps.base import (
    MetadataRead,
    OrgInfo,
    OrgRead,
    PackageRead,
    ProfileRead,
    Read,
    UserRead,
)


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    st.fast_setup(monkeypatch)


def test_a_plan_batches_queries_by_five_and_metadata_by_ten_per_type() -> None:
    reads: list[Read] = [UserRead(f"u{i}@x.invalid") for i in range(3)]
    reads += [ProfileRead(f"P{i}") for i in range(2)]
    reads += [MetadataRead("ConnectedApp", f"App{i}") for i in range(12)]
    reads += [MetadataRead("Profile", "Admin"), PackageRead("ns"), OrgRead()]
    plan = planner.plan(reads)
    assert len(plan.queries) == 3  # users, profiles (by Name, with the metadata one), org
    assert [len(b) for b in plan.composites] == [3]
    assert [(t, len(n)) for t, n in plan.metadata] == [("ConnectedApp", 10), ("ConnectedApp", 2)]
    assert plan.profiles == ["Admin"] and plan.org and plan.packages == [PackageRead("ns")]
    assert plan.inventory.results == {}  # nothing is answered before the plan runs


def test_a_fetch_answers_reads_only_and_the_org_from_the_typed_scratch() -> None:
    spec, sandbox = st.demo_sandbox()
    handle = st.open_demo(spec, sandbox)
    inv = engine.assess(handle).inventory
    kinds = typing.get_args(Read)
    assert inv.results and all(isinstance(key, kinds) for key in inv.results)
    org = inv.org
    assert isinstance(org, OrgInfo) and org.org_id and org.my_domain_url.startswith("https://")
