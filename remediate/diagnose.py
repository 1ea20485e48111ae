"""From what a user saw (an OAuth error, an integration's message, a Login History row) to the
cause in the failure catalogue. Pure: a table of patterns, matched case-insensitively.

Several messages point at more than one cause ("user is not admin approved" is C3, C4, C5 or
C6 depending on which link of the grant is missing); the engine narrows the candidates with what
the audit finds drifting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CAUSES: dict[str, str] = {
    "C1": "\"Enable Client Credentials Flow\" is off on the app",
    "C2": "The app has no Run As user, or the wrong one",
    "C3": "The app is limited to admin-approved users and the integration user was not granted "
          "it (JWT bearer and user flows; not client credentials, platform-truth.md A6)",
    "C4": "The integration user has the wrong profile",
    "C5": "The integration user lacks a required permission set",
    "C6": "The integration user lacks a permission set licence",
    "C7": "API Enabled is missing for the integration user",
    "C8": "The integration user is inactive",
    "C9": "The connected app or its managed package is not installed",
    "C10": "The integration signs in through login.salesforce.com, test.salesforce.com or an old "
           "instance URL instead of the org's My Domain",
    "C11": "IP restrictions block the integration",
    "C12": "Someone changed the working configuration",
    "C13": "The app is not installed in the org, and the org blocks uninstalled connected apps "
           "for users without Approve Uninstalled Connected Apps",
    "C14": "The app lacks the api OAuth scope, so client credentials have no usable scope",
    "C15": "The integration user cannot reach the objects, fields or record types the "
           "integration uses (object and field permissions, record type visibility of its "
           "permission set)",
    "C16": "A session or login policy blocks a sign-in without a person: High Assurance "
           "required on the app, or profile login hours that exclude the integration's hours",
}


@dataclass(frozen=True)
class Pattern:
    pattern: str
    causes: tuple[str, ...]
    explanation: str


PATTERNS: tuple[Pattern, ...] = (
    Pattern(r"request not supported on this domain|restricted domain", ("C10",),
            "client credentials only work against the org's My Domain host"),
    Pattern(r"client credentials flow (is )?(not enabled|disabled)", ("C1",),
            "the app's client credentials flow is switched off"),
    Pattern(r"no client credentials user enabled", ("C2",),
            "the app has no Run As (execution) user"),
    Pattern(r"not admin approved|invalid_app_access|OAUTH_APP_ACCESS_DENIED",
            ("C3", "C5", "C6", "C4"),
            "the app only admits admin-approved users, and this user holds no grant to it"),
    Pattern(r"user hasn'?t approved this (consumer|app)", ("C3",),
            "the app is not pre-authorized for the user (admin-approved access missing)"),
    Pattern(r"inactive user|user is inactive|inactive_user|user is frozen", ("C8",),
            "the integration user is deactivated (or frozen: Setup → Users → the user → "
            "Unfreeze)"),
    # Login History Status texts (reference 4.7) and what they point at
    Pattern(r"restricted domain", ("C10",),
            "the sign-in went to a host the flow does not accept: use the org's My Domain"),
    Pattern(r"failed: api-only user", ("C4",),
            "an API-only user signed in through the UI: check the profile the integration "
            "user has"),
    Pattern(r"failed: consumer deleted", ("C9",),
            "the connected app the integration uses was deleted from the org"),
    Pattern(r"package for this consumer is not installed", ("C9", "C13"),
            "the org does not have the app the integration uses (install it; the audit tells "
            "whether uninstalled apps are blocked)"),
    Pattern(r"failed: oauth api access disabled", ("C1", "C2", "C14", "C7"),
            "the app refused the OAuth flow: client credentials off, no Run As user, no api "
            "scope, or API access off for the user; the audit tells which"),
    # "ip restricted or invalid login hours" (reference 1.5) names both: the audit tells
    Pattern(r"ip restricted or invalid login hours", ("C11", "C16"),
            "the address is outside the profile's login IP ranges, or the time outside its "
            "login hours"),
    # Login History "Restricted time" (reference 4.7): outside the profile's login hours.
    Pattern(r"restricted time|invalid login hours", ("C16",),
            "the sign-in came outside the login hours of the user's profile"),
    Pattern(r"ip restricted|restricted ip|ip address not allowed", ("C11",),
            "the integration's address is outside the profile's login IP ranges"),
    # C16: High Assurance required (the sandbox's token wording; Login History "Two-factor
    # required" / "Multi-factor required", reference 4.7)
    Pattern(r"high assurance|two-factor required|multi-factor required|"
            r"identity verification required", ("C16",),
            "the app's session policy asks for a High Assurance (MFA) session, which a "
            "sign-in without a person cannot have"),
    # C15: calls that fail after sign-in (failure catalogue)
    Pattern(r"INSUFFICIENT_ACCESS|INVALID_TYPE|sObject type '.*' is not supported|INVALID_FIELD|"
            r"No such column|INVALID_CROSS_REFERENCE_KEY.*record ?type|record type .*not "
            r"(available|valid)", ("C15",),
            "the sign-in worked, but the user's permission sets do not grant the object, field "
            "or record type the call needs"),
    # C13 (platform-truth.md A8 and section 4); the Login History text is the sandbox's own.
    Pattern(r"app must be installed into org|connected app not installed", ("C13",),
            "the app is not installed in the org and the org blocks uninstalled apps for this "
            "user"),
    # C14 (platform-truth.md A7)
    Pattern(r"no valid scopes defined", ("C14",),
            "the app's OAuth scopes hold no usable scope for the flow: add the api scope"),
    # invalid_client alone names two causes: a wrong consumer secret (no org setting) or an
    # uninstalled, blocked app (C13). The audit tells them apart: an app the org has installed
    # leaves the secret (platform-truth.md section 4).
    Pattern(r"invalid_client\b(?!.*invalid client credentials)(?!.*app must be installed)",
            ("C13", "C9"),
            "either the integration's consumer secret is wrong, or the app is not installed in "
            "the org and the org blocks uninstalled apps (C13); when the audit finds the app "
            "installed, it is the secret: copy it again from the app into the integration"),
    Pattern(r"client identifier invalid|invalid_client_id|app_not_found|not installed in (this|your)"
            r" org", ("C9",),
            "the org does not know the app the integration uses"),
    Pattern(r"API_CURRENTLY_DISABLED|api is disabled for this user|api-only user",
            ("C7", "C5", "C6"),
            "the user's profile and permission sets do not grant API Enabled (a missing "
            "permission set, or the licence it needs, may be what carried it)"),
    # Copilot signs in with client credentials: Permitted Users (C3) cannot refuse its Run As
    # user (platform-truth.md A6), so C3 is not a candidate here.
    Pattern(r"server-to-server authentication failed|couldn't get access token",
            ("C1", "C2", "C8", "C10"),
            "Copilot for Sales could not get a token; the audit tells which link is broken"),
    Pattern(r"connection failed|action failed due to server error",
            ("C9", "C3", "C4", "C7", "C8", "C11", "C10"),
            "Workato could not connect; the audit tells which link is broken"),
)

NOT_A_CAUSE: tuple[tuple[str, str], ...] = (
    (r"invalid client credentials|invalid_client\b",
     "the integration's consumer secret is wrong: copy it again from the app into the "
     "integration's connection settings"),
    (r"audience is invalid|audience validation failed",
     "the JWT 'aud' claim must be https://login.salesforce.com, https://test.salesforce.com "
     "or the org's My Domain URL"),
    (r"invalid assertion|failed: signature invalid",
     "the JWT is not signed with the key whose certificate is on the app, or its subject is "
     "not a user of the org"),
    (r"invalid password|authentication failure|password lockout|"
     r"failed: api security token required|failed: computer activation required",
     "a username-password sign-in failed on its credentials (password, security token or "
     "lockout): not an org setting remediate checks"),
    (r"login rate exceeded|rate_limit_exceeded|number of logins exceeded",
     "the user signed in too often in an hour; wait, and have the integration reuse its "
     "token"),
    (r"organization locked|inactive_org|org is locked",
     "the org is locked, closed or suspended: contact Salesforce"),
    (r"failed: invalid token|expired access/refresh token|expired authorization code",
     "the refresh token or assertion expired or was revoked: reconnect the integration"),
    (r"missing consumer key parameter",
     "the integration sent no client id: check its connection settings"),
    (r"failed: client update required",
     "the client's software is too old for the org: update it"),
)


@dataclass(frozen=True)
class Match:
    causes: tuple[str, ...]
    explanation: str
    not_a_cause: str | None = None


def match(text: str) -> Match | None:
    for p in PATTERNS:
        if re.search(p.pattern, text, re.IGNORECASE):
            return Match(p.causes, p.explanation)
    for pattern, advice in NOT_A_CAUSE:
        if re.search(pattern, text, re.IGNORECASE):
            return Match((), advice, not_a_cause=advice)
    return None


#: ``invalid_client`` alone: a wrong secret or a blocked uninstalled app (platform-truth.md
#: section 4, A8). The org tells them apart: when the audit finds the app in the org (no
#: C13/C9 drift), the app is not blocked, so it is the secret.
BARE_INVALID_CLIENT = re.compile(
    r"invalid_client\b(?!.*invalid client credentials)(?!.*app must be installed)", re.I)
SECRET_ADVICE = ("the app is in the org (the audit finds it installed, so it is not blocked as "
                 "an uninstalled app): invalid_client means the integration's consumer secret "
                 "is wrong; copy it again from the app into the integration's connection "
                 "settings")


def settle_invalid_client(texts: list[str], causes: list[str],
                          drifting_causes: set[str]) -> tuple[list[str], str | None]:
    """Causes and advice once the org's state is known: a bare ``invalid_client`` whose app
    the audit finds in the org names the secret, not C13 or C9."""
    if not any(BARE_INVALID_CLIENT.search(t) for t in texts):
        return causes, None
    if drifting_causes & {"C13", "C9"}:
        return causes, None
    return [c for c in causes if c not in ("C13", "C9")], SECRET_ADVICE
