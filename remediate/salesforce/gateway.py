"""The gateway: authentication, batched reads, batched writes, token probes, retries.

Nothing else in remediate talks to Salesforce. Reads arrive as a set of read requests from every
step of every playbook; the gateway answers them in as few round trips as the APIs allow:

* all SOQL in ``composite`` requests (at most 5 queries each, Salesforce's limit for query
  subrequests), queries on one object merged into one with an IN list;
* metadata in one ``readMetadata`` per type per 10 names;
* Tooling in one query;
* a profile's login IP ranges from the Profile query, not ``readMetadata`` (ADR 0010);
* after signing in, all of those calls in one *wave* (``waves.py``): sent together, at most
  ``parallel`` at a time, so a read waits for two round trips (token, wave) whatever the
  playbooks hold. ``round_trips`` counts requests sent; ``rounds`` counts the round trips of
  latency they cost (a wave of n calls: ceil(n / parallel)).

Writes come as batches of plain ``RecordWrite``/``MetadataWrite`` values: rows through
``composite/sobjects`` with allOrNone (200 per request), metadata through ``upsertMetadata`` (10
per request), read-modify-write on the component the same run read.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests

from remediate.errors import AuthenticationError, OutcomeUnknown, SalesforceError
from remediate.logging import get_logger
from remediate.salesforce import retry as retries
from remediate.salesforce import waves
from remediate.salesforce.errors import (
    TruncatedAnswer,
    bad_answer,
    map_exception,
    rest_error_details,
    scrub,
)
from remediate.salesforce.retry import RetryPolicy, WriteKind, call_with_retries, maybe_applied
from remediate.steps.base import (
    AssignedSet,
    Inventory,
    LicenseInfo,
    LicenseRead,
    MetadataRead,
    OrgInfo,
    OrgRead,
    PackageInfo,
    PackageRead,
    PermissionSetInfo,
    PermissionSetRead,
    ProfileInfo,
    ProfileRead,
    Read,
    UserInfo,
    UserRead,
)

API_VERSION = "59.0"
QUERIES_PER_COMPOSITE = 5
METADATA_PER_CALL = 10
ROWS_PER_CALL = 200
DEFAULT_TIMEOUT = 30.0
T = TypeVar("T")
log = get_logger()


class TimeoutSession(requests.Session):
    """A requests session that never waits forever: every request gets a timeout."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:  # zeep passes timeout=None explicitly
            kwargs["timeout"] = self.default_timeout
        if isinstance(self.verify, str):
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's CA bundle;
            # an org's configured ca_bundle must win, so pass it per request.
            kwargs.setdefault("verify", self.verify)
        response = super().request(method, url, *args, **kwargs)
        _check_complete(response)
        return response


def pooled(session: requests.Session, parallel: int) -> requests.Session:
    """``session`` with kept-alive connection pools big enough for a wave: REST, Tooling and SOAP
    calls of one gateway all go through this one session, so each host gets one pool. requests'
    default keeps at most 10 connections per host and drops the rest after use; a wave of more
    than 10 calls would then open new TLS connections every time (issue 17)."""
    from requests.adapters import HTTPAdapter

    size = max(10, parallel)
    session.mount("https://", HTTPAdapter(pool_connections=10, pool_maxsize=size))
    session.mount("http://", HTTPAdapter(pool_connections=10, pool_maxsize=size))
    return session


def _check_complete(response: requests.Response) -> None:
    """Refuse a SOAP answer cut short. zeep parses leniently (simple-salesforce turns strict
    mode off), so half an envelope would read as a component with fields missing, and a
    read-modify-write would then erase them. Truncated JSON fails to parse by itself."""
    if "xml" not in response.headers.get("Content-Type", "").lower() or not response.content:
        return
    if not response.content.rstrip().endswith(b"Envelope>"):
        raise TruncatedAnswer(f"HTTP {response.status_code}: the SOAP answer ends before its "
                              "envelope does")


@dataclass
class Credentials:
    """How remediate itself signs in. Secret values are held only here, never logged."""

    auth: str  # client_credentials | jwt | access_token
    login_url: str
    client_id: str | None = None
    client_secret: str | None = None
    username: str | None = None
    private_key: str | None = None
    access_token: str | None = None
    instance_url: str | None = None

    def __repr__(self) -> str:  # never show secrets, even in a debugger or a traceback
        return f"Credentials(auth={self.auth!r}, login_url={self.login_url!r})"


@dataclass(frozen=True)
class TokenResult:
    ok: bool
    status: int
    error: str | None = None
    error_description: str | None = None
    instance_url: str | None = None
    api_status: int | None = None  # the follow-up REST call made with the token
    api_error: str | None = None


