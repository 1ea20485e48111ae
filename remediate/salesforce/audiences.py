"""The JWT bearer audiences verify tries, in the order Salesforce's own CLI tries them.

platform-truth.md P3: forcedotcom/sfdx-core ``src/util/sfdcUrl.ts`` ``getLoginAudienceCombos``
(used by ``AuthInfo.authJwt`` in ``src/org/authInfo.ts``) tries a JWT sign-in with several
(login URL, audience) pairs one after another and stops at the first that works. With the org's
My Domain as the login URL those pairs send the My Domain itself, ``https://login.salesforce.com``
and ``https://test.salesforce.com`` as ``aud`` (``isSandboxUrl`` marks sandbox hosts, whose
generic audience is test). remediate always signs in at the My Domain (client credentials
must, and it is the host C10 asks integrations to use), so only the audience varies: the My
Domain first, then the generic audience of the org's kind, then the other one. A sign-in is
called failed only when every audience was refused, and the result says which one worked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from remediate.hosts import host_of

if TYPE_CHECKING:
    from remediate.salesforce.session import TokenResult

PRODUCTION = "https://login.salesforce.com"
SANDBOX = "https://test.salesforce.com"

#: sfdx-core ``isSandboxUrl``: enhanced sandbox domains, CS instances (with or without My
#: Domain), test.salesforce.com.
_SANDBOX_HOST = re.compile(r"(\.sandbox\.my\.salesforce\.com|(^|\.)cs\d+(\.my)?\.salesforce\.com"
                           r"|^test\.salesforce\.com)$")


def is_sandbox_host(host: str) -> bool:
    return _SANDBOX_HOST.search(host.lower()) is not None


def candidates(my_domain_url: str) -> list[str]:
    """The ``aud`` values to try for an org at ``my_domain_url``, in order, without repeats."""
    own = my_domain_url.rstrip("/")
    generic = [SANDBOX, PRODUCTION] if is_sandbox_host(host_of(own)) else [PRODUCTION, SANDBOX]
    out: list[str] = []
    for aud in [own, *generic]:
        if aud not in out:
            out.append(aud)
    return out


def _refused(result: TokenResult) -> bool:
    """The token endpoint said no (an OAuth error in a JSON answer): another audience may do.
    A server error or a garbled answer is not a verdict on the audience."""
    return not result.ok and result.status in (400, 401) and result.error not in (
        None, "invalid_response")


def _about_audience(result: TokenResult) -> bool:
    return "audience" in (result.error_description or "").lower()


def first_accepted(my_domain_url: str, attempt: Callable[[str], TokenResult]) -> TokenResult:
    """``attempt(aud)`` for each candidate until the token endpoint gives a token. The result
    names the audience that worked and every audience sent; when none worked, it carries the
    most telling refusal: one that is not about the audience (the audience passed, something
    else failed) before an audience refusal."""
    tried: list[str] = []
    refusals: list[TokenResult] = []
    for aud in candidates(my_domain_url):
        result = attempt(aud)
        tried.append(aud)
        if result.api_status is not None:  # a token came back (its API call may still fail)
            return replace(result, audience=aud, audiences_tried=tuple(tried))
        refusals.append(result)
        if not _refused(result):
            break
    telling = next((r for r in refusals if not _about_audience(r)), refusals[0])
    return replace(telling, audiences_tried=tuple(tried))
