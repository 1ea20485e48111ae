"""Executing a read plan (planner.py) through a session (session.py): the gateway's reads.

``fetch`` signs in, then sends one wave (waves.py) of the plan's composite, Tooling,
listMetadata and readMetadata calls, follows every page of every query and child sub-query
(U7), reads a profile's metadata again by its API name in a second wave where listMetadata gives
one (U3, U4, ADR 0021), and fills the plan's inventory. Also the single reads the facade offers
(``query``, ``read_metadata``, ``daily_api_requests``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any
from urllib.parse import quote

from remediate.errors import AuthenticationError, ConnectionFailure, SalesforceError
from remediate.salesforce import accessreads, apps, planner
from remediate.salesforce.errors import bad_answer, rest_error_details, scrub
from remediate.salesforce.planner import (
    METADATA_PER_CALL,
    Query,
    Scratch,
    _in,
    _profile_info,
)
from remediate.salesforce.session import Connection
from remediate.steps.base import (
    AppRead,
    Inventory,
    MetadataRead,
    OrgRead,
    PackageRead,
    ProfileRead,
    Read,
    ReadFailed,
)


def fetch(conn: Connection, reads: Iterable[Read]) -> Inventory:
    """Answer every read: sign in, then one wave of composite, Tooling, listMetadata and
    readMetadata calls.

    A Profile's metadata (its login IP ranges) is read whole with ``readMetadata`` under its
    metadata API name (platform-truth U3, U4): the Profile query (by Name) and
    ``listMetadata(Profile)`` go in the first wave, ``readMetadata`` in a second. Those reads
    fail alone (U5): a failure becomes a ``ReadFailed`` answer for the steps that need them.
    """
    wanted = set(reads)
    p = planner.plan(wanted)
    inv = p.inventory
    # object access, app rows and OAuth usage (accessreads.py): queries in the same composites,
    # describes in the same wave
    extra = accessreads.plan(conn, wanted, inv, p.queries)
    calls: list[Callable[[], Any]] = [partial(_run_composite, conn, batch)
                                      for batch in p.composites] + extra
    if p.packages:
        calls.append(partial(_read_packages, conn, p.packages, inv))
    for type_, names in p.metadata:
        calls.append(partial(_read_metadata_into, conn, type_, names, inv))
    listed: dict[str, Any] = {}
    early: dict[str, Any] = {}  # Profile components read under the names asked for
    # listMetadata(Profile) rides in the apps' listing call when it has room (apps.Rider)
    riders = [apps.Rider("Profile", partial(_take_profiles, conn, listed),
                         partial(_list_profiles, conn, listed))] if p.profiles else []
    app_reads = [r for r in wanted if isinstance(r, AppRead)]
    if app_reads:  # apps.py: found by listMetadata, not by a guessed name (issue 9)
        app_pending, app_calls = apps.first_wave(conn, app_reads, riders)
        calls.extend(app_calls)
    if p.profiles:
        if not riders[0].placed:
            calls.append(riders[0].alone)
        for chunk in p.profile_chunks:
            calls.append(partial(_read_profile_chunk, conn, chunk, early))
    if calls or p.org:
        conn._sign_in()  # before the wave: every call of it needs the session
        inv.api_version, inv.api_version_how = conn.version, conn.version_how
    if p.metadata or p.profiles or app_reads:
        conn.mdapi  # build the Metadata client once, before the wave  # noqa: B018
    if p.org and not conn._instance_is_my_domain():
        calls.append(partial(_read_my_domain, conn, p.scratch))
    conn._wave(calls)
    # a kept version the org no longer serves was re-negotiated during the wave (session.py)
    inv.api_version, inv.api_version_how = conn.version, conn.version_how
    if app_reads:
        apps.finish(conn, app_pending, inv)
    _profiles_by_api_name(conn, wanted, inv, listed)
    if p.profiles:
        _read_profiles(conn, p.profiles, inv, p.scratch.profile_rows, listed, early)
    if p.org:
        inv.results[OrgRead()] = planner.org_info(p.scratch, conn.instance_url)
    return inv


def _list_profiles(conn: Connection, out: dict[str, Any]) -> None:
    """``listMetadata(Profile)``: metadata API name by 15-character id (U4). A failure is
    kept in ``out['error']`` so the profile reads fail alone (U5)."""
    try:
        items = apps.list_items(conn, ["Profile"])
    except (AuthenticationError, ConnectionFailure):
        raise
    except SalesforceError as err:
        out["error"] = err.message
        return
    _take_profiles(conn, out, items)


def _take_profiles(conn: Connection, out: dict[str, Any], items: list[Any]) -> None:
    """The Profile file properties of a listing (this fetch's own call, or the apps' listing
    it rode in: ``apps.Rider``); one without an id fails the profile reads."""
    names: dict[str, str] = {}
    for raw in items:
        if not raw.get("id"):
            out["error"] = bad_answer(f"{conn.org_label}: listing Profile metadata",
                                      "file properties without an id").message
            return
        names[str(raw["id"])[:15]] = str(raw["fullName"])
    out["names"] = names


def _profiles_by_api_name(conn: Connection, wanted: set[Read], inv: Inventory,
                          listed: dict[str, Any]) -> None:
    """Profiles named by their metadata API name (``Admin``) rather than their Name: the
    Profile query by Name found none, so map the API name through ``listMetadata`` (U4)."""
    missing = planner.profiles_missing(wanted, inv)
    if not missing:
        return
    if "names" not in listed and "error" not in listed:
        _list_profiles(conn, listed)
    ids = {name: pid for pid, name in (listed.get("names") or {}).items()}
    found = {name: ids[name] for name in missing if name in ids}
    if not found:
        return
    records = query(conn, planner.PROFILES_BY_ID_SOQL.format(_in(sorted(found.values()))))
    by_id = {str(r["Id"])[:15]: r for r in records}
    for name, pid in found.items():
        r = by_id.get(pid)
        inv.results[ProfileRead(name)] = None if r is None else _profile_info(r)


def _read_profile_chunk(conn: Connection, chunk: list[str], got: dict[str, Any]) -> None:
    """readMetadata(Profile) of ``chunk``; a failure is kept per name (U5)."""
    try:
        got.update(zip(chunk, read_metadata(conn, "Profile", chunk), strict=True))
    except (AuthenticationError, ConnectionFailure):
        raise
    except SalesforceError as err:
        got.update({n: ReadFailed(f"reading profile {n!r} failed: {err.message}")
                    for n in chunk})


def _read_profiles(conn: Connection, names: list[str], inv: Inventory,
                   rows: dict[str, dict[str, Any]], listed: dict[str, Any],
                   early: dict[str, Any]) -> None:
    """Each requested profile's whole metadata under its API name. The first wave read
    each under the name asked for (most custom profiles' API name is their Name); a
    profile whose API name ``listMetadata`` gives differently is read again by it, in a
    second wave. Stored under the name asked for and under the API name (the name a write
    addresses)."""
    if "error" in listed:
        for name in names:
            inv.results[MetadataRead("Profile", name)] = ReadFailed(
                f"reading profile {name!r} failed: {listed['error']}")
        return
    api_names: dict[str, str] = listed.get("names") or {}
    known = set(api_names.values())
    full: dict[str, str] = {}
    for name in names:
        row = rows.get(name)
        if row is not None and str(row["Id"])[:15] in api_names:  # a Name wins
            full[name] = api_names[str(row["Id"])[:15]]
        elif name in known:
            full[name] = name
        else:
            inv.results[MetadataRead("Profile", name)] = None
    got = {n: early[n] for n in set(full.values()) if n in early}
    ordered = sorted(set(full.values()) - set(got))
    if ordered:
        conn._wave([partial(_read_profile_chunk, conn, ordered[s:s + METADATA_PER_CALL], got)
                    for s in range(0, len(ordered), METADATA_PER_CALL)])
    for name, api_name in full.items():
        inv.results[MetadataRead("Profile", name)] = got.get(api_name)
        inv.results[MetadataRead("Profile", api_name)] = got.get(api_name)


def _read_metadata_into(conn: Connection, type_: str, names: list[str], inv: Inventory) -> None:
    for name, record in zip(names, read_metadata(conn, type_, names), strict=True):
        inv.results[MetadataRead(type_, name)] = record


def _run_composite(conn: Connection, queries: list[Query]) -> None:
    if not queries:
        return
    def body() -> dict[str, Any]:  # at the version of the attempt (it may be re-negotiated)
        base = f"/services/data/v{conn.version}"
        return {"allOrNone": False, "compositeRequest": [
            {"method": "GET", "url": f"{base}/query/?q={quote(soql, safe='')}",
             "referenceId": f"q{i}"} for i, (soql, _) in enumerate(queries)]}

    answer = conn._call("reading the org (composite query)",
                        lambda: conn.sf.restful("composite", method="POST", json=body()))
    subs = answer.get("compositeResponse") if isinstance(answer, dict) else None
    if not isinstance(subs, list) or len(subs) != len(queries) or \
            not all(isinstance(sub, dict) for sub in subs):
        raise bad_answer(f"{conn.org_label}: reading the org (composite query)",
                         "no compositeResponse with one answer per query")
    for (soql, done), sub in zip(queries, subs, strict=True):
        status = sub.get("httpStatusCode")
        if status != 200:
            code, message = rest_error_details(sub.get("body"))
            raise SalesforceError(scrub(f"{conn.org_label}: query failed: {code}: {message} "
                                        f"({soql[:80]}...)"), code=code)
        result = sub.get("body")
        if not isinstance(result, dict) or not isinstance(result.get("records"), list):
            raise bad_answer(f"{conn.org_label}: query ({soql[:60]}...)", "no records")
        records = _all_pages(conn, result)
        for record in records:
            _all_children(conn, record)
        done(records)


def _all_pages(conn: Connection, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of a query result and of every page after it (``nextRecordsUrl``)."""
    records = list(result.get("records") or [])
    next_url = result.get("nextRecordsUrl") if result.get("done") is not True else None
    while next_url:
        page: dict[str, Any] = conn._call(
            "reading the next page of a query",
            partial(conn._sf_call, "query_more", next_url, identifier_is_url=True))
        if not isinstance(page, dict) or not isinstance(page.get("records"), list):
            raise bad_answer(f"{conn.org_label}: reading the next page of a query",
                             "not a query result")
        records.extend(page["records"])
        next_url = page.get("nextRecordsUrl") if page.get("done") is not True else None
    return records


def _all_children(conn: Connection, record: dict[str, Any]) -> None:
    """A child sub-query returns one batch of children; the rest follow its
    ``nextRecordsUrl`` (platform-truth U7)."""
    for key, value in record.items():
        if isinstance(value, dict) and isinstance(value.get("records"), list) \
                and value.get("nextRecordsUrl") and value.get("done") is not True:
            record[key] = {**value, "records": _all_pages(conn, value), "done": True}


def _read_packages(conn: Connection, reads: list[PackageRead], inv: Inventory) -> None:
    soql = planner.PACKAGES_SOQL
    answer = conn._call("reading installed packages (Tooling)",
                        lambda: conn.sf.toolingexecute(f"query/?q={quote(soql, safe='')}"))
    if not isinstance(answer, dict) or not isinstance(answer.get("records"), list):
        raise bad_answer(f"{conn.org_label}: reading installed packages (Tooling)",
                         "not a query result")
    by_ns = planner.packages_by_namespace(answer.get("records", []))
    for read in reads:
        inv.results[read] = by_ns.get(read.namespace.lower())


def _read_my_domain(conn: Connection, scratch: Scratch) -> None:
    info = conn._call("reading the org's My Domain (userinfo)",
                      lambda: conn.sf.oauth2("userinfo", None, method="GET"))
    urls = info.get("urls") if isinstance(info, dict) else None
    scratch.my_domain = str((urls if isinstance(urls, dict) else {})
                            .get("custom_domain") or conn.instance_url)


def daily_api_requests(conn: Connection) -> tuple[int, int]:
    """(Remaining, Max) of the org's rolling 24-hour API allowance: ``DailyApiRequests`` in
    ``GET /services/data/vXX.X/limits`` (REST API Developer Guide, "Limits")."""
    data = conn._call("reading the org's API allowance (/limits)",
                      partial(conn._sf_call, "restful", "limits/"))
    entry = data.get("DailyApiRequests") if isinstance(data, dict) else None
    try:
        return int(entry["Remaining"]), int(entry["Max"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        raise SalesforceError(f"{conn.org_label}: /limits has no DailyApiRequests "
                              "Remaining/Max; refusing to apply without knowing the "
                              "allowance") from None


def read_metadata(conn: Connection, type_: str, names: list[str]) -> list[dict[str, Any] | None]:
    from zeep.helpers import serialize_object

    def call() -> tuple[Any, bool]:
        from remediate.salesforce import soapread  # lxml: imported when a call needs it

        return soapread.read(conn.mdapi, type_, names)

    result, plain = conn._call(f"reading {type_} metadata", call)
    items = result if isinstance(result, list) else [result]
    if len(items) != len(names):
        raise bad_answer(f"{conn.org_label}: reading {type_} metadata",
                         f"{len(items)} record(s) for {len(names)} name(s)")
    out: list[dict[str, Any] | None] = []
    for item in items:
        raw = item if plain else serialize_object(item)  # type: ignore[no-untyped-call]
        if isinstance(raw, dict) and raw.get("_raw_elements") and not raw.get("fullName"):
            # zeep keeps what it could not map: an answer of another shape, not a record
            # (a missing component reads back as an empty record of the type)
            raise bad_answer(f"{conn.org_label}: reading {type_} metadata",
                             "elements that are not a metadata record")
        data = _plain(raw)
        out.append(data if isinstance(data, dict) and data.get("fullName") else None)
    return out


def query(conn: Connection, soql: str) -> list[dict[str, Any]]:
    answer = conn._call("querying the org", lambda: conn.sf.query_all(soql))
    if not isinstance(answer, dict) or not isinstance(answer.get("records"), list):
        raise bad_answer(f"{conn.org_label}: querying the org", "not a query result")
    return list(answer.get("records", []))


def _plain(value: Any) -> Any:
    """zeep's serialised objects as plain dicts/lists, without empty values."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _plain(v)
            if v is None or v == []:
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def validate_deploy(conn: Connection, zip_bytes: bytes, *, polls: int,
                    wait_s: float) -> dict[str, Any]:
    """A validation-only deploy of ``zip_bytes`` (DeployOptions ``checkOnly``: "perform a test
    deployment (validation) of components without saving the components in the target org",
    Metadata API DeployOptions), polled with checkDeployStatus at most ``polls`` times:
    ``{"done", "status", "id", "failures": [problem, ...]}``. Nothing is saved, so it runs under
    the read policy (sent again freely). For ``remediate doctor`` (ADR 0042)."""
    import time

    from zeep.helpers import serialize_object

    def field_of(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)

    def result_of(answer: Any) -> Any:  # zeep answers {header, body} when there is a header
        body = field_of(answer, "body")
        return field_of(body, "result") if body is not None else answer

    md = conn.mdapi
    options = {"allowMissingFiles": False, "autoUpdatePackage": False, "checkOnly": True,
               "ignoreWarnings": False, "performRetrieve": False, "purgeOnDelete": False,
               "rollbackOnError": True, "runAllTests": False, "singlePackage": True,
               "testLevel": "NoTestRun"}
    started = result_of(serialize_object(conn._call(  # type: ignore[no-untyped-call]
        "validating a deploy (checkOnly, nothing is saved)",
        lambda: md._service.deploy(zip_bytes, options, _soapheaders=[md._session_header]))))
    job = str(field_of(started, "id") or "")
    result: Any = None
    for poll in range(polls):
        if poll:
            time.sleep(wait_s)
        result = result_of(serialize_object(conn._call(  # type: ignore[no-untyped-call]
            "checking the validation (checkDeployStatus)",
            lambda: md._service.checkDeployStatus(job, True,
                                                  _soapheaders=[md._session_header]))))
        if field_of(result, "done"):
            break
    details = field_of(result, "details") or {}
    failures = field_of(details, "componentFailures") or []
    failures = failures if isinstance(failures, list) else [failures]
    return {"done": bool(field_of(result, "done")),
            "status": str(field_of(result, "status") or ""), "id": job,
            "failures": [str(field_of(f, "problem") or "") for f in failures]}
