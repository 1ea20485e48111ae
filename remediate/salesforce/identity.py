"""Who remediate itself is signed in as, for the self-lockout guard (safety.py): its user (from
``userinfo``: ``user_id``, ``preferred_username``, OpenID Connect as Salesforce serves it,
reference 1.6), that user's profile, and the address its latest sign-in came from
(``LoginHistory.SourceIp``, SOAP API object reference). Read only when a plan holds a change
that could narrow someone's access, so an ordinary apply costs no extra request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remediate.errors import SalesforceError


@dataclass(frozen=True)
class Identity:
    user_id: str | None = None
    username: str | None = None
    profile: str | None = None  # Profile.Name
    profile_api_name: str | None = None  # its metadata fullName (Admin, Standard: U4)
    source_ip: str | None = None  # where remediate's latest sign-in came from, if recorded
    problem: str | None = None  # why some of it could not be read


def own_identity(gateway: Any) -> Identity:
    """remediate's own user, profile and source address; what cannot be read stays None and
    ``problem`` says why (the guard then refuses what it cannot judge)."""
    from remediate.salesforce import soql

    try:
        info = gateway._call("reading remediate's own user (userinfo)",
                             lambda: gateway.sf.oauth2("userinfo", None, method="GET"))
    except SalesforceError as err:
        return Identity(problem=err.message)
    if not isinstance(info, dict) or not info.get("user_id"):
        return Identity(problem="userinfo named no user")
    user_id = str(info["user_id"])
    username = str(info.get("preferred_username") or "") or None
    profile = profile_api_name = source_ip = problem = None
    try:
        rows = gateway.query(f"SELECT Username, ProfileId, Profile.Name FROM User WHERE Id = "
                             f"{soql.quote(user_id)}")
        if rows:
            username = str(rows[0].get("Username") or username or "") or None
            profile = str((rows[0].get("Profile") or {}).get("Name") or "") or None
            from remediate.salesforce.reads import _list_profiles

            listed: dict[str, Any] = {}
            _list_profiles(gateway, listed)  # the profile's metadata API name (U4)
            profile_api_name = (listed.get("names") or {}).get(
                str(rows[0].get("ProfileId") or "")[:15])
        logins = gateway.query(f"SELECT SourceIp FROM LoginHistory WHERE UserId = "
                               f"{soql.quote(user_id)} ORDER BY LoginTime DESC LIMIT 1")
        if logins and logins[0].get("SourceIp"):
            source_ip = str(logins[0]["SourceIp"])
    except SalesforceError as err:
        problem = err.message
    return Identity(user_id, username, profile, profile_api_name, source_ip, problem)
