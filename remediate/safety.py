"""Guards apply runs before it writes: the API allowance it will spend, and sign-ins it must not
cut off (ADR 0029).

* ``api_cost``: the requests an apply of a plan sends, from the requests its read took (measured
  while planning): the read again, one ``/limits`` check, one request per write batch, and the
  re-read after. It is an estimate (a retry costs more) and is stated as one.
* ``check_api_floor``: Salesforce counts REST/SOAP calls against a rolling 24-hour allowance,
  reported by ``GET /services/data/vXX.X/limits`` as ``DailyApiRequests`` ``Max`` and
  ``Remaining`` (REST API Developer Guide, "Limits" resource). An apply that would leave fewer
  than the org's ``min_api_requests`` is refused before anything is written, so remediate never
  spends the last of the allowance the integrations themselves need.
* ``guard_lockout``: a change that takes access away (a delete, a list item removed, a flag set
  to false, a user deactivated) or narrows it (a user moved to another profile, login IP ranges
  put on a profile that had none, an app policy tightened: admin-approved users only, IP
  restrictions enforced, High Assurance) is refused unless ``--allow-lockout`` is given when it
  hits remediate's own sign-in (its user, its profile's access and IP ranges, judged against
  where its latest sign-in came from, its own app's policies: ADR 0034) or an integration whose
  playbook is not the one making it (its user, its client id's app, its user's profile). The
  integration a playbook fixes is the one its ``verify`` login is named after. ``enforce``
  applies the same guard and can never allow it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from remediate.errors import SafetyRefusal
from remediate.plan import Change, MetadataWrite, Plan, RecordDelete, RecordWrite
from remediate.steps.base import UserRead

if TYPE_CHECKING:
    from remediate.orgs import OrgHandle

#: Default floor of DailyApiRequests.Remaining below which apply refuses (settings:
#: ``[orgs.<name>] min_api_requests``).
DEFAULT_MIN_API_REQUESTS = 1000


class ApiAllowanceTooLow(SafetyRefusal):
    pass


class LockoutGuard(SafetyRefusal):
    pass


def api_cost(plan: Plan, read_requests: int) -> int:
    from remediate.engine import batches

    if not plan.automatic:
        return 0
    return 2 * max(read_requests, 1) + 1 + len(batches(plan.automatic))


def check_api_floor(handle: OrgHandle, cost: int) -> dict[str, int]:
    """Refuse when the org's remaining daily API requests, less ``cost``, fall below the floor.
    Returns {"remaining", "max", "floor", "cost"} for the record."""
    remaining, maximum = handle.gateway.daily_api_requests()
    floor = handle.config.min_api_requests
    seen = {"remaining": remaining, "max": maximum, "floor": floor, "cost": cost}
    if remaining - cost < floor:
        raise ApiAllowanceTooLow(
            f"org {handle.name!r} has {remaining} of {maximum} daily API requests left; this "
            f"apply needs about {cost} and would go below the floor of {floor}; nothing was "
            "written",
            hint="wait for the allowance to recover, or lower min_api_requests for this org "
                 "in remediate.toml")
    return seen


def takes_away(c: Change) -> bool:
    w = c.write
    if isinstance(w, RecordDelete):
        return True
    if isinstance(w, MetadataWrite):
        return w.mode == "remove" or w.value is False
    if isinstance(w, RecordWrite):
        return any(v is False for v in w.fields.values())
    return False


def _mentions(c: Change, ident: str | None) -> bool:
    if not ident:
        return False
    ident = ident.lower()
    return ident in c.target.lower() or ident in str(c.before).lower()


#: App policy values that narrow who may sign in (A3, A6): admin-approved users only, IP
#: restrictions enforced, a High Assurance session required.
_NARROWING = {"isAdminApproved": (True,), "ipRelaxation": ("ENFORCE", "Enforce"),
              "sessionLevel": ("HIGH_ASSURANCE",)}
_APP_TYPES = ("ConnectedApp", "ExternalClientApplication", "ExtlClntAppOauthSettings",
              "ExtlClntAppGlobalOauthSettings", "ExtlClntAppOauthConfigurablePolicies",
              "ExtlClntAppConfigurablePolicies")


def narrows(c: Change) -> bool:
    """A change that may cut someone off without taking a grant away: a user moved to another
    profile, login IP ranges put on a profile that had none (a profile without ranges admits
    every address; one with ranges only those), an app policy tightened."""
    w = c.write
    if isinstance(w, RecordWrite):
        return "ProfileId" in w.fields
    if isinstance(w, MetadataWrite):
        leaf = w.path.split(".")[-1]
        if w.type == "Profile" and leaf == "loginIpRanges" and w.mode == "add":
            return not c.before
        return w.type in _APP_TYPES and w.value in _NARROWING.get(leaf, ())
    return False


def _app_key(inv: Any, c: Change) -> str | None:
    """The consumer key of the app a metadata change writes to, when the run read it."""
    w = c.write
    if inv is None or not isinstance(w, MetadataWrite) or w.type not in _APP_TYPES:
        return None
    component = inv.metadata(w.type, w.full_name) or {}
    if w.type == "ConnectedApp":
        return (component.get("oauthConfig") or {}).get("consumerKey")
    eca = w.full_name if w.type == "ExternalClientApplication" else \
        component.get("externalClientApplication")
    for read, value in getattr(inv, "results", {}).items():
        if getattr(read, "type", None) == "ExtlClntAppGlobalOauthSettings" and \
                isinstance(value, dict) and value.get("externalClientApplication") == eca:
            return value.get("consumerKey")
    return None


def _run_as(inv: Any, client_id: str | None) -> str | None:
    """The client credentials Run As user of the app with consumer key ``client_id``, when the
    run read that app (the integration's user when its login names none)."""
    for read, value in getattr(inv, "results", {}).items():
        if getattr(read, "type", None) == "ConnectedApp" and isinstance(value, dict):
            config = value.get("oauthConfig") or {}
            if client_id and config.get("consumerKey") == client_id:
                return config.get("oauthClientCredentialUser") or None
    return None


def _in_ranges(ip: str, ranges: Any) -> bool:
    import ipaddress

    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for item in ranges if isinstance(ranges, list) else []:
        start, _, end = str(item).partition("-")
        try:
            low, high = ipaddress.ip_address(start), ipaddress.ip_address(end)
        except ValueError:
            continue
        if low.version == high.version == address.version and \
                int(low) <= int(address) <= int(high):
            return True
    return False


class _Own:
    """remediate's own sign-in, read from the org only when a change needs it."""

    def __init__(self, handle: OrgHandle) -> None:
        creds: Any = getattr(handle.gateway, "_creds", None)
        self.handle = handle
        self.username: str | None = getattr(creds, "username", None)
        self.client_id: str | None = getattr(creds, "client_id", None)
        self._identity: Any = None

    def identity(self) -> Any:
        if self._identity is None:
            from remediate.salesforce.identity import own_identity

            self._identity = own_identity(self.handle.gateway)
            if self._identity.username and not self.username:
                self.username = self._identity.username
        return self._identity


def _own_lockout(own: _Own, c: Change, inv: Any) -> str | None:
    """Why ``c`` would cut off remediate's own sign-in, or None."""
    key = _app_key(inv, c)
    if key is not None and own.client_id and key == own.client_id:
        if takes_away(c) or narrows(c):
            return "changes the policies of remediate's own app"
        return None
    if not (takes_away(c) or narrows(c)):
        return None
    if any(_mentions(c, ident) for ident in (own.username, own.client_id)):
        return "takes access from remediate's own sign-in"
    w = c.write
    if isinstance(w, RecordWrite | RecordDelete) and c.target.lower().startswith("user "):
        if own.username:  # known from the credentials (JWT): no read needed
            return None
        me = own.identity()
        if me.username and _mentions(c, me.username):
            return "takes access from remediate's own sign-in (its own user)"
        if me.username is None:
            return (f"may take access from remediate's own sign-in: its user could not be "
                    f"read ({me.problem})")
        return None
    if isinstance(w, MetadataWrite) and w.type == "Profile":
        me = own.identity()
        if me.profile is None:
            return (f"changes a profile, and remediate's own profile could not be read "
                    f"({me.problem})")
        mine = {n.lower() for n in (me.profile, me.profile_api_name) if n}
        if not mine & {w.full_name.lower(), c.target.lower().removeprefix("profile ")}:
            return None
        if takes_away(c):
            return "takes access from remediate's own profile"
        if me.source_ip is None:
            return ("puts login IP ranges on remediate's own profile, and where remediate "
                    "signs in from is not known")
        if not _in_ranges(me.source_ip, c.after):
            return (f"puts login IP ranges on remediate's own profile that leave out "
                    f"{me.source_ip}, where remediate signs in from")
    return None


def lockouts(handle: OrgHandle, changes: list[Change], inventory: Any = None) -> list[str]:
    """Why each change that would cut off a sign-in does so (empty: none would): remediate's
    own (its user, its profile's API access and IP ranges, its own app's policies) or that of
    an integration whose playbook is not the one making the change."""
    own = _Own(handle)
    found = []
    for c in changes:
        why = _own_lockout(own, c, inventory)
        if why is not None:
            found.append(f"{c.label()} ({c.playbook}/{c.step}) {why}")
            continue
        if not (takes_away(c) or narrows(c)):
            continue
        key = _app_key(inventory, c)
        for login in handle.logins:
            if login.name == c.playbook:
                continue
            username = login.username or _run_as(inventory, login.client_id)
            user = getattr(inventory, "results", {}).get(UserRead(username)) \
                if username else None
            profile = getattr(user, "profile_name", None)
            if (_mentions(c, username) or _mentions(c, login.client_id)
                    or (key is not None and key == login.client_id)
                    or (profile and isinstance(c.write, MetadataWrite)
                        and c.write.type == "Profile"
                        and c.target.lower() == f"profile {profile}".lower())):
                found.append(f"{c.label()} ({c.playbook}/{c.step}) takes access from "
                             f"integration {login.name}, which this plan is not fixing")
    return found


def guard_lockout(handle: OrgHandle, changes: list[Change], allow: bool,
                  inventory: Any = None) -> None:
    """Refuse ``changes`` when one would cut off a sign-in (``lockouts``), unless ``allow``
    (``--allow-lockout``). ``inventory`` is the run's read: it tells whose app and profile a
    change writes to."""
    if allow:
        return
    found = lockouts(handle, changes, inventory)
    if found:
        raise LockoutGuard("refused: " + "; ".join(found) + "; nothing was written",
                           hint="pass --allow-lockout if this is intended")
