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
* the grants are SetupEntityAccess rows, read with the permission sets (A4: ``GRANTS``).

The answer is an ``AppInfo`` (or None, with a note of what was looked for); the component
itself is stored under ``MetadataRead(type, fullName)``, so a read-modify-write sends back
exactly what was read plus the change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from remediate.errors import AuthenticationError, ConnectionFailure, SalesforceError
from remediate.salesforce.errors import bad_answer
from remediate.steps.base import (
    Ambiguous,
    AppInfo,
    AppMissing,
    AppRead,
    Inventory,
    MetadataRead,
)

if TYPE_CHECKING:
    from remediate.salesforce.session import Connection as Gateway  # the gateway's session

CA = "ConnectedApp"
ECA = "ExternalClientApplication"
ECA_OAUTH = "ExtlClntAppOauthSettings"
ECA_GLOBAL = "ExtlClntAppGlobalOauthSettings"
ECA_POLICY = "ExtlClntAppOauthConfigurablePolicies"
ECA_PARTS = (ECA_OAUTH, ECA_GLOBAL, ECA_POLICY)
METADATA_PER_CALL = 10
LIST_QUERIES_PER_CALL = 3


@dataclass
class _Listed:
    full_name: str
    id: str
    namespace: str | None
    state: str
    label: str = ""


def _read_metadata(gw: Gateway, type_: str, names: list[str]) -> list[dict[str, Any] | None]:
    from remediate.salesforce import reads  # reads.py calls this module

    return reads.read_metadata(gw, type_, names)


def _query(gw: Gateway, soql: str) -> list[dict[str, Any]]:
    from remediate.salesforce import reads

    return reads.query(gw, soql)


def list_items(gw: Gateway, types: list[str]) -> list[Any]:
    """The FileProperties of one ``listMetadata`` call of up to three ``types`` (reference
    3.2), as plain dicts where remediate's reader read the answer (soapread), else zeep's."""
    def call() -> Any:
        from remediate.salesforce import soapread  # lxml: imported when a call needs it

        api = gw.mdapi
        return soapread.list_metadata(api, [api.ListMetadataQuery(type=t) for t in types])

    what = f"listing {', '.join(types)} metadata"
    answer, plain = gw._call(what, call)
    items = [] if answer is None else answer if isinstance(answer, list) else [answer]
    if not plain:
        from zeep.helpers import serialize_object

        items = [serialize_object(item) for item in items]  # type: ignore[no-untyped-call]
    for item in items:
        # zeep keeps what it could not map: an answer of another shape is refused here, not
        # read as "no such component" (an app reported missing that was never looked at)
        if not (isinstance(item, dict) and item.get("fullName") and item.get("type") in types):
            raise bad_answer(f"{gw.org_label}: {what}", "elements that are not file properties "
                             "of the types asked for")
    return items


def _rows(items: list[Any], types: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The items of ``types`` (``list_items``' answers, each checked there), by type."""
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in types}
    for item in items:
        if item["type"] in out:
            out[item["type"]].append({k: item.get(k) for k in
                                      ("fullName", "id", "namespacePrefix", "manageableState")})
    return out


def list_metadata(gw: Gateway, types: list[str]) -> dict[str, list[dict[str, Any]]]:
    """FileProperties of every component of ``types`` (three queries per call)."""
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in types}
    for start in range(0, len(types), LIST_QUERIES_PER_CALL):
        chunk = types[start:start + LIST_QUERIES_PER_CALL]
        for type_, rows in _rows(list_items(gw, chunk), chunk).items():
            out[type_].extend(rows)
    return out


@dataclass
class Rider:
    """Another reader's ``listMetadata`` query of one type, sent in the apps' listing call of
    a fetch when that call has room: a call takes up to three queries (reference 3.2), the
    apps' listing of connected apps uses one, so a fetch that lists both apps and profiles
    makes one request fewer (issue 17; ADR 0048).

    ``take`` gets the answer's items of its type (``list_items`` refuses an answer with any
    other element). If the shared call fails, nobody's failure is
    guessed from it: the apps' listing and ``alone`` (the reader's own call, which keeps its
    own failure, U5) are sent again apart, so each fails alone as when they were never
    shared."""

    type: str
    take: Callable[[list[Any]], None]
    alone: Callable[[], None]
    placed: bool = False


