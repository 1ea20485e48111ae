"""Step kinds for session and login policies that block a flow without a person (cause C16,
the Workato guide's step 5).

* ``app.session_policy``: an app whose session policy requires a High Assurance session cannot
  be used by client credentials or JWT bearer (nobody is there to step up with MFA). Where it
  lives: ConnectedApp ``sessionPolicy.sessionLevel`` (Metadata API ConnectedApp,
  ConnectedAppSessionPolicy), ECA ``ExtlClntAppOauthConfigurablePolicies.requiredSessionLevel``;
  the levels are those of Auth.SessionLevel (``STANDARD``, ``HIGH_ASSURANCE``; Apex reference).
  ConnectedApplication ``OptionsHasSessionLevelPolicy`` tells it where the app's metadata cannot
  be read. An app installed from a package keeps its policies in the subscriber's Setup and no
  API is known to write them (platform-truth A1, A3): a manual change with the Setup path.
* ``profile.login_hours``: Profile ``loginHours`` (``<day>Start``/``<day>End``, minutes after
  midnight in whole hours; a day without them is unrestricted: retrieved profiles in public
  repositories [Q]). A sign-in outside them fails ``ip restricted or invalid login hours``
  (reference 1.5) with Login History ``Restricted time`` (4.7). The fix widens the days the
  playbook names to cover its window, written as ``{fullName, loginHours}`` alone (a Profile
  deploy overlays: platform-truth U3, engine.OVERLAY_TYPES). Only with ``allow_change``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from remediate.errors import NotFound
from remediate.plan import Change, MetadataWrite
from remediate.steps.apps import (
    CA,
    ECA_POLICY,
    AppParams,
    _component,
    _eca_part,
    app_reads,
    app_target,
    find_app,
)
from remediate.steps.base import (
    AppRow,
    AppRowRead,
    Inventory,
    MetadataRead,
    Params,
    Read,
    StepContext,
    StepKind,
    get_path,
    register,
)

HIGH = "HIGH_ASSURANCE"
STANDARD = "STANDARD"


class SessionPolicyParams(AppParams):
    #: The app comes from an installed (managed) package: its policies are changed in Setup
    #: only (A1, A3). A namespaced name (ns__App) counts as installed as well.
    installed: bool = False


def _may_be_installed(p: SessionPolicyParams) -> bool:
    return p.installed or "__" in p.app or bool(p.namespace)


def session_manual(p: SessionPolicyParams, name: str) -> str:
    if p.type == "external_client_app":
        path = (f"Setup → Apps → External Client Apps → External Client App Manager → {name} → "
                "Policies → Edit → OAuth Policies → Session Policies → High Assurance session "
                "required → clear it → Save")
    else:
        path = (f"Setup → Apps → Connected Apps → Manage Connected Apps → {name} → Edit "
                "Policies → Session Policies → High assurance session required → clear it → "
                "Save")
    return (f"The app {name!r} requires a High Assurance session, which a sign-in without a "
            f"person (client credentials, JWT bearer) can never have. {path}. The app is "
            "installed from a package, so remediate does not write its policies (no API is "
            "known for them); audit re-checks it after the change.")


@register
class AppSessionPolicy(StepKind[SessionPolicyParams]):
    name = "app.session_policy"
    summary = ("The app does not require a High Assurance session (which blocks client "
               "credentials and JWT bearer).")
    causes = ("C16",)
    permissions = ("PermissionsCustomizeApplication", "PermissionsModifyAllData")  # A5
    params = SessionPolicyParams
    example: ClassVar[dict[str, Any]] = {"app": "Workato"}

    def reads(self, p: SessionPolicyParams) -> Iterable[Read]:
        # an installed app's metadata may not be readable (A1): its ConnectedApplication row
        # still tells whether a session level policy is set
        rows: list[Read] = [AppRowRead(p.app)] \
            if p.type == "connected_app" and _may_be_installed(p) else []
        return [*app_reads(p), *rows]

    def diff(self, p: SessionPolicyParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        field = "sessionPolicy.sessionLevel" if p.type == "connected_app" \
            else "requiredSessionLevel"
        info = find_app(p, inv, ctx)  # the app as found by name, namespace or label (A1, A15)
        installed = p.installed or info.installed
        shown = info.label or info.full_name
        if p.type == "connected_app":
            header = inv.metadata(CA, info.full_name)
            if header is None or not header.get("fullName"):
                row = inv.results.get(AppRowRead(p.app))
                if isinstance(row, AppRow):  # in the org, its metadata not readable (A1)
                    if not row.high_assurance:
                        return []
                    return [ctx.change(self.name, target=app_target(p, info), field=field,
                                       before=HIGH, after=STANDARD,
                                       manual=session_manual(p, shown))]
                header = _component(inv, info, ctx)  # raises: could not be read
            now = get_path(header, field)
            type_, full_name = CA, info.full_name
        else:
            # the policy component that names the app, never one guessed from a name (A11)
            full_name, policy = _eca_part(inv, info, ECA_POLICY, ctx)
            now = get_path(policy, field)
            type_ = ECA_POLICY
        if now != HIGH:
            return []
        if installed:
            return [ctx.change(self.name, target=app_target(p, info), field=field, before=now,
                               after=STANDARD, manual=session_manual(p, shown))]
        return [ctx.change(self.name, target=app_target(p, info), field=field, before=now,
                           after=STANDARD,
                           write=MetadataWrite(type=type_, full_name=full_name, path=field,
                                               value=STANDARD))]

    def capture(self, p: SessionPolicyParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return p.model_dump()


# ---- login hours ---------------------------------------------------------------------------

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"^([01]\d|2[0-4]):00$")


class LoginWindow(BaseModel):
    """When the integration signs in: whole hours, in the org's time zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    days: list[str] = list(DAYS)
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        unknown = [d for d in value if d not in DAYS]
        if unknown:
            raise ValueError(f"unknown day {unknown[0]!r} (days: {', '.join(DAYS)})")
        return value

    @field_validator("start", "end")
    @classmethod
    def _whole_hour(cls, value: str) -> str:
        if not _TIME.match(value) or value > "24:00":
            raise ValueError(f"{value!r}: login hours are whole hours, 00:00 to 24:00")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> LoginWindow:
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self

    def minutes(self) -> tuple[int, int]:
        return int(self.start[:2]) * 60, int(self.end[:2]) * 60