@dataclass(frozen=True)
class IntegrationLogin:
    """An integration's own credentials, for ``verify``: what the external system sends."""

    name: str
    flow: str  # client_credentials | jwt_bearer
    client_id: str
    client_secret: str | None = None
    username: str | None = None
    private_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"IntegrationLogin(name={self.name!r}, flow={self.flow!r})"


class Gateway:
    def __init__(self, credentials: Credentials, *, session: requests.Session | None = None,
                 ca_bundle: str | None = None, version: str = API_VERSION,
                 timeout: float = DEFAULT_TIMEOUT, org_label: str = "org",
                 retry: RetryPolicy | None = None,
                 parallel: int = waves.DEFAULT_PARALLEL) -> None:
        self._creds = credentials
        self.retry = retry if retry is not None else retries.DEFAULT_POLICY
        self._session = session or pooled(TimeoutSession(timeout), parallel)
        if ca_bundle:
            self._session.verify = ca_bundle
        self.version = version
        self.org_label = org_label
        self._sf: Any = None
        self._md: tuple[Any, Any] | None = None  # (the connection, its Metadata client)
        self._lock = threading.RLock()
        self.parallel = max(1, parallel)
        self.full_metadata = False  # fetch whole components (a run that will write them)
        self.round_trips = 0  # requests sent
        self.rounds = 0  # round trips of latency: a wave counts once per ``parallel`` calls

    def _count(self) -> None:
        """One request sent; outside a wave it is also one round trip of latency."""
        with self._lock:
            self.round_trips = self.round_trips + 1
            if not waves.inside():
                self.rounds += 1

    def _wave(self, calls: list[Callable[[], Any]], *, hops: int = 1) -> list[Any]:
        """Run independent calls as one wave; ``hops`` is how many requests each call makes one
        after another (a token request then its API call is 2), for the round-trip count."""
        if not waves.inside():  # a wave inside a wave waits within the outer one's rounds
            with self._lock:
                self.rounds += waves.rounds_for(len(calls), self.parallel) * hops
        return waves.run_wave(calls, self.parallel)

    def together(self, calls: Sequence[Callable[[], Any]], *,
                 hops: int = 1) -> list[tuple[bool, Any]]:
        """Independent calls (writes of different metadata types, integration sign-ins) as one
        wave. Every call's own outcome comes back, (True, result) or (False, exception), so the
        caller can journal each one truthfully when some fail."""
        def capture(call: Callable[[], Any]) -> Callable[[], tuple[bool, Any]]:
            def run() -> tuple[bool, Any]:
                try:
                    return True, call()
                except Exception as exc:  # handed back to the caller, in call order
                    return False, exc
            return run

        if len(calls) == 1:
            return [capture(calls[0])()]
        return self._wave([capture(c) for c in calls], hops=hops)

    # ---- connection --------------------------------------------------------------------

    @property
    def sf(self) -> Any:
        with self._lock:
            if self._sf is None:
                self._sf = self._connect()
            return self._sf

    def _connect(self) -> Any:
        from simple_salesforce.api import Salesforce

        c = self._creds
        host = (urlsplit(c.login_url).hostname or "").lower()
        domain = host.removesuffix(".salesforce.com")
        what = f"{self.org_label}: signing in ({c.auth}) at {c.login_url}"
        try:
            if c.auth == "access_token":
                sf = Salesforce(session_id=c.access_token, instance_url=c.instance_url or
                                c.login_url, session=self._session, version=self.version)
            elif c.auth == "client_credentials":
                if not host.endswith(".salesforce.com") or domain in ("login", "test"):
                    raise AuthenticationError(
                        f"{what}: the client credentials flow needs the org's My Domain URL "
                        "(https://<name>.my.salesforce.com), not login/test.salesforce.com")
                self._count()
                sf = Salesforce(consumer_key=c.client_id, consumer_secret=c.client_secret,
                                domain=domain, session=self._session, version=self.version)
            elif c.auth == "jwt":
                self._count()
                sf = Salesforce(username=c.username, consumer_key=c.client_id,
                                privatekey=c.private_key, domain=domain, session=self._session,
                                version=self.version)
            else:
                raise AuthenticationError(f"{what}: unknown auth mode {c.auth!r}")
        except Exception as exc:
            raise map_exception(exc, what=what) from None
        # simple-salesforce signs in again by itself on a REST 401 (up to three times) but not
        # for SOAP; one policy for both lives in _call instead (ADR 0009).
        sf._salesforce_login_partial = None
        return sf

    def _session_expired(self, used: Any) -> bool:
        """Drop the expired connection ``used`` so the next call signs in again; False if we
        cannot. Calls of one wave that meet the same expiry sign in once: a connection another
        call has already replaced is kept."""
        if self._creds.auth == "access_token":
            return False
        with self._lock:
            if used is None or self._sf is used:
                self._sf = None
        return True

    @property
    def mdapi(self) -> Any:
        """simple-salesforce's Metadata client for the current connection, on this gateway's
        session (ADR 0007), built on the Metadata WSDL parsed once per process (ADR 0010)."""
        with self._lock:
            sf = self.sf
            if self._md is None or self._md[0] is not sf:
                from remediate.salesforce import mdclient

                self._md = (sf, mdclient.metadata_api(sf, self._session))
            return self._md[1]

    def _call(self, what: str, fn: Callable[[], T], *, write: WriteKind | None = None) -> T:
        """One logical call, under the retry policy (retry.py). ``write`` marks a write:
        ``insert`` is never repeated when it may have been committed; after an ``idempotent``
        write fails that way, the error says its outcome is unknown."""
        label = f"{self.org_label}: {what}"
        used: list[Any] = [None]  # the connection the last attempt ran on

        def attempt() -> T:
            self._count()
            used[0] = self._sf
            try:
                return fn()
            except Exception as exc:
                used[0] = used[0] or self._sf
                raise map_exception(exc, what=label) from None

        def retrying(err: SalesforceError, attempt_number: int, wait_s: float) -> None:
            log.info("gateway.retry", call=label, code=err.code, attempt=attempt_number,
                     wait_s=round(wait_s, 3), error=err.message)

        try:
            return call_with_retries(self.retry, attempt,
                                     reauthenticate=lambda: self._session_expired(used[0]),
                                     write=write, on_retry=retrying)
        except SalesforceError as err:
            if write is not None and maybe_applied(err):
                raise OutcomeUnknown(f"{err.message}; the write may or may not have been "
                                     "applied", code=err.code) from None
            raise err from None

    def _sf_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``self.sf.<method>(...)``, looked up at call time: after an expired session the
        next attempt runs on the new connection."""
        return getattr(self.sf, name)(*args, **kwargs)

    @property
    def instance_url(self) -> str:
        return f"https://{self.sf.sf_instance}"

    # ---- reads -------------------------------------------------------------------------

    def fetch(self, reads: Iterable[Read], *, full_metadata: bool | None = None) -> Inventory:
        """Answer every read: sign in, then one wave of composite, Tooling and readMetadata calls.

        A Profile's metadata is answered from the Profile query (its name and login IP ranges,
        the parts steps read), marked ``_partial``; ``full_metadata`` (default: the gateway's
        ``full_metadata``) reads whole components with ``readMetadata`` instead, for a run that
        will write them back. ``upsert_metadata`` completes a partial component before writing.
        """
        whole = self.full_metadata if full_metadata is None else full_metadata
        wanted = set(reads)
        inv = Inventory()
        soql_profiles = set() if whole else {
            r.full_name for r in wanted if isinstance(r, MetadataRead) and r.type == "Profile"}
        queries: list[tuple[str, Callable[[list[dict[str, Any]]], None]]] = []
        self._plan_queries(wanted, inv, queries, soql_profiles)
        calls: list[Callable[[], Any]] = []
        for start in range(0, len(queries), QUERIES_PER_COMPOSITE):
            calls.append(partial(self._run_composite,
                                 queries[start:start + QUERIES_PER_COMPOSITE]))
        packages = [r for r in wanted if isinstance(r, PackageRead)]
        if packages:
            calls.append(partial(self._read_packages, packages, inv))
        by_type: dict[str, set[str]] = {}
        for r in wanted:
            if isinstance(r, MetadataRead) and not (r.type == "Profile"
                                                    and r.full_name in soql_profiles):
                by_type.setdefault(r.type, set()).add(r.full_name)
        for type_, names in sorted(by_type.items()):
            ordered = sorted(names)
            for start in range(0, len(ordered), METADATA_PER_CALL):
                calls.append(partial(self._read_metadata_into, type_,
                                     ordered[start:start + METADATA_PER_CALL], inv))
        org_wanted = OrgRead() in wanted
        if calls or org_wanted:
            self._sign_in()  # before the wave: every call of it needs the session
        if by_type:
            self.mdapi  # build the Metadata client once, before the wave  # noqa: B018
        if org_wanted and not self._instance_is_my_domain():
            calls.append(partial(self._read_my_domain, inv))
        self._wave(calls)
        if org_wanted:
            self._finish_org(inv)
        return inv

    def _sign_in(self) -> None:
        """Sign in now (if not yet), under the same retry policy as a call that signs in."""
        if self._sf is not None:
            return

        def retrying(err: SalesforceError, attempt_number: int, wait_s: float) -> None:
            log.info("gateway.retry", call=f"{self.org_label}: signing in", code=err.code,
                     attempt=attempt_number, wait_s=round(wait_s, 3), error=err.message)

        call_with_retries(self.retry, lambda: self.sf, on_retry=retrying)

    def _read_metadata_into(self, type_: str, names: list[str], inv: Inventory) -> None:
        for name, record in zip(names, self.read_metadata(type_, names), strict=True):
            inv.results[MetadataRead(type_, name)] = record

    def _plan_queries(self, wanted: set[Read], inv: Inventory,
                      queries: list[tuple[str, Callable[[list[dict[str, Any]]], None]]],
                      soql_profiles: set[str]) -> None:
        users = sorted({r.username for r in wanted if isinstance(r, UserRead)})
        if users:
            queries.append(_lookup(
                inv, users, UserRead, "Username", _user,
                "SELECT Id, Username, IsActive, ProfileId, Profile.Name, "
                "Profile.PermissionsApiEnabled, "
                "(SELECT Id, PermissionSetId, PermissionSet.Name, PermissionSet.IsOwnedByProfile, "
                "PermissionSet.PermissionsApiEnabled FROM PermissionSetAssignments), "
                "(SELECT Id, PermissionSetLicense.DeveloperName FROM "
                "PermissionSetLicenseAssignments) "
                f"FROM User WHERE Username IN ({_in(users)})",
                fold=str.lower))  # usernames are case-insensitive
        sets = sorted({r.name for r in wanted if isinstance(r, PermissionSetRead)})
        if sets:
            queries.append(_lookup(
                inv, sets, PermissionSetRead, "Name",
                lambda r: PermissionSetInfo(r["Id"], r["Name"], r.get("Label") or r["Name"],
                                            (r.get("License") or {}).get("DeveloperName"),
                                            bool(r.get("PermissionsApiEnabled"))),
                "SELECT Id, Name, Label, License.DeveloperName, PermissionsApiEnabled "
                f"FROM PermissionSet WHERE IsOwnedByProfile = false AND Name IN ({_in(sets)})"))
        licenses = sorted({r.developer_name for r in wanted if isinstance(r, LicenseRead)})
        if licenses:
            queries.append(_lookup(
                inv, licenses, LicenseRead, "DeveloperName",
                lambda r: LicenseInfo(r["Id"], r["DeveloperName"], r.get("MasterLabel") or "",
                                      r.get("TotalLicenses"), r.get("UsedLicenses")),
                "SELECT Id, DeveloperName, MasterLabel, TotalLicenses, UsedLicenses FROM "
                f"PermissionSetLicense WHERE DeveloperName IN ({_in(licenses)})"))
        by_name = {r.name for r in wanted if isinstance(r, ProfileRead)}
        profiles = sorted(by_name | soql_profiles)
        if profiles:
            ranges = ("(SELECT StartAddress, EndAddress, Description FROM LoginIpRanges) "
                      if soql_profiles else "")
            soql = (f"SELECT Id, Name, PermissionsApiEnabled{', ' if ranges else ' '}{ranges}"
                    f"FROM Profile WHERE Name IN ({_in(profiles)})")

            def profiles_done(records: list[dict[str, Any]]) -> None:
                found = {r["Name"]: r for r in records}
                for name in profiles:
                    r = found.get(name)
                    if name in by_name:
                        inv.results[ProfileRead(name)] = None if r is None else ProfileInfo(
                            r["Id"], r["Name"], bool(r.get("PermissionsApiEnabled")))
                    if name in soql_profiles:
                        inv.results[MetadataRead("Profile", name)] = None if r is None else \
                            _profile_component(r)

            queries.append((soql, profiles_done))
        if OrgRead() in wanted:
            def org_done(records: list[dict[str, Any]]) -> None:
                inv.results["_organization"] = records[0] if records else {}

            queries.append(("SELECT Id, Name, IsSandbox, InstanceName FROM Organization",
                            org_done))

    def _run_composite(self, queries: list[tuple[str, Callable[[list[dict[str, Any]]],
                                                                None]]]) -> None:
        if not queries:
            return
        base = f"/services/data/v{self.version}"
        body = {"allOrNone": False, "compositeRequest": [
            {"method": "GET", "url": f"{base}/query/?q={quote(soql, safe='')}",
             "referenceId": f"q{i}"} for i, (soql, _) in enumerate(queries)]}
        answer = self._call("reading the org (composite query)",
                            lambda: self.sf.restful("composite", method="POST", json=body))
        subs = answer.get("compositeResponse") if isinstance(answer, dict) else None
        if not isinstance(subs, list) or len(subs) != len(queries) or \
                not all(isinstance(sub, dict) for sub in subs):
            raise bad_answer(f"{self.org_label}: reading the org (composite query)",
                             "no compositeResponse with one answer per query")
        for (soql, done), sub in zip(queries, subs, strict=True):
            status = sub.get("httpStatusCode")
            if status != 200:
                code, message = rest_error_details(sub.get("body"))
                raise SalesforceError(scrub(f"{self.org_label}: query failed: {code}: {message} "
                                            f"({soql[:80]}...)"), code=code)
            result = sub.get("body")
            if not isinstance(result, dict) or not isinstance(result.get("records"), list):
                raise bad_answer(f"{self.org_label}: query ({soql[:60]}...)", "no records")
            records = list(result.get("records", []))
            next_url = result.get("nextRecordsUrl")
            while next_url:
                page: dict[str, Any] = self._call(
                    "reading the next page of a query",
                    partial(self._sf_call, "query_more", next_url, identifier_is_url=True))
                if not isinstance(page, dict):
                    raise bad_answer(f"{self.org_label}: reading the next page of a query",
                                     "not a query result")
                records.extend(page.get("records", []))
                next_url = page.get("nextRecordsUrl")
            done(records)

    def _read_packages(self, reads: list[PackageRead], inv: Inventory) -> None:
        soql = ("SELECT Id, SubscriberPackageId, SubscriberPackage.Name, "
                "SubscriberPackage.NamespacePrefix, SubscriberPackageVersionId, "
                "SubscriberPackageVersion.MajorVersion, SubscriberPackageVersion.MinorVersion, "
                "SubscriberPackageVersion.PatchVersion, SubscriberPackageVersion.BuildNumber "
                "FROM InstalledSubscriberPackage")
        answer = self._call("reading installed packages (Tooling)",
                            lambda: self.sf.toolingexecute(f"query/?q={quote(soql, safe='')}"))
        if not isinstance(answer, dict) or not isinstance(answer.get("records"), list):
            raise bad_answer(f"{self.org_label}: reading installed packages (Tooling)",
                             "not a query result")
        by_ns: dict[str, PackageInfo] = {}
        for r in answer.get("records", []):
            pkg = r.get("SubscriberPackage") or {}
            ver = r.get("SubscriberPackageVersion") or {}
            ns = pkg.get("NamespacePrefix") or ""
            version = ".".join(str(ver.get(k, 0)) for k in ("MajorVersion", "MinorVersion",
                                                             "PatchVersion", "BuildNumber"))
            by_ns[ns.lower()] = PackageInfo(ns, pkg.get("Name") or ns,
                                            r.get("SubscriberPackageVersionId") or "", version)
        for read in reads:
            inv.results[read] = by_ns.get(read.namespace.lower())

    def known_my_domain(self) -> str | None:
        """The org's My Domain URL when signing in told it (the instance URL is the My Domain),
        else None: then only a read (userinfo) can tell."""
        self._sign_in()
        return self.instance_url.rstrip("/") if self._instance_is_my_domain() else None

    def _instance_is_my_domain(self) -> bool:
        """For a My Domain org the token's instance URL is the My Domain URL (reference 4.9):
        then no call is needed to learn it."""
        return (urlsplit(self.instance_url).hostname or "").endswith(".my.salesforce.com")

    def _read_my_domain(self, inv: Inventory) -> None:
        info = self._call("reading the org's My Domain (userinfo)",
                          lambda: self.sf.oauth2("userinfo", None, method="GET"))
        urls = info.get("urls") if isinstance(info, dict) else None
        inv.results["_my_domain"] = str((urls if isinstance(urls, dict) else {})
                                        .get("custom_domain") or self.instance_url)

    def _finish_org(self, inv: Inventory) -> None:
        row = inv.results.pop("_organization", {})
        my_domain = str(inv.results.pop("_my_domain", self.instance_url))
        inv.results[OrgRead()] = OrgInfo(row.get("Id", ""), row.get("Name", ""),
                                         bool(row.get("IsSandbox")),
                                         row.get("InstanceName") or "", my_domain.rstrip("/"))

    def read_metadata(self, type_: str, names: list[str]) -> list[dict[str, Any] | None]:
        from zeep.helpers import serialize_object

        def call() -> Any:
            return getattr(self.mdapi, type_).read(names)

        result = self._call(f"reading {type_} metadata", call)
        items = result if isinstance(result, list) else [result]
        if len(items) != len(names):
            raise bad_answer(f"{self.org_label}: reading {type_} metadata",
                             f"{len(items)} record(s) for {len(names)} name(s)")
        out: list[dict[str, Any] | None] = []
        for item in items:
            raw = serialize_object(item)  # type: ignore[no-untyped-call]
            if isinstance(raw, dict) and raw.get("_raw_elements") and not raw.get("fullName"):
                # zeep keeps what it could not map: an answer of another shape, not a record
                # (a missing component reads back as an empty record of the type)
                raise bad_answer(f"{self.org_label}: reading {type_} metadata",
                                 "elements that are not a metadata record")
            data = _plain(raw)
            out.append(data if isinstance(data, dict) and data.get("fullName") else None)
        return out

    def query(self, soql: str) -> list[dict[str, Any]]:
        answer = self._call("querying the org", lambda: self.sf.query_all(soql))
        if not isinstance(answer, dict) or not isinstance(answer.get("records"), list):
            raise bad_answer(f"{self.org_label}: querying the org", "not a query result")
        return list(answer.get("records", []))

    # ---- writes ------------------------------------------------------------------------

    def insert_rows(self, sobject: str, rows: list[dict[str, Any]]) -> list[str]:
        """Insert rows all-or-none; returns the new ids.

        An insert is not idempotent: sent twice, it makes two rows or fails DUPLICATE_VALUE.
        When a request fails in a way that leaves its outcome open (the connection dropped
        after sending, a read timeout, an unreadable answer), the gateway does not send it
        again blindly: it reads which of the rows now exist, and inserts only the missing ones
        (ADR 0009). Rows found that way count as inserted by this call.
        """
        ids: list[str] = []
        for start in range(0, len(rows), ROWS_PER_CALL):
            ids.extend(self._insert_chunk(sobject, rows[start:start + ROWS_PER_CALL]))
        return ids

    def _insert_chunk(self, sobject: str, rows: list[dict[str, Any]]) -> list[str]:
        found: dict[int, str] = {}
        last: SalesforceError | None = None
        for _ in range(max(1, self.retry.attempts)):
            missing = [i for i in range(len(rows)) if i not in found]
            if not missing:
                break
            chunk = [rows[i] for i in missing]
            body = {"allOrNone": True,
                    "records": [{"attributes": {"type": sobject}, **r} for r in chunk]}
            try:
                answer = self._call(f"inserting {len(chunk)} {sobject} row(s)",
                                    partial(self._sf_call, "restful", "composite/sobjects",
                                            method="POST", json=body),
                                    write="insert")
                for i, new_id in zip(missing, self._collection_ids(sobject, answer), strict=True):
                    found[i] = new_id
                return [found[i] for i in range(len(rows))]
            except SalesforceError as err:
                if not maybe_applied(err):
                    raise
                last = err
            try:
                existing = self._find_rows(sobject, rows)
            except SalesforceError as err:
                raise OutcomeUnknown(f"{last.message}; reading back whether it was applied "
                                     f"failed too ({err.message})", code=last.code) from None
            found.update(existing)
            if existing:
                log.info("gateway.insert_found_after_failure", sobject=sobject,
                         rows=len(existing), error=last.message)
        if len(found) == len(rows):
            return [found[i] for i in range(len(rows))]
        assert last is not None
        raise OutcomeUnknown(f"{last.message}; {len(rows) - len(found)} of {len(rows)} row(s) "
                             "may or may not have been inserted", code=last.code)

    def _find_rows(self, sobject: str, rows: list[dict[str, Any]]) -> dict[int, str]:
        """Index -> id of the rows (matched on every field) that exist in the org."""
        names = sorted({k for r in rows for k, v in r.items() if isinstance(v, str)})
        if not names:
            return {}
        where = " AND ".join(f"{n} IN ({_in(sorted({str(r[n]) for r in rows if n in r}))})"
                             for n in names)
        found = self.query(f"SELECT Id, {', '.join(names)} FROM {sobject} WHERE {where}")
        out: dict[int, str] = {}
        for i, row in enumerate(rows):
            for rec in found:
                if all(_same(rec.get(k), v) for k, v in row.items()):
                    out[i] = str(rec["Id"])
                    break
        return out

    def update_rows(self, sobject: str, rows: list[dict[str, Any]]) -> None:
        """Update rows (each with its Id) all-or-none. Setting fields is idempotent: a
        request whose outcome is open is sent again."""
        for start in range(0, len(rows), ROWS_PER_CALL):
            chunk = rows[start:start + ROWS_PER_CALL]
            body = {"allOrNone": True,
                    "records": [{"attributes": {"type": sobject}, **r} for r in chunk]}
            answer = self._call(f"updating {len(chunk)} {sobject} row(s)",
                                partial(self._sf_call, "restful", "composite/sobjects",
                                        method="PATCH", json=body),
                                write="idempotent")
            self._collection_ids(sobject, answer)

    def delete_rows(self, sobject: str, ids: list[str]) -> None:
        """Delete rows by id all-or-none (composite/sobjects DELETE, 200 ids per request).
        Not repeated when its outcome is open (a second delete of a deleted row fails)."""
        for start in range(0, len(ids), ROWS_PER_CALL):
            chunk = ids[start:start + ROWS_PER_CALL]
            params = {"ids": ",".join(chunk), "allOrNone": "true"}
            answer = self._call(f"deleting {len(chunk)} {sobject} row(s)",
                                partial(self._sf_call, "restful", "composite/sobjects",
                                        method="DELETE", params=params),
                                write="insert")
            self._collection_ids(sobject, answer or [])

    def _collection_ids(self, sobject: str, answer: Any) -> list[str]:
        if not isinstance(answer, list) or not all(isinstance(r, dict) for r in answer):
            raise bad_answer(f"{self.org_label}: writing {sobject} rows",
                             "not a list of save results")
        failures = [r for r in answer if not r.get("success")]
        if failures:
            errors = [e for r in failures for e in r.get("errors") or []
                      if isinstance(e, dict)
                      and e.get("statusCode") != "ALL_OR_NONE_OPERATION_ROLLED_BACK"]
            first = errors[0] if errors else ((failures[0].get("errors") or [{}])[0] or {})
            if not isinstance(first, dict) or not first.get("statusCode"):
                raise bad_answer(f"{self.org_label}: writing {sobject} rows",
                                 "a save result with neither success nor an error")
            raise SalesforceError(scrub(f"{self.org_label}: {sobject} write refused: "
                                        f"{first.get('statusCode')}: {first.get('message')}"),
                                  code=first.get("statusCode"))
        return [str(r.get("id")) for r in answer]

    def tooling_insert(self, sobject: str, row: dict[str, Any]) -> str:
        answer = self._call(f"creating a Tooling {sobject}",
                            lambda: self.sf.toolingexecute(f"sobjects/{sobject}/", method="POST",
                                                           data=row),
                            write="insert")
        if not isinstance(answer, dict) or not answer.get("id"):
            raise OutcomeUnknown(f"{self.org_label}: creating a Tooling {sobject}: unexpected "
                                 "answer (no id); it may or may not have been created",
                                 code="BAD_ANSWER")
        return str(answer["id"])

    def upsert_metadata(self, type_: str, components: list[dict[str, Any]]) -> None:
        """Upsert whole components (read-modify-write): idempotent, so sent again when the
        outcome of a request is open."""
        components = self._complete(type_, components)
        for start in range(0, len(components), METADATA_PER_CALL):
            chunk = components[start:start + METADATA_PER_CALL]

            def call(c: list[dict[str, Any]] = chunk) -> None:
                factory = getattr(self.mdapi, type_)
                factory.upsert([factory(**_for_zeep(comp)) for comp in c])

            try:
                self._call(f"writing {type_} metadata ({', '.join(c['fullName'] for c in chunk)})",
                           call, write="idempotent")
            except SalesforceError as err:
                raise type(err)(_metadata_message(err.message), code=err.code) from None

    def _complete(self, type_: str, components: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Whole components for the ones ``fetch`` answered in part (``_partial``): read them
        with ``readMetadata`` and lay the parts the partial answer held (changed or not) over
        them. A part the partial answer did not hold cannot have been read-modified, so
        writing it is refused."""
        partial_names = [c["fullName"] for c in components if c.get("_partial")]
        if not partial_names:
            return components
        whole: dict[str, dict[str, Any] | None] = {}
        ordered = sorted(set(partial_names))
        for start in range(0, len(ordered), METADATA_PER_CALL):
            chunk = ordered[start:start + METADATA_PER_CALL]
            whole.update(zip(chunk, self.read_metadata(type_, chunk), strict=True))
        out = []
        for comp in components:
            if not comp.get("_partial"):
                out.append(comp)
                continue
            held = set(_PARTIAL_PARTS.get(type_, ())) | {"fullName"}
            base = dict(whole.get(comp["fullName"]) or {"fullName": comp["fullName"]})
            for key, value in comp.items():
                if key.startswith("_"):
                    continue
                if key not in held and base.get(key) != value:
                    raise SalesforceError(f"{self.org_label}: internal error: a change to "
                                          f"{type_} {comp['fullName']} field {key!r}, which "
                                          "was not read; nothing was written")
                base[key] = value
            for key in held - set(comp):
                base.pop(key, None)  # the partial answer had none: the component has none
            out.append(base)
        return out

    # ---- an integration's own sign-in (verify) -----------------------------------------

    def request_token(self, login: IntegrationLogin, my_domain_url: str) -> TokenResult:
        """Sign in as the integration does, against the org's My Domain, then call the API."""
        import jwt

        base = my_domain_url.rstrip("/")
        headers = dict(login.headers)
        if login.flow == "client_credentials":
            pair = f"{login.client_id}:{login.client_secret or ''}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            data = {"grant_type": "client_credentials"}
        else:
            claims = {"iss": login.client_id, "sub": login.username, "aud": base,
                      "exp": int(time.time()) + 180}
            data = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": jwt.encode(claims, login.private_key or "", algorithm="RS256")}
        what = f"{self.org_label}: token request for {login.name}"
        try:
            self._count()
            response = self._session.post(f"{base}/services/oauth2/token", data=data,
                                          headers=headers)
        except requests.RequestException as exc:
            raise map_exception(exc, what=what) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return TokenResult(False, response.status_code, "invalid_response",
                               f"HTTP {response.status_code}, not a JSON object")
        if response.status_code != 200:
            return TokenResult(False, response.status_code, payload.get("error"),
                               payload.get("error_description"))
        instance = str(payload.get("instance_url") or base)
        token = str(payload.get("access_token"))
        try:
            self._count()
            api = self._session.get(f"{instance}/services/data/v{self.version}/limits/",
                                    headers={"Authorization": f"Bearer {token}"})
        except requests.RequestException as exc:
            raise map_exception(exc, what=f"{what}: API call") from None
        code = None
        if api.status_code >= 300:
            code, _ = rest_error_details(_json_or_none(api))
        return TokenResult(api.status_code < 300, 200, instance_url=instance,
                           api_status=api.status_code, api_error=code)


