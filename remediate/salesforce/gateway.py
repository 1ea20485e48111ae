"""The gateway: authentication, batched reads, batched writes, token probes, retries.

Nothing else in remediate talks to Salesforce. Reads arrive as a set of read requests from every
step of every playbook; the gateway answers them in as few round trips as the APIs allow:

* all SOQL in ``composite`` requests (at most 5 queries each, Salesforce's limit for query
  subrequests), queries on one object merged into one with an IN list;
* metadata in one ``readMetadata`` per type per 10 names;
* Tooling in one query;
* a profile's login IP ranges from ``readMetadata`` under the API name ``listMetadata`` gives
  (ADR 0021: a second wave, only when a playbook checks IP ranges);
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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests

from remediate.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionFailure,
    OutcomeUnknown,
    SalesforceError,
)
from remediate.logging import get_logger
from remediate.salesforce import apps, transport, versions, waves
from remediate.salesforce import retry as retries
from remediate.salesforce.errors import (
    TruncatedAnswer,
    bad_answer,
    map_exception,
    rest_error_details,
    scrub,
)
from remediate.salesforce.retry import RetryPolicy, WriteKind, call_with_retries, maybe_applied
from remediate.steps.base import (
    Ambiguous,
    AppRead,
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
    ReadFailed,
    UserInfo,
    UserRead,
)

#: The version an integration's verify sign-in checks the API at (a version every org in the
#: field serves, so a probe never fails for the version alone).
PROBE_VERSION = versions.FALLBACK
QUERIES_PER_COMPOSITE = 5
METADATA_PER_CALL = 10
ROWS_PER_CALL = 200
DEFAULT_TIMEOUT = transport.DEFAULT_TIMEOUT
T = TypeVar("T")
log = get_logger()
#: Runs the version list alongside a client credentials token request.
_LISTER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="remediate-versions")


class TimeoutSession(transport.TimeoutSession):
    """A requests session that never waits forever (a total deadline per request), never
    follows a redirect and never reads an unbounded answer (transport.py); SOAP answers cut
    short are refused."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        response = super().request(method, url, *args, **kwargs)
        _check_complete(response)
        return response