def _listing(gw: Gateway, pending: Pending, types: list[str], riders: list[Rider]) -> None:
    """One listing call of the first wave: the apps' ``types`` and the riders' queries."""
    if not riders:
        pending.listed.update(list_metadata(gw, types))
        return
    asked = [*types, *(r.type for r in riders)]
    try:
        items: list[Any] | None = list_items(gw, asked)
    except (AuthenticationError, ConnectionFailure):
        raise  # the org or the session, not one query: the fetch fails as it would apart
    except SalesforceError:
        items = None
    if items is None:  # each again on its own, and each fails alone
        def apps_alone() -> None:
            pending.listed.update(list_metadata(gw, types))

        for ok, value in gw.together([apps_alone, *(r.alone for r in riders)]):
            if not ok:
                raise value
        return
    pending.listed.update(_rows(items, types))
    for rider in riders:
        rider.take([i for i in items if i.get("type") == rider.type])


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
    text = f"the {what} {read.names[0]!r} is not in this org"
    if read.namespace:
        namespaces = {(a.namespace or "").lower() for a in apps}
        text += f" in namespace {read.namespace!r}"
        if read.namespace.lower() not in namespaces:
            text += f" (no {what} of the org is in that namespace)"
    return text + f" (looked for by API name, namespaced name and display name: {names})"


_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass
class Pending:
    """What the first wave of a fetch read for the app reads, until ``finish`` resolves them."""

    reads: list[AppRead]
    listed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rows: list[dict[str, Any]] | None = None  # ConnectedApplication rows, read when needed
    early: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)


def _guesses(read: AppRead) -> set[str]:
    """Names worth reading in the first wave, beside the listing: an app is usually found
    under one of them, and then no second wave is needed. A guess is only ever a read; what
    is picked is decided from the listing and the components' fields."""
    out = set()
    for name in read.names:
        if _IDENT.match(name):
            out.add(name)
            if read.namespace and "__" not in name:
                out.add(f"{read.namespace}__{name}")
    return out


def _eca_guesses(app: str) -> dict[str, set[str]]:
    return {ECA_OAUTH: {f"{app}_oauth"}, ECA_GLOBAL: {f"{app}_glbloauth"},
            ECA_POLICY: {f"{app}_oauthPlcy", f"{app}_oauth_defaultPolicy"}}


def _component_reads(gw: Gateway, pending: Pending,
                     by_type: dict[str, set[str]]) -> list[Callable[[], Any]]:
    """One readMetadata call per type and batch of names, each keeping what it read."""
    calls: list[Callable[[], Any]] = []
    for type_, names in sorted(by_type.items()):
        ordered = sorted(names)
        for start in range(0, len(ordered), METADATA_PER_CALL):
            chunk = ordered[start:start + METADATA_PER_CALL]

            def read_chunk(t: str = type_, c: list[str] = chunk) -> None:
                for name, comp in zip(c, _read_metadata(gw, t, c), strict=True):
                    pending.early[(t, name)] = comp
            calls.append(read_chunk)
    return calls


def first_wave(gw: Gateway, reads: list[AppRead], riders: Sequence[Rider] = ()
               ) -> tuple[Pending, list[Callable[[], Any]]]:
    """The calls that go out in the fetch's one wave: the listings, the ConnectedApplication
    rows, the connected apps' SetupEntityAccess rows, and reads of the likely names. The
    ``riders`` that fit in the last listing call go in it (``Rider.placed``)."""
    pending = Pending(reads)
    types = sorted({CA if r.type == "connected_app" else ECA for r in reads})
    if any(r.type != "connected_app" for r in reads):
        types += list(ECA_PARTS)
    chunks = [types[s:s + LIST_QUERIES_PER_CALL]
              for s in range(0, len(types), LIST_QUERIES_PER_CALL)]
    riding = list(riders)[:LIST_QUERIES_PER_CALL - len(chunks[-1])] if chunks else []
    for rider in riding:
        rider.placed = True
    calls: list[Callable[[], Any]] = [
        partial(_listing, gw, pending, chunk, riding if i == len(chunks) - 1 else [])
        for i, chunk in enumerate(chunks)]
    guesses: dict[str, set[str]] = {}
    for read in reads:
        names = _guesses(read)
        guesses.setdefault(CA if read.type == "connected_app" else ECA, set()).update(names)
        if read.type != "connected_app":
            for name in names:
                for type_, parts in _eca_guesses(name).items():
                    guesses.setdefault(type_, set()).update(parts)
    calls += _component_reads(gw, pending, guesses)
    return pending, calls


