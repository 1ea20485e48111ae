"""Components installed from a managed package, and an admin's Setup changes to them.

A connected app installed from a managed package carries its namespace (``ns__Name``); the
subscriber org cannot change it through the Metadata API, only its policies, in Setup
(platform-truth A1, A3). The rules and tables are here, with the org's state; ``metadata.py``
(CRUD and deploy) and ``cli`` only call them.

A managed component is stored like any other, with two internal keys (never returned):
``_namespace`` (the package's namespace) and ``_managed`` (True).
"""

from __future__ import annotations

from typing import Any

from remediate.sandbox.state import Org

#: The refusal of a Metadata write to a managed component. The status code is one of the
#: API's StatusCode values; the message follows the wording deploys report for managed
#: components in the field. Both are the sandbox's choice (docs/sandbox.md, assumptions).
REFUSAL_CODE = "CANNOT_MODIFY_MANAGED_OBJECT"
REFUSAL_MESSAGE = "Cannot modify managed object: entity={type}, component={id}, state=installed"


def namespace_of(org: Org, type_name: str, full_name: str) -> str | None:
    """The package namespace of a stored component, None for a local one."""
    comp = org.metadata.get(type_name, {}).get(full_name) or {}
    ns = comp.get("_namespace")
    return str(ns) if ns else None


def is_managed(org: Org, type_name: str, full_name: str) -> bool:
    comp = org.metadata.get(type_name, {}).get(full_name) or {}
    return bool(comp.get("_managed"))


def refusal(org: Org, type_name: str, full_name: str, record_id: str) -> str | None:
    """The message a Metadata write (create, update, upsert, delete, deploy) of a managed
    component fails with, or None when the component may be written."""
    if not is_managed(org, type_name, full_name):
        return None
    return REFUSAL_MESSAGE.format(type=type_name, id=record_id)


# ---- Setup → Apps → Connected Apps → Manage Connected Apps → app → Edit Policies -----------

#: The policies an admin may edit on any connected app, installed or local (A1): the name
#: ``remediate sandbox setup-change --set NAME=VALUE`` takes, the component path it changes,
#: and the values it accepts (Setup's choices, as the Metadata API spells them).
POLICIES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "permitted_users": ("oauthConfig.isAdminApproved", ("admin_approved", "all_users")),
    "ip_relaxation": ("oauthPolicy.ipRelaxation",
                      ("ENFORCE", "BYPASS_2FACTOR", "BYPASS", "ENFORCE_RELAXREFRESH")),
    "client_credentials": ("oauthConfig.isClientCredentialEnabled", ("true", "false")),
    "run_as": ("oauthConfig.oauthClientCredentialUser", None),  # a username of the org
    "handler_run_as": ("pluginExecutionUser", None),
    "refresh_token_policy": ("oauthPolicy.refreshTokenPolicy",
                             ("infinite", "immediately", "zero", "specific_lifetime")),
    "high_assurance": ("sessionPolicy.sessionLevel", ("true", "false")),
}


class SetupError(ValueError):
    """A Setup change the org refuses; the message names the app and the field."""


def setup_change(org: Org, app: str, settings: dict[str, str]) -> list[tuple[str, Any, Any]]:
    """Play an admin's Save on the app's Edit Policies page: each ``name=value`` of
    ``settings`` (names of ``POLICIES``). Returns (path, before, after) per field changed;
    nothing is changed when any setting is refused."""
    store = org.metadata.get("ConnectedApp", {})
    comp = store.get(app)
    if comp is None:
        known = ", ".join(sorted(store)) or "none"
        raise SetupError(f"no connected app {app!r} in the org (connected apps: {known})")
    planned: list[tuple[str, Any]] = []
    for name, raw in settings.items():
        if name not in POLICIES:
            raise SetupError(f"{app}: {name!r} is not a policy on Edit Policies (known: "
                             f"{', '.join(POLICIES)})")
        path, allowed = POLICIES[name]
        if allowed is not None and raw not in allowed:
            raise SetupError(f"{app}: {name}={raw!r}: choose one of {', '.join(allowed)}")
        value: Any = raw
        if name == "permitted_users":
            value = raw == "admin_approved"
        elif name == "client_credentials":
            value = raw == "true"
        elif name == "high_assurance":
            value = "HIGH_ASSURANCE" if raw == "true" else "STANDARD"
        elif name in ("run_as", "handler_run_as") and org.user_by_username(raw) is None:
            raise SetupError(f"{app}: {name}={raw!r}: no user with that username in the org")
        planned.append((path, value))
    out = []
    for path, value in planned:
        *parents, leaf = path.split(".")
        cur = comp
        for part in parents:
            cur = cur.setdefault(part, {})
        before = cur.get(leaf)
        cur[leaf] = value
        if before != value:
            out.append((path, before, value))
    return out