def pooled(session: requests.Session, parallel: int) -> requests.Session:
    """``session`` with kept-alive connection pools big enough for a wave: REST, Tooling and SOAP
    calls of one gateway all go through this one session, so each host gets one pool. requests'
    default keeps at most 10 connections per host and drops the rest after use; a wave of more
    than 10 calls would then open new TLS connections every time (issue 17). The adapter is
    transport's watched one, so every request keeps its total deadline."""
    size = max(10, parallel)
    session.mount("https://", transport.WatchedAdapter(pool_connections=10, pool_maxsize=size))
    session.mount("http://", transport.WatchedAdapter(pool_connections=10, pool_maxsize=size))
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
                 ca_bundle: str | None = None, version: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, org_label: str = "org",
                 retry: RetryPolicy | None = None,
                 parallel: int = waves.DEFAULT_PARALLEL) -> None:
        self._creds = credentials
        self.retry = retry if retry is not None else retries.DEFAULT_POLICY
        self._session = session or pooled(TimeoutSession(timeout), parallel)
        if ca_bundle:
            self._session.verify = ca_bundle
        # None: negotiated from the org's /services/data/ list right after signing in.
        self.pinned_version = version
        self.version = version or versions.NEWEST
        self.version_how = "pinned by api_version" if version else "negotiated"
        self._negotiated = version is not None
        self.org_label = org_label
        self._sf: Any = None
        self._md: tuple[Any, Any] | None = None  # (the connection, its Metadata client)
        self._lock = threading.RLock()
        self.parallel = max(1, parallel)
        self.install_poll_s = 5.0  # between polls of a package install (P2)
        self.install_deadline_s = 900.0
        self.progress: Callable[[str], None] = _progress_line
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
        listing: Future[str | None] | None = None
        if not self._negotiated and c.auth == "client_credentials":
            # The login URL is the org's My Domain: ask its versions while the token comes.
            with self._lock:
                self.round_trips += 1
            listing = _LISTER.submit(self._list_versions, c.login_url)
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
            if listing is not None:
                listing.result()
            raise map_exception(exc, what=what) from None
        if not self._negotiated:
            if listing is None:
                self._count()
                chosen = self._list_versions(f"https://{sf.sf_instance}")
            else:
                chosen = listing.result()
            self._negotiated = True
            if chosen is None:
                chosen = versions.FALLBACK
                self.version_how = ("assumed: the org's /services/data/ list could not be "
                                    "read")
                log.info("gateway.version_unknown", org=self.org_label, version=chosen)
            self.version = chosen
            if sf.sf_version != chosen:  # same session, talked to at the chosen version
                sf = Salesforce(session_id=sf.session_id, instance=sf.sf_instance,
                                session=self._session, version=chosen)
        # simple-salesforce signs in again by itself on a REST 401 (up to three times) but not
        # for SOAP; one policy for both lives in _call instead (ADR 0009).
        sf._salesforce_login_partial = None
        return sf

    def _list_versions(self, base: str) -> str | None:
        """The version to talk at, from the org's ``GET /services/data/`` (no session needed),
        or None when the answer cannot be read."""
        root = base.rstrip("/")
        try:
            answer = self._session.get(f"{root}/services/data/",
                                       headers={"Accept": "application/json"})
            listed = answer.json() if answer.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None
        return versions.negotiate(listed) if isinstance(listed, list) else None

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

    def fetch(self, reads: Iterable[Read]) -> Inventory:
        """Answer every read: sign in, then one wave of composite, Tooling, listMetadata and
        readMetadata calls.

        A Profile's metadata (its login IP ranges) is read whole with ``readMetadata`` under its
        metadata API name (platform-truth U3, U4): the Profile query (by Name) and
        ``listMetadata(Profile)`` go in the first wave, ``readMetadata`` in a second. Those reads
        fail alone (U5): a failure becomes a ``ReadFailed`` answer for the steps that need them.
        """
        wanted = set(reads)
        inv = Inventory()
        md_profiles = sorted({r.full_name for r in wanted
                              if isinstance(r, MetadataRead) and r.type == "Profile"})
        queries: list[Query] = []
        profile_rows: dict[str, dict[str, Any]] = {}
        self._plan_queries(wanted, inv, queries, md_profiles, profile_rows)
        calls: list[Callable[[], Any]] = []
        for start in range(0, len(queries), QUERIES_PER_COMPOSITE):
            calls.append(partial(self._run_composite,
                                 queries[start:start + QUERIES_PER_COMPOSITE]))
        packages = [r for r in wanted if isinstance(r, PackageRead)]
        if packages:
            calls.append(partial(self._read_packages, packages, inv))
        by_type: dict[str, set[str]] = {}
        for r in wanted:
            if isinstance(r, MetadataRead) and r.type != "Profile":
                by_type.setdefault(r.type, set()).add(r.full_name)
        for type_, names in sorted(by_type.items()):
            ordered = sorted(names)
            for start in range(0, len(ordered), METADATA_PER_CALL):
                calls.append(partial(self._read_metadata_into, type_,
                                     ordered[start:start + METADATA_PER_CALL], inv))
        app_reads = [r for r in wanted if isinstance(r, AppRead)]
        if app_reads:  # salesforce/apps.py: found by listMetadata, not by a guessed name
            app_pending, app_calls = apps.first_wave(self, app_reads)
            calls.extend(app_calls)
        listed: dict[str, Any] = {}
        early: dict[str, Any] = {}  # Profile components read under the names asked for
        if md_profiles:
            calls.append(partial(self._list_profiles, listed))
            for start in range(0, len(md_profiles), METADATA_PER_CALL):
                calls.append(partial(self._read_profile_chunk,
                                     md_profiles[start:start + METADATA_PER_CALL], early))
        org_wanted = OrgRead() in wanted
        if calls or org_wanted:
            self._sign_in()  # before the wave: every call of it needs the session
            inv.api_version, inv.api_version_how = self.version, self.version_how
        if by_type or md_profiles or app_reads:
            self.mdapi  # build the Metadata client once, before the wave  # noqa: B018
        if org_wanted and not self._instance_is_my_domain():
            calls.append(partial(self._read_my_domain, inv))
        self._wave(calls)
        if app_reads:
            apps.finish(self, app_pending, inv)
        self._profiles_by_api_name(wanted, inv, listed)
        if md_profiles:
            self._read_profiles(md_profiles, inv, profile_rows, listed, early)
        if org_wanted:
            self._finish_org(inv)
        return inv

    def _list_profiles(self, out: dict[str, Any]) -> None:
        """``listMetadata(Profile)``: metadata API name by 15-character id (U4). A failure is
        kept in ``out['error']`` so the profile reads fail alone (U5)."""
        def call() -> Any:
            api = self.mdapi
            query = api._client.get_type("ns0:ListMetadataQuery")(type="Profile")
            return api.list_metadata([query])

        try:
            answer = self._call("listing Profile metadata", call)
        except (AuthenticationError, ConnectionFailure):
            raise
        except SalesforceError as err:
            out["error"] = err.message
            return
        from zeep.helpers import serialize_object

        names: dict[str, str] = {}
        items = [] if answer is None else answer if isinstance(answer, list) else [answer]
        for item in items:
            raw = serialize_object(item)  # type: ignore[no-untyped-call]
            if not (isinstance(raw, dict) and raw.get("fullName") and raw.get("id")):
                # zeep keeps what it could not map: an answer of another shape
                out["error"] = bad_answer(f"{self.org_label}: listing Profile metadata",
                                          "elements that are not file properties").message
                return
            names[str(raw["id"])[:15]] = str(raw["fullName"])
        out["names"] = names

    def _profiles_by_api_name(self, wanted: set[Read], inv: Inventory,
                              listed: dict[str, Any]) -> None:
        """Profiles named by their metadata API name (``Admin``) rather than their Name: the
        Profile query by Name found none, so map the API name through ``listMetadata`` (U4)."""
        missing = sorted(r.name for r in wanted if isinstance(r, ProfileRead)
                         and inv.results.get(r) is None)
        if not missing:
            return
        if "names" not in listed and "error" not in listed:
            self._list_profiles(listed)
        ids = {name: pid for pid, name in (listed.get("names") or {}).items()}
        found = {name: ids[name] for name in missing if name in ids}
        if not found:
            return
        records = self.query("SELECT Id, Name, PermissionsApiEnabled, UserLicenseId, "
                             "UserLicense.Name FROM Profile WHERE Id IN "
                             f"({_in(sorted(found.values()))})")
        by_id = {str(r["Id"])[:15]: r for r in records}
        for name, pid in found.items():
            r = by_id.get(pid)
            inv.results[ProfileRead(name)] = None if r is None else _profile_info(r)

    def _read_profile_chunk(self, chunk: list[str], got: dict[str, Any]) -> None:
        """readMetadata(Profile) of ``chunk``; a failure is kept per name (U5)."""
        try:
            got.update(zip(chunk, self.read_metadata("Profile", chunk), strict=True))
        except (AuthenticationError, ConnectionFailure):
            raise
        except SalesforceError as err:
            got.update({n: ReadFailed(f"reading profile {n!r} failed: {err.message}")
                        for n in chunk})

    def _read_profiles(self, names: list[str], inv: Inventory,
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
            self._wave([partial(self._read_profile_chunk, ordered[s:s + METADATA_PER_CALL], got)
                        for s in range(0, len(ordered), METADATA_PER_CALL)])
        for name, api_name in full.items():
            inv.results[MetadataRead("Profile", name)] = got.get(api_name)
            inv.results[MetadataRead("Profile", api_name)] = got.get(api_name)

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

    def _plan_queries(self, wanted: set[Read], inv: Inventory, queries: list[Query],
                      md_profiles: list[str], profile_rows: dict[str, dict[str, Any]]) -> None:
        """The SOQL of a read, with long IN lists split under the statement limit (U8).
        Permission sets and licences are looked up by API name or label (U1)."""
        users = sorted({r.username for r in wanted if isinstance(r, UserRead)})
        user_soql = (
            "SELECT Id, Username, IsActive, ProfileId, Profile.Name, "
            "Profile.PermissionsApiEnabled, Profile.UserLicenseId, "
            "(SELECT Id, PermissionSetId, PermissionSet.Name, PermissionSet.IsOwnedByProfile, "
            "PermissionSet.PermissionsApiEnabled FROM PermissionSetAssignments), "
            "(SELECT Id, PermissionSetLicenseId, PermissionSetLicense.DeveloperName FROM "
            "PermissionSetLicenseAssignments) "
            "FROM User WHERE Username IN ({})")
        for chunk in _split_in(users, user_soql):
            queries.append(_lookup(inv, chunk, UserRead, "Username", _user,
                                   user_soql.format(_in(chunk)),
                                   fold=str.lower))  # usernames are case-insensitive
        licenses = sorted({r.developer_name for r in wanted if isinstance(r, LicenseRead)})
        license_rows: list[dict[str, Any]] = []
        license_soql = ("SELECT Id, DeveloperName, MasterLabel, TotalLicenses, UsedLicenses FROM "
                        "PermissionSetLicense WHERE DeveloperName IN ({0}) OR MasterLabel IN ({0})")
        for chunk in _split_in(licenses, license_soql, times=2):
            queries.append(_by_name_or_label(
                inv, chunk, LicenseRead, "DeveloperName", "MasterLabel",
                lambda r: LicenseInfo(r["Id"], r["DeveloperName"], r.get("MasterLabel") or "",
                                      r.get("TotalLicenses"), r.get("UsedLicenses")),
                license_soql.format(_in(chunk)), "permission set license", license_rows))
        sets = sorted({r.name for r in wanted if isinstance(r, PermissionSetRead)})
        set_soql = ("SELECT Id, Name, Label, LicenseId, PermissionsApiEnabled, " + apps.GRANTS
                    + " FROM PermissionSet WHERE IsOwnedByProfile = false AND (Name IN ({0}) "
                    "OR Label IN ({0}))")

        def permission_set(r: dict[str, Any]) -> PermissionSetInfo:
            # LicenseId may name a PermissionSetLicense or a UserLicense (U6): resolve it
            # against the licence rows this fetch read, never through License.DeveloperName
            lic = str(r.get("LicenseId") or "")
            name = next((str(x["DeveloperName"]) for x in license_rows
                         if lic and str(x["Id"])[:15] == lic[:15]), None)
            return PermissionSetInfo(r["Id"], r["Name"], r.get("Label") or r["Name"], name,
                                     bool(r.get("PermissionsApiEnabled")), lic or None,
                                     apps.granted(r))

        for chunk in _split_in(sets, set_soql, times=2):
            queries.append(_by_name_or_label(
                inv, chunk, PermissionSetRead, "Name", "Label", permission_set,
                set_soql.format(_in(chunk)), "permission set"))
        by_name = {r.name for r in wanted if isinstance(r, ProfileRead)}
        profiles = sorted(by_name | set(md_profiles))
        profile_soql = ("SELECT Id, Name, PermissionsApiEnabled, UserLicenseId, "
                        "UserLicense.Name FROM Profile WHERE Name IN ({})")
        for chunk in _split_in(profiles, profile_soql):
            def profiles_done(records: list[dict[str, Any]], names: list[str] = chunk) -> None:
                found = {r["Name"]: r for r in records}
                for name in names:
                    r = found.get(name)
                    if r is not None:
                        profile_rows[name] = r
                    if name in by_name:
                        inv.results[ProfileRead(name)] = None if r is None else _profile_info(r)

            queries.append((profile_soql.format(_in(chunk)), profiles_done))
        if OrgRead() in wanted:
            def org_done(records: list[dict[str, Any]]) -> None:
                inv.results["_organization"] = records[0] if records else {}

            queries.append(("SELECT Id, Name, IsSandbox, InstanceName FROM Organization",
                            org_done))

    def _run_composite(self, queries: list[Query]) -> None:
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
            records = self._all_pages(result)
            for record in records:
                self._all_children(record)
            done(records)

    def _all_pages(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        """The records of a query result and of every page after it (``nextRecordsUrl``)."""
        records = list(result.get("records") or [])
        next_url = result.get("nextRecordsUrl") if result.get("done") is not True else None
        while next_url:
            page: dict[str, Any] = self._call(
                "reading the next page of a query",
                partial(self._sf_call, "query_more", next_url, identifier_is_url=True))
            if not isinstance(page, dict) or not isinstance(page.get("records"), list):
                raise bad_answer(f"{self.org_label}: reading the next page of a query",
                                 "not a query result")
            records.extend(page["records"])
            next_url = page.get("nextRecordsUrl") if page.get("done") is not True else None
        return records

    def _all_children(self, record: dict[str, Any]) -> None:
        """A child sub-query returns one batch of children; the rest follow its
        ``nextRecordsUrl`` (platform-truth U7)."""
        for key, value in record.items():
            if isinstance(value, dict) and isinstance(value.get("records"), list) \
                    and value.get("nextRecordsUrl") and value.get("done") is not True:
                record[key] = {**value, "records": self._all_pages(value), "done": True}

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

    def daily_api_requests(self) -> tuple[int, int]:
        """(Remaining, Max) of the org's rolling 24-hour API allowance: ``DailyApiRequests`` in
        ``GET /services/data/vXX.X/limits`` (REST API Developer Guide, "Limits")."""
        data = self._call("reading the org's API allowance (/limits)",
                          partial(self._sf_call, "restful", "limits/"))
        entry = data.get("DailyApiRequests") if isinstance(data, dict) else None
        try:
            return int(entry["Remaining"]), int(entry["Max"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            raise SalesforceError(f"{self.org_label}: /limits has no DailyApiRequests "
                                  "Remaining/Max; refusing to apply without knowing the "
                                  "allowance") from None

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

    def install_package(self, fields: dict[str, Any], *, key_env: str | None = None) -> str:
        """Install a package: insert a Tooling PackageInstallRequest, then poll it until its
        Status is SUCCESS or ERROR (platform-truth P2), at most ``install_deadline_s``. A
        progress line per poll goes to ``progress``. The installation key is read from the
        environment variable ``key_env`` here, sent as ``Password``, and appears in no log,
        error or journal. Returns the request's id."""
        import os

        row = dict(fields)
        version = str(row.get("SubscriberPackageVersionKey"))
        if key_env:
            key = os.environ.get(key_env)
            if not key:
                raise ConfigError(f"{self.org_label}: installing package {version}: the "
                                  f"installation key variable {key_env} is not set; nothing "
                                  "was written")
            row["Password"] = key
        request_id = self.tooling_insert("PackageInstallRequest", row)
        deadline = time.monotonic() + self.install_deadline_s
        polls = 0
        while True:
            polls += 1
            answer = self._call(
                f"reading install request {request_id}",
                lambda: self.sf.toolingexecute(f"sobjects/PackageInstallRequest/{request_id}",
                                               method="GET"))
            if not isinstance(answer, dict):
                raise bad_answer(f"{self.org_label}: reading install request {request_id}",
                                 "not a record")
            status = str(answer.get("Status") or "")
            self.progress(f"{self.org_label}: package {version}: {status or 'no status'} "
                          f"(poll {polls}, request {request_id})")
            if status == "SUCCESS":
                return request_id
            if status == "ERROR":
                errors = (answer.get("Errors") or {}).get("errors") \
                    if isinstance(answer.get("Errors"), dict) else None
                text = "; ".join(str(e.get("message")) for e in errors or []
                                 if isinstance(e, dict)) or "no error text"
                raise SalesforceError(scrub(f"{self.org_label}: installing package {version} "
                                            f"ended in ERROR: {text}"), code="INSTALL_ERROR")
            if time.monotonic() + self.install_poll_s > deadline:
                raise OutcomeUnknown(f"{self.org_label}: installing package {version}: still "
                                     f"{status or 'not finished'} after {polls} poll(s) "
                                     f"(deadline {self.install_deadline_s:.0f} s); request "
                                     f"{request_id} may yet complete", code="INSTALL_TIMEOUT")
            time.sleep(self.install_poll_s)

    def upsert_metadata(self, type_: str, components: list[dict[str, Any]]) -> None:
        """Upsert components (read-modify-write; a Profile carries only the parts written, a
        Profile deploy overlays, platform-truth U3): idempotent, so sent again when the
        outcome of a request is open."""
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
        if not payload.get("access_token"):  # HTTP 200 is not a sign-in without a token
            return TokenResult(False, response.status_code, "no_access_token",
                               f"{base}/services/oauth2/token answered HTTP "
                               f"{response.status_code} without an access_token")
        token = str(payload.get("access_token"))
        try:
            self._count()
            api = self._session.get(f"{instance}/services/data/v{PROBE_VERSION}/limits/",
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


def _by_name_or_label(inv: Inventory, names: list[str], read: Callable[[str], Read],
                      key: str, label: str, build: Callable[[dict[str, Any]], Any], soql: str,
                      what: str, keep: list[dict[str, Any]] | None = None) -> Query:
    """A query for records named ``names`` by API name (``key``) or by label (platform-truth
    U1): an API name wins; a label that several records carry is ``Ambiguous``."""
    def done(records: list[dict[str, Any]]) -> None:
        if keep is not None:
            keep.extend(records)
        for name in names:
            exact = [r for r in records if r.get(key) == name]
            labelled = [r for r in records if r.get(label) == name]
            if exact:
                inv.results[read(name)] = build(exact[0])
            elif len(labelled) == 1:
                inv.results[read(name)] = build(labelled[0])
            elif labelled:
                inv.results[read(name)] = Ambiguous(
                    what, name, tuple(sorted(str(r[key]) for r in labelled)))
            else:
                inv.results[read(name)] = None

    return soql, done


#: The longest IN list remediate puts in one SOQL statement, in characters. Salesforce allows
#: 100,000 characters per statement (platform-truth U8); a query goes in a GET URL, so the
#: list is kept far below that (an assumption, docs/sandbox.md).
IN_LIST_CHARS = 8000


def _split_in(values: list[str], soql: str, *, times: int = 1) -> list[list[str]]:
    """``values`` in groups whose quoted IN list (used ``times`` in ``soql``) stays under
    IN_LIST_CHARS."""
    budget = max(1, (IN_LIST_CHARS - len(soql)) // times)
    out: list[list[str]] = []
    size = 0
    for value in values:
        cost = len(_in([value])) + 2
        if out and size + cost <= budget:
            out[-1].append(value)
            size += cost
        else:
            out.append([value])
            size = cost
    return out


def _progress_line(line: str) -> None:
    import sys

    sys.stderr.write(line + "\n")
    sys.stderr.flush()


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
    from remediate.salesforce import soql

    return soql.in_list(values)


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
                    tuple(sorted(sets, key=lambda s: s.name)), licenses,
                    str(profile.get("UserLicenseId") or ""))


def _profile_info(r: dict[str, Any]) -> ProfileInfo:
    return ProfileInfo(r["Id"], r["Name"], bool(r.get("PermissionsApiEnabled")),
                       str(r.get("UserLicenseId") or ""),
                       str((r.get("UserLicense") or {}).get("Name") or ""))


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