def finish(gw: Gateway, pending: Pending, inv: Inventory) -> None:
    """Resolve every ``AppRead`` from the first wave; what is still unread (an app found under
    another name, ECA parts under other names) is read in one more wave."""
    listed = pending.listed
    ca_apps = _listed(listed.get(CA, []))
    eca_apps = _listed(listed.get(ECA, []))
    _read_missing(gw, pending, [(ECA, a.full_name) for a in eca_apps])
    for eca in eca_apps:  # an ECA's label and distributionState are on its header
        eca.label = str((pending.early.get((ECA, eca.full_name)) or {}).get("label") or "")
    found: dict[AppRead, tuple[_Listed, str]] = {}
    for read in sorted(pending.reads, key=repr):
        pool = ca_apps if read.type == "connected_app" else eca_apps
        app, how, ambiguous = _resolve(read, pool, None if read.type == "connected_app"
                                       else {a.full_name: a.label for a in eca_apps})
        if app is None and ambiguous is None and read.type == "connected_app":
            # no name matched: compare display names, the components' labels and the
            # ConnectedApplication rows' "Connected App Name" (object reference), matched
            # to the listing by id
            labels = _display_names(gw, pending, ca_apps)
            app, how, ambiguous = _resolve(read, pool, labels)
        if ambiguous is not None:
            inv.results[read] = ambiguous
        elif app is None:
            inv.results[read] = AppMissing(_missing_note(read, pool))
        else:
            found[read] = (app, how)
    _read_missing(gw, pending, [(CA if r.type == "connected_app" else ECA, a.full_name)
                                for r, (a, _) in found.items()])
    eca_names = {a.full_name for r, (a, _) in found.items() if r.type != "connected_app"}
    parts: dict[str, dict[str, str]] = {}
    if eca_names:
        _pick_parts(gw, pending, eca_names, parts)
    for (type_, name), comp in pending.early.items():
        inv.results.setdefault(MetadataRead(type_, name), comp)
    for read, (app, how) in found.items():
        state = None
        if read.type != "connected_app":
            state = str((pending.early.get((ECA, app.full_name)) or {})
                        .get("distributionState") or "Local")
        inv.results[read] = AppInfo(
            read.type, app.full_name, app.label, app.id, app.namespace, app.state, how,
            tuple((t, parts.get(app.full_name, {}).get(t)) for t in ECA_PARTS)
            if read.type != "connected_app" else (), state)


def _display_names(gw: Gateway, pending: Pending, apps: list[_Listed]) -> dict[str, str]:
    """fullName -> display names, the component's label first, then the row's Name (one
    more wave, only when no API name matched)."""
    calls: list[Callable[[], Any]] = [
        lambda: _read_missing(gw, pending, [(CA, a.full_name) for a in apps])]
    if pending.rows is None:
        pending.rows = []
        rows = pending.rows
        calls.append(lambda: rows.extend(_query(gw, "SELECT Id, Name FROM ConnectedApplication")))
    gw._wave(calls)
    names = {str(r.get("Id") or "")[:15]: str(r.get("Name") or "") for r in pending.rows}
    out = {}
    for a in apps:
        label = str((pending.early.get((CA, a.full_name)) or {}).get("label") or "")
        out[a.full_name] = label or names.get(a.id[:15], "")
        a.label = label or a.label
    return out


def _read_missing(gw: Gateway, pending: Pending, wanted: list[tuple[str, str]]) -> None:
    """Read, in one wave, the components of ``wanted`` the first wave did not."""
    by_type: dict[str, set[str]] = {}
    for type_, name in wanted:
        if (type_, name) not in pending.early:
            by_type.setdefault(type_, set()).add(name)
    calls = _component_reads(gw, pending, by_type)
    if calls:
        gw._wave(calls)


def _pick_parts(gw: Gateway, pending: Pending, eca_names: set[str],
                parts: dict[str, dict[str, str]]) -> None:
    """Each found ECA's settings and policies: the listed component whose
    ``externalClientApplication`` is the app (A11); the likely names were read already, the
    other listed components only when no likely one names the app."""
    def pick() -> set[tuple[str, str]]:
        wanting: set[tuple[str, str]] = set()
        for type_ in ECA_PARTS:
            listed = sorted(str(c["fullName"]) for c in pending.listed.get(type_, []))
            for name in listed:
                if (type_, name) not in pending.early:
                    continue
                owner = str((pending.early[(type_, name)] or {})
                            .get("externalClientApplication") or "")
                if owner in eca_names:
                    parts.setdefault(owner, {}).setdefault(type_, name)
            for app in eca_names:
                if type_ not in parts.get(app, {}):
                    wanting.update((type_, n) for n in listed
                                   if (type_, n) not in pending.early)
        return wanting

    unread = pick()
    if unread:
        _read_missing(gw, pending, sorted(unread))
        pick()