Query = tuple[str, Callable[[list[dict[str, Any]]], None]]


def _lookup(inv: Inventory, names: list[str], read: Callable[[str], Read], key: str,
            build: Callable[[dict[str, Any]], Any], soql: str,
            fold: Callable[[str], str] = str) -> Query:
    """A query for records named ``names`` by ``key``, and what to do with its answer: each
    name's read gets ``build(record)``, or None when the org has no such record."""
    def done(records: list[dict[str, Any]]) -> None:
        found = {fold(str(r[key])): r for r in records}
        for name in names:
            record = found.get(fold(name))
            inv.results[read(name)] = None if record is None else build(record)

    return soql, done


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _same(found: Any, wanted: Any) -> bool:
    if isinstance(found, str) and isinstance(wanted, str) and len(found) >= 15 \
            and len(wanted) >= 15:
        return found[:15] == wanted[:15]  # 15- and 18-character ids name the same row
    return bool(found == wanted)


def _in(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)


def _user(r: dict[str, Any]) -> UserInfo:
    profile = r.get("Profile") or {}
    sets = []
    for a in ((r.get("PermissionSetAssignments") or {}).get("records") or []):
        ps = a.get("PermissionSet") or {}
        if ps.get("IsOwnedByProfile"):
            continue
        sets.append(AssignedSet(a["Id"], a["PermissionSetId"], ps.get("Name") or "",
                                bool(ps.get("PermissionsApiEnabled"))))
    licenses = tuple(sorted(
        (la.get("PermissionSetLicense") or {}).get("DeveloperName") or ""
        for la in ((r.get("PermissionSetLicenseAssignments") or {}).get("records") or [])))
    return UserInfo(r["Id"], r["Username"], bool(r.get("IsActive")), r.get("ProfileId") or "",
                    profile.get("Name") or "", bool(profile.get("PermissionsApiEnabled")),
                    tuple(sorted(sets, key=lambda s: s.name)), licenses)


#: The parts of a component that ``fetch`` may answer from SOQL (``_partial``), by type.
_PARTIAL_PARTS: dict[str, tuple[str, ...]] = {"Profile": ("loginIpRanges",)}


def _profile_component(r: dict[str, Any]) -> dict[str, Any]:
    """What the Profile query answers of a Profile's metadata: its login IP ranges (the
    LoginIpRange rows, reference 4.6), marked ``_partial``."""
    ranges = []
    for row in ((r.get("LoginIpRanges") or {}).get("records") or []):
        item = {"startAddress": row.get("StartAddress"), "endAddress": row.get("EndAddress")}
        if row.get("Description"):
            item["description"] = row["Description"]
        ranges.append(item)
    component: dict[str, Any] = {"fullName": r["Name"], "_partial": True}
    if ranges:
        component["loginIpRanges"] = ranges
    return component


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


def _for_zeep(component: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in component.items() if not k.startswith("_")}


def _metadata_message(message: str) -> str:
    # simple-salesforce raises a bare Exception "\n<fullName>: (<statusCode>, <message>), "
    return " ".join(message.split()).rstrip(", ")
