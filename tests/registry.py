"""What the tests expect, derived from the registries (step kinds, scenarios, shipped playbooks)
instead of counted by hand: adding a step kind, a cause or a scenario changes these, not the
tests (docs/adr/0124-adding-a-step-kind.md)."""

from __future__ import annotations

import functools

from remediate import engine
from remediate.builtin import open_on_sandbox
from remediate.plan import Change
from remediate.playbook import BoundStep
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox
from remediate.steps.base import kinds


def scenario_causes(name: str) -> set[str]:
    return set(scenarios.load(name).causes)


def cause_scenarios() -> list[str]:
    """The shipped scenarios that seed exactly one cause."""
    return sorted(n for n in scenarios.available() if len(scenarios.load(n).causes) == 1)


def kind_causes() -> set[str]:
    """Every cause some step kind prevents."""
    return {c for kind in kinds().values() for c in kind.causes}


@functools.cache
def _assessed(name: str) -> engine.Assessment:
    spec = scenarios.load(name)
    handle = open_on_sandbox(name, spec, Sandbox([scenarios.build_org(spec)]))
    try:
        return engine.assess(handle)
    finally:
        handle.close()


def automatic_changes(scenario: str = "demo") -> list[Change]:
    """The changes remediate makes by itself on a fresh org of ``scenario``."""
    return list(_assessed(scenario).plan.automatic)


def automatic_kinds(scenario: str = "demo") -> list[str]:
    """The step kinds of those changes, each once, in plan order."""
    return list(dict.fromkeys(c.kind for c in automatic_changes(scenario)))


def bound_steps(scenario: str = "healthy") -> list[BoundStep]:
    """The steps of the shipped playbooks as bound to a built-in org of ``scenario``."""
    spec = scenarios.load(scenario)
    handle = open_on_sandbox(scenario, spec, Sandbox([scenarios.build_org(spec)]))
    handle.close()
    return handle.steps
