"""The contract every step kind keeps (design property 6): its example validates, and applying
it on the sandbox scenario of its cause converges: the second plan is empty and a second apply
writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import registry

from remediate import engine
from remediate.journal import Journal
from remediate.orgs import open_org
from remediate.playbook import BoundStep
from remediate.sandbox import scenario as scenarios
from remediate.settings import Settings
from remediate.steps.base import kinds

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", sorted(kinds()))
def test_applying_a_kinds_example_twice_leaves_an_empty_plan_and_no_writes(
        name: str, tmp_path: Path) -> None:
    kind = kinds()[name]
    scenario = next(s for s in registry.cause_scenarios()
                    if scenarios.load(s).causes == [kind.causes[0]])
    handle = open_org(f"sandbox:{scenario}", Settings())
    handle.steps = [BoundStep("contract", "example", kind, kind.causes[0],
                              kind.params.model_validate(kind.example), "")]
    journal = Journal(tmp_path / "journal.jsonl")
    first = engine.assess(handle)
    assert first.plan.changes, f"{name}'s example should find drift on {scenario}"
    engine.apply(handle, first, engine.approval("flag"), journal)
    second = engine.assess(handle)
    assert second.plan.automatic == [], [c.label() for c in second.plan.automatic]
    before = handle.sandbox.writes
    result = engine.apply(handle, second, engine.approval("flag"), journal)
    assert result.applied == []
    assert handle.sandbox.writes == before
