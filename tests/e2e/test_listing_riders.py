"""listMetadata(Profile) rides in the apps' listing call (apps.Rider, ADR 0048): one request
fewer per fetch that lists both, and, when the shared call fails, each listing is sent again
on its own and fails alone (U5), as when they were never shared."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from remediate import engine
from remediate.builtin import open_on_sandbox
from remediate.errors import SalesforceError
from remediate.orgs import OrgHandle
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox
from remediate.sandbox.wire import Request, Response, soap_fault
from remediate.steps.base import MetadataRead, ReadFailed

pytestmark = pytest.mark.e2e

IP_PROFILE = MetadataRead("Profile", "Workato Integration")


def _on(name: str = "demo") -> tuple[OrgHandle, Sandbox, list[bytes]]:
    """A handle on ``name`` whose sandbox keeps the body of every listMetadata request."""
    spec = scenarios.load(name)
    sandbox = Sandbox([scenarios.build_org(spec)])
    listings: list[bytes] = []
    inner = sandbox.handle

    def handle(request: Request) -> Response:
        if b"listMetadata" in request.body:
            listings.append(request.body)
        return inner(request)

    sandbox.handle = handle  # type: ignore[method-assign]
    return open_on_sandbox(f"sandbox:{name}", spec, sandbox), sandbox, listings


def _answering(sandbox: Sandbox, answer: Callable[[Request, Response], Response]) -> None:
    inner = sandbox.handle

    def handle(request: Request) -> Response:
        return answer(request, inner(request))

    sandbox.handle = handle  # type: ignore[method-assign]


def _queried(body: bytes) -> list[str]:
    import re

    return [t.decode() for t in re.findall(rb"<(?:\w+:)?type>(\w+)</(?:\w+:)?type>", body)]


def _statuses(assessment: engine.Assessment) -> dict[tuple[str, str], str]:
    return {(f.playbook, f.step): f.status for f in assessment.findings}


def test_the_profile_listing_goes_in_the_apps_listing_call() -> None:
    handle, _, listings = _on()
    current = engine.assess(handle)
    assert [_queried(b) for b in listings] == [["ConnectedApp", "Profile"]]
    # and both were read from it: the apps found, the profile read under its API name
    assert _statuses(current)[("workato", "ip-ranges")] != "unknown"
    assert _statuses(current)[("copilot-for-sales", "app-installed")] == "ok"
    assert not isinstance(current.inventory.results[IP_PROFILE], ReadFailed)


def test_a_shared_listing_that_fails_once_is_sent_again_apart_and_loses_nothing() -> None:
    baseline = _statuses(engine.assess(_on()[0]))
    handle, sandbox, listings = _on()
    sandbox.inject("bad_soap_body", operation="listMetadata", calls=1)
    assert _statuses(engine.assess(handle)) == baseline
    assert sorted(map(_queried, listings)) == [["ConnectedApp"], ["ConnectedApp", "Profile"],
                                               ["Profile"]]


def test_when_only_the_profile_query_fails_the_profile_reads_fail_alone() -> None:
    handle, sandbox, listings = _on()

    def no_profiles(request: Request, response: Response) -> Response:
        if b"listMetadata" in request.body and b"Profile</" in request.body:
            return soap_fault("sf:UNKNOWN_EXCEPTION", "listing profiles failed")
        return response

    _answering(sandbox, no_profiles)
    current = engine.assess(handle)
    assert isinstance(current.inventory.results[IP_PROFILE], ReadFailed)
    assert _statuses(current)[("workato", "ip-ranges")] == "unknown"
    assert _statuses(current)[("copilot-for-sales", "app-installed")] == "ok"  # apps: read
    assert len(listings) == 3  # shared, then each alone


def test_an_item_of_a_type_not_asked_for_fails_the_profile_reads_not_the_apps() -> None:
    handle, sandbox, _ = _on()

    def retyped(request: Request, response: Response) -> Response:
        if b"listMetadata" in request.body:
            return Response(response.status,
                            response.body.replace(b"<type>Profile</type>", b"<type>Bogus</type>"),
                            response.headers)
        return response

    _answering(sandbox, retyped)
    current = engine.assess(handle)
    failed = current.inventory.results[IP_PROFILE]
    assert isinstance(failed, ReadFailed)
    assert "not file properties" in str(failed.message)
    assert _statuses(current)[("copilot-for-sales", "app-installed")] == "ok"


def test_a_garbled_apps_listing_fails_the_read_instead_of_reporting_the_apps_missing() -> None:
    """An answer of another shape is not "no connected apps": the fetch fails, naming the
    call, and no step says an app is not in the org."""
    handle, sandbox, listings = _on()
    sandbox.inject("bad_soap_body", operation="listMetadata")
    with pytest.raises(SalesforceError, match="listing ConnectedApp metadata: unexpected "
                                              "answer: elements that are not file properties"):
        engine.assess(handle)
    assert len(listings) == 3  # shared, then each alone
