"""Finding the apps an integration signs in through, as the org has them (issue 9).

An ``AppRead`` names an app by any of several names (an API name, a namespaced ``ns__Name``,
a display name; the Workato guide lists three, platform-truth A15). The org is asked, not
guessed:

* ``listMetadata(ConnectedApp)`` / ``listMetadata(ExternalClientApplication)`` give each app's
  metadata API name, ``namespacePrefix`` and ``manageableState`` (an app installed from a
  managed package is namespaced, A1);
* the ConnectedApplication rows give each connected app's id and "Connected App Name" (the
  display name; object reference, ConnectedApplication), matched to the listed component by
  id (listMetadata's id of a ConnectedApp is the ConnectedApplication id: an assumption row in
  docs/sandbox.md);
* when no name matches, the components are read and their ``label`` compared;
* an ECA's settings and policies are found by ``listMetadata`` of their types and the
  ``externalClientApplication`` field of each component (A11, A12), never by a guessed name;
* the SetupEntityAccess rows of the found apps are the grants (A4).

The answer is an ``AppInfo`` (or None, with a note of what was looked for); the component
itself is stored under ``MetadataRead(type, fullName)``, so a read-modify-write sends back
exactly what was read plus the change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from remediate.steps.base import Ambiguous, AppInfo, AppRead, Grant, Inventory, MetadataRead

if TYPE_CHECKING:
    from remediate.salesforce.gateway import Gateway

CA = "ConnectedApp"
ECA = "ExternalClientApplication"
ECA_OAUTH = "ExtlClntAppOauthSettings"
ECA_GLOBAL = "ExtlClntAppGlobalOauthSettings"
ECA_POLICY = "ExtlClntAppOauthConfigurablePolicies"
ECA_PARTS = (ECA_OAUTH, ECA_GLOBAL, ECA_POLICY)
METADATA_PER_CALL = 10
LIST_QUERIES_PER_CALL = 3


def note_key(read: AppRead) -> tuple[str, AppRead]:
    """Where the inventory keeps what a read that found nothing looked for."""
    return ("app-note", read)


def note(inv: Inventory, read: AppRead) -> str:
    return str(inv.results.get(note_key(read), ""))


@dataclass
class _Listed:
    full_name: str
    id: str
    namespace: str | None
    state: str
    label: str = ""


def _attr(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def list_metadata(gw: Gateway, types: list[str]) -> dict[str, list[dict[str, Any]]]:
    """FileProperties of every component of ``types`` (three queries per call)."""
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in types}
    for start in range(0, len(types), LIST_QUERIES_PER_CALL):
        chunk = types[start:start + LIST_QUERIES_PER_CALL]

        def call(c: list[str] = chunk) -> Any:
            api = gw.mdapi
            return api.list_metadata([api.ListMetadataQuery(type=t) for t in c])

        answer = gw._call(f"listing {', '.join(chunk)} metadata", call)
        items = [] if answer is None else answer if isinstance(answer, list) else [answer]
        for item in items:
            type_ = str(_attr(item, "type") or "")
            if type_ in out and _attr(item, "fullName"):
                out[type_].append({k: _attr(item, k) for k in
                                   ("fullName", "id", "namespacePrefix", "manageableState")})
    return out


def _read_all(gw: Gateway, type_: str, names: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    ordered = sorted(set(names))
    got: dict[str, dict[str, Any] | None] = {}
    for start in range(0, len(ordered), METADATA_PER_CALL):
        chunk = ordered[start:start + METADATA_PER_CALL]
        got.update(zip(chunk, gw.read_metadata(type_, chunk), strict=True))
    return got


def _listed(rows: list[dict[str, Any]]) -> list[_Listed]:
    return [_Listed(str(r["fullName"]), str(r.get("id") or ""), r.get("namespacePrefix") or None,
                    str(r.get("manageableState") or "unmanaged")) for r in rows]


def _short(full_name: str) -> str:
    return full_name.split("__", 1)[1] if "__" in full_name else full_name


def _matches(name: str, apps: list[_Listed], *, by_label: bool) -> tuple[list[_Listed], str]:
    wanted = name.strip().lower()
    if by_label:
        return [a for a in apps if a.label.strip().lower() == wanted], "display name"
    exact = [a for a in apps if a.full_name.lower() == wanted]
    if exact:
        return exact, "API name"
    if "__" not in wanted:
        return [a for a in apps if a.namespace and _short(a.full_name).lower() == wanted], \
            "API name in a package namespace"
    return [], ""


def _resolve(read: AppRead, apps: list[_Listed], labels: dict[str, str] | None,
             ) -> tuple[_Listed | None, str, Ambiguous | None]:
    pool = [a for a in apps if read.namespace is None
            or (a.namespace or "").lower() == read.namespace.lower()]
    what = "connected app" if read.type == "connected_app" else "external client app"
    for by_label in (False, True):
        if by_label and labels is None:
            return None, "", None
        for app in pool:
            if labels is not None:
                app.label = labels.get(app.full_name, app.label)
        for name in read.names:
            found, how = _matches(name, pool, by_label=by_label)
            if len(found) == 1:
                return found[0], f"{name!r} by its {how}", None
            if len(found) > 1:
                return None, "", Ambiguous(what, name, tuple(sorted(a.full_name for a in found)),
                                           how=f"matches by {how}")
    return None, "", None


def _missing_note(read: AppRead, apps: list[_Listed]) -> str:
    what = "connected app" if read.type == "connected_app" else "external client app"
    names = ", ".join(repr(n) for n in read.names)
    text = f"no {what} with the API name, namespaced name or display name {names}"
    if read.namespace:
        namespaces = {(a.namespace or "").lower() for a in apps}
        text += f" in namespace {read.namespace!r}"
        if read.namespace.lower() not in namespaces:
            text += f" (no {what} of the org is in that namespace)"
    return text + " is in the org"


def read_apps(gw: Gateway, reads: list[AppRead], inv: Inventory) -> None:
    """Answer every ``AppRead`` (see the module docstring)."""
    types = sorted({CA if r.type == "connected_app" else ECA for r in reads})
    if any(r.type != "connected_app" for r in reads):
        types += list(ECA_PARTS)
    listed = list_metadata(gw, types)
    rows: list[dict[str, Any]] = []
    if CA in listed:
        rows = gw.query("SELECT Id, Name FROM ConnectedApplication")
    ca_apps = _listed(listed.get(CA, []))
    by_id = {a.id[:15]: a for a in ca_apps}
    for row in rows:  # the display name ("Connected App Name") of each listed app
        app = by_id.get(str(row.get("Id") or "")[:15])
        if app is not None:
            app.label = str(row.get("Name") or "")
    eca_apps = _listed(listed.get(ECA, []))
    eca_headers: dict[str, dict[str, Any] | None] = {}
    if eca_apps:  # few; read whole for their label and distributionState
        eca_headers = _read_all(gw, ECA, [a.full_name for a in eca_apps])
        for app in eca_apps:
            header = eca_headers.get(app.full_name) or {}
            app.label = str(header.get("label") or "")
    ca_labels: dict[str, str] | None = None
    found: dict[AppRead, _Listed] = {}
    for read in sorted(reads, key=repr):
        pool = ca_apps if read.type == "connected_app" else eca_apps
        app, how, ambiguous = _resolve(read, pool, {} if read.type != "connected_app"
                                       else ca_labels)
        if app is None and ambiguous is None and read.type == "connected_app":
            if ca_labels is None:  # no name matched: compare the components' labels
                comps = _read_all(gw, CA, [a.full_name for a in ca_apps])
                ca_labels = {n: str((c or {}).get("label") or "") for n, c in comps.items()}
                for n, c in comps.items():
                    inv.results[MetadataRead(CA, n)] = c
            app, how, ambiguous = _resolve(read, pool, ca_labels)
        if ambiguous is not None:
            inv.results[read] = ambiguous
            continue
        if app is None:
            inv.results[read] = None
            inv.results[note_key(read)] = _missing_note(read, pool)
            continue
        found[read] = app
        inv.results[read] = (app, how)
    _finish(gw, found, listed, eca_headers, inv)


def _finish(gw: Gateway, found: dict[AppRead, _Listed], listed: dict[str, list[dict[str, Any]]],
            eca_headers: dict[str, dict[str, Any] | None], inv: Inventory) -> None:
    """Read the found apps' components, their ECA parts and their grants."""
    ca_names = [a.full_name for r, a in found.items() if r.type == "connected_app"
                and MetadataRead(CA, a.full_name) not in inv.results]
    if ca_names:
        for name, comp in _read_all(gw, CA, ca_names).items():
            inv.results[MetadataRead(CA, name)] = comp
    parts: dict[str, dict[str, str | None]] = {}
    eca_names = {a.full_name for r, a in found.items() if r.type != "connected_app"}
    for name in eca_names:
        inv.results[MetadataRead(ECA, name)] = eca_headers.get(name)
    if eca_names:
        for type_ in ECA_PARTS:
            comps = _read_all(gw, type_, [str(c["fullName"]) for c in listed.get(type_, [])])
            for comp_name, comp in sorted(comps.items()):
                owner = str((comp or {}).get("externalClientApplication") or "")
                if owner in eca_names and parts.setdefault(owner, {}).get(type_) is None:
                    parts[owner][type_] = comp_name
                    inv.results[MetadataRead(type_, comp_name)] = comp
    ids = sorted({a.id for a in found.values() if a.id})
    grants: dict[str, list[Grant]] = {}
    if ids:
        records = gw.query("SELECT Id, ParentId, Parent.Name, Parent.IsOwnedByProfile, "
                           "Parent.ProfileId, SetupEntityId FROM SetupEntityAccess WHERE "
                           f"SetupEntityId IN ({', '.join(repr(i) for i in ids)})")
        for r in records:
            parent = r.get("Parent") or {}
            grants.setdefault(str(r.get("SetupEntityId") or "")[:15], []).append(Grant(
                str(r["Id"]), str(r.get("ParentId") or ""), str(parent.get("Name") or ""),
                str(parent.get("ProfileId")) if parent.get("IsOwnedByProfile") else None))
    for read, app in found.items():
        _, how = inv.results[read]
        state = None
        if read.type != "connected_app":
            state = str((eca_headers.get(app.full_name) or {}).get("distributionState")
                        or "Local")
        inv.results[read] = AppInfo(
            read.type, app.full_name, app.label, app.id, app.namespace, app.state, how,
            tuple((t, parts.get(app.full_name, {}).get(t)) for t in ECA_PARTS)
            if read.type != "connected_app" else (),
            tuple(grants.get(app.id[:15], ())), state)
