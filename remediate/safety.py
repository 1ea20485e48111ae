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
  to false, a user deactivated) from remediate's own user or client id, or from an integration's
  user or client id when the change comes from another playbook than that integration's, is
  refused unless ``--allow-lockout`` is given. The integration a playbook fixes is the one its
  ``verify`` login is named after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from remediate.errors import SafetyRefusal
from remediate.plan import Change, MetadataWrite, Plan, RecordDelete, RecordWrite

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


def lockouts(handle: OrgHandle, changes: list[Change]) -> list[str]:
    """Why each change that would cut off a sign-in does so (empty: none would)."""
    creds: Any = getattr(handle.gateway, "_creds", None)
    own = [getattr(creds, "username", None), getattr(creds, "client_id", None)]
    found = []
    for c in changes:
        if not takes_away(c):
            continue
        if any(_mentions(c, ident) for ident in own):
            found.append(f"{c.label()} ({c.playbook}/{c.step}) takes access from remediate's "
                         "own sign-in")
            continue
        for login in handle.logins:
            if login.name != c.playbook and (_mentions(c, login.username)
                                             or _mentions(c, login.client_id)):
                found.append(f"{c.label()} ({c.playbook}/{c.step}) takes access from "
                             f"integration {login.name}, which this plan is not fixing")
    return found


def guard_lockout(handle: OrgHandle, changes: list[Change], allow: bool) -> None:
    found = lockouts(handle, changes)
    if found and not allow:
        raise LockoutGuard("refused: " + "; ".join(found) + "; nothing was written",
                           hint="pass --allow-lockout if this is intended")