class LoginHoursParams(Params):
    profile: str
    window: LoginWindow = LoginWindow()
    #: Widen the profile's login hours to cover the window; without it, a person decides.
    allow_change: bool = False


def _fmt(minutes: int) -> str:
    return f"{minutes // 60:02d}:00"


def day_spans(hours: dict[str, Any] | None) -> dict[str, tuple[int, int] | None]:
    """Day -> (start, end) minutes, None for an unrestricted day. Raises ValueError on a
    value that is not minutes after midnight."""
    hours = hours if isinstance(hours, dict) else {}
    out: dict[str, tuple[int, int] | None] = {}
    for day in DAYS:
        start, end = hours.get(f"{day}Start"), hours.get(f"{day}End")
        out[day] = None if start in (None, "") or end in (None, "") \
            else (int(str(start)), int(str(end)))
    return out


@register
class ProfileLoginHours(StepKind[LoginHoursParams]):
    name = "profile.login_hours"
    summary = "The integration profile's login hours include the hours the integration signs in."
    causes = ("C16",)
    permissions = ("PermissionsManageProfilesPermissionsets", "PermissionsModifyMetadata")
    params = LoginHoursParams
    example: ClassVar[dict[str, Any]] = {"profile": "Workato Integration",
                                         "window": {"start": "00:00", "end": "24:00"},
                                         "allow_change": True}

    def reads(self, p: LoginHoursParams) -> Iterable[Read]:
        return [MetadataRead("Profile", p.profile)]

    def diff(self, p: LoginHoursParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        profile = inv.metadata("Profile", p.profile, where=ctx.where)
        if profile is None or not profile.get("fullName"):
            raise NotFound(f"{ctx.where}: no profile named {p.profile!r} in the org")
        try:
            spans = day_spans(profile.get("loginHours"))
        except ValueError:
            raise NotFound(f"{ctx.where}: profile {p.profile!r} has login hours remediate "
                           "cannot read (not minutes after midnight)") from None
        lo, hi = p.window.minutes()
        short = [d for d in p.window.days
                 if (span := spans[d]) is not None and not (span[0] <= lo and hi <= span[1])]
        if not short:
            return []
        new = {d: spans[d] for d in DAYS}
        for d in short:
            span = spans[d]
            assert span is not None
            new[d] = (min(span[0], lo), max(span[1], hi))
        before = {d: f"{_fmt(s[0])}-{_fmt(s[1])}" for d in short if (s := spans[d])}
        after = {d: f"{_fmt(s[0])}-{_fmt(s[1])}" for d in short if (s := new[d])}
        target = f"Profile {p.profile}"
        if not p.allow_change:
            return [ctx.change(
                self.name, target=target, field="loginHours", before=before, after=after,
                manual=(f"Profile {p.profile!r} does not allow sign-ins on "
                        f"{', '.join(short)} from {p.window.start} to {p.window.end}, when the "
                        "integration signs in. Setup → Users → Profiles → "
                        f"{p.profile} → Login Hours → Edit → set "
                        + "; ".join(f"{d.title()} {v}" for d, v in after.items())
                        + " → Save; or set allow_change: true on this step."))]
        value: dict[str, str] = {}
        for d in DAYS:
            span = new[d]
            if span is not None:
                value[f"{d}Start"], value[f"{d}End"] = str(span[0]), str(span[1])
        # before/after are the field's values as written (minutes after midnight), so rollback
        # can restore them; the manual change above shows hours
        return [ctx.change(self.name, target=target, field="loginHours",
                           before=dict(profile.get("loginHours") or {}) or None, after=value,
                           write=MetadataWrite(type="Profile", full_name=str(profile["fullName"]),
                                               path="loginHours", value=value))]

    def capture(self, p: LoginHoursParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return p.model_dump()
