"""The gateway: authentication, batched reads, batched writes, token probes, retries.

Nothing else in remediate talks to Salesforce. Reads arrive as a set of read requests from every
step of every playbook; the gateway answers them in as few round trips as the APIs allow:

* all SOQL in ``composite`` requests (at most 5 queries each, Salesforce's limit for query
  subrequests), queries on one object merged into one with an IN list;
* metadata in one ``readMetadata`` per type per 10 names;
* Tooling in one query.

Writes come as batches of plain ``RecordWrite``/``MetadataWrite`` values: rows through
``composite/sobjects`` with allOrNone (200 per request), metadata through ``upsertMetadata`` (10
per request), read-modify-write on the component the same run read.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from remediate.errors import AuthenticationError, SalesforceError
from remediate.salesforce.errors import is_transient, map_exception, rest_error_details, scrub
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


class TimeoutSession(requests.Session):
    """A requests session that never waits forever: every request gets a timeout."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        if isinstance(self.verify, str):
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's CA bundle;
            # an org's configured ca_bundle must win, so pass it per request.
            kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


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


def _retry_transient(fn: Callable[..., T]) -> Callable[..., T]:
    def transient(exc: BaseException) -> bool:
        return isinstance(exc, SalesforceError) and is_transient(exc)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        base = wait_exponential_jitter(multiplier=0.2, max=5)(state)
        if isinstance(exc, SalesforceError) and exc.code == "REQUEST_LIMIT_EXCEEDED":
            return base * 4
        return base

    return retry(retry=retry_if_exception(transient), wait=wait,
                 stop=stop_after_attempt(4) | stop_after_delay(60), reraise=True)(fn)


class Gateway:
    def __init__(self, credentials: Credentials, *, session: requests.Session | None = None,
                 ca_bundle: str | None = None, version: str = API_VERSION,
                 timeout: float = DEFAULT_TIMEOUT, org_label: str = "org") -> None:
        self._creds = credentials
        self._session = session or TimeoutSession(timeout)
        if ca_bundle:
            self._session.verify = ca_bundle
        self.version = version
        self.org_label = org_label
        self._sf: Any = None
        self.round_trips = 0

    # ---- connection --------------------------------------------------------------------

    @property
    def sf(self) -> Any:
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
                self.round_trips += 1
                sf = Salesforce(consumer_key=c.client_id, consumer_secret=c.client_secret,
                                domain=domain, session=self._session, version=self.version)
            elif c.auth == "jwt":
                self.round_trips += 1
                sf = Salesforce(username=c.username, consumer_key=c.client_id,
                                privatekey=c.private_key, domain=domain, session=self._session,
                                version=self.version)
            else:
                raise AuthenticationError(f"{what}: unknown auth mode {c.auth!r}")
        except Exception as exc:
            raise map_exception(exc, what=what) from None
        return sf

    @property
    def mdapi(self) -> Any:
        """simple-salesforce's Metadata client, on this gateway's session.

        simple-salesforce builds its zeep client on zeep's own requests session; pointing the
        transport at ours gives metadata calls the same CA bundle, timeouts and (for the
        sandbox) transport adapter as every other call.
        """
        md = self.sf.mdapi
        transport = md._client.transport
        if transport.session is not self._session:
            transport.session = self._session
        return md

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        @_retry_transient
        def attempt() -> T:
            self.round_trips += 1
            try:
                return fn()
            except Exception as exc:
                raise map_exception(exc, what=f"{self.org_label}: {what}") from exc

        try:
            return attempt()
        except SalesforceError as err:
            raise err from None

    @property
    def instance_url(self) -> str:
        return f"https://{self.sf.sf_instance}"

    # ---- reads -------------------------------------------------------------------------

    def fetch(self, reads: Iterable[Read]) -> Inventory:
        wanted = set(reads)
        inv = Inventory()
        queries: list[tuple[str, Callable[[list[dict[str, Any]]], None]]] = []
        self._plan_queries(wanted, inv, queries)
        for start in range(0, len(queries), QUERIES_PER_COMPOSITE):
            self._run_composite(queries[start:start + QUERIES_PER_COMPOSITE])
        packages = [r for r in wanted if isinstance(r, PackageRead)]
        if packages:
            self._read_packages(packages, inv)
        metadata = [r for r in wanted if isinstance(r, MetadataRead)]
        by_type: dict[str, list[str]] = {}
        for r in metadata:
            by_type.setdefault(r.type, []).append(r.full_name)
        for type_, names in sorted(by_type.items()):
            names = sorted(set(names))
            for start in range(0, len(names), METADATA_PER_CALL):
                chunk = names[start:start + METADATA_PER_CALL]
                for name, record in zip(chunk, self.read_metadata(type_, chunk), strict=True):
                    inv.results[MetadataRead(type_, name)] = record
        if OrgRead() in wanted:
            self._finish_org(inv)
        return inv

    def _plan_queries(self, wanted: set[Read], inv: Inventory,
                      queries: list[tuple[str, Callable[[list[dict[str, Any]]], None]]]) -> None:
        users = sorted({r.username for r in wanted if isinstance(r, UserRead)})
        if users:
            soql = (
                "SELECT Id, Username, IsActive, ProfileId, Profile.Name, "
                "Profile.PermissionsApiEnabled, "
                "(SELECT Id, PermissionSetId, PermissionSet.Name, PermissionSet.IsOwnedByProfile, "
                "PermissionSet.PermissionsApiEnabled FROM PermissionSetAssignments), "
                "(SELECT Id, PermissionSetLicense.DeveloperName FROM "
                "PermissionSetLicenseAssignments) "
                f"FROM User WHERE Username IN ({_in(users)})")

            def users_done(records: list[dict[str, Any]]) -> None:
                found = {str(r["Username"]).lower(): r for r in records}
                for name in users:
                    r = found.get(name.lower())
                    inv.results[UserRead(name)] = None if r is None else _user(r)

            queries.append((soql, users_done))
        sets = sorted({r.name for r in wanted if isinstance(r, PermissionSetRead)})
        if sets:
            soql = ("SELECT Id, Name, Label, License.DeveloperName, PermissionsApiEnabled "
                    f"FROM PermissionSet WHERE IsOwnedByProfile = false AND Name IN ({_in(sets)})")

            def sets_done(records: list[dict[str, Any]]) -> None:
                found = {r["Name"]: r for r in records}
                for name in sets:
                    r = found.get(name)
                    inv.results[PermissionSetRead(name)] = None if r is None else \
                        PermissionSetInfo(r["Id"], r["Name"], r.get("Label") or r["Name"],
                                          (r.get("License") or {}).get("DeveloperName"),
                                          bool(r.get("PermissionsApiEnabled")))

            queries.append((soql, sets_done))
        licenses = sorted({r.developer_name for r in wanted if isinstance(r, LicenseRead)})
        if licenses:
            soql = ("SELECT Id, DeveloperName, MasterLabel, TotalLicenses, UsedLicenses FROM "
                    f"PermissionSetLicense WHERE DeveloperName IN ({_in(licenses)})")

            def licenses_done(records: list[dict[str, Any]]) -> None:
                found = {r["DeveloperName"]: r for r in records}
                for name in licenses:
                    r = found.get(name)
                    inv.results[LicenseRead(name)] = None if r is None else LicenseInfo(
                        r["Id"], r["DeveloperName"], r.get("MasterLabel") or "",
                        r.get("TotalLicenses"), r.get("UsedLicenses"))

            queries.append((soql, licenses_done))
        profiles = sorted({r.name for r in wanted if isinstance(r, ProfileRead)})
        if profiles:
            soql = ("SELECT Id, Name, PermissionsApiEnabled FROM Profile WHERE Name IN "
                    f"({_in(profiles)})")

            def profiles_done(records: list[dict[str, Any]]) -> None:
                found = {r["Name"]: r for r in records}
                for name in profiles:
                    r = found.get(name)
                    inv.results[ProfileRead(name)] = None if r is None else ProfileInfo(
                        r["Id"], r["Name"], bool(r.get("PermissionsApiEnabled")))

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
        for (soql, done), sub in zip(queries, answer["compositeResponse"], strict=True):
            status = sub.get("httpStatusCode")
            if status != 200:
                code, message = rest_error_details(sub.get("body"))
                raise SalesforceError(scrub(f"{self.org_label}: query failed: {code}: {message} "
                                            f"({soql[:80]}...)"), code=code)
            result = sub["body"]
            records = list(result.get("records", []))
            next_url = result.get("nextRecordsUrl")
            while next_url:
                page: dict[str, Any] = self._call(
                    "reading the next page of a query",
                    partial(self.sf.query_more, next_url, identifier_is_url=True))
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

    def _finish_org(self, inv: Inventory) -> None:
        row = inv.results.pop("_organization", {})
        instance = self.instance_url
        host = (urlsplit(instance).hostname or "")
        if host.endswith(".my.salesforce.com"):
            my_domain = instance
        else:
            info = self._call("reading the org's My Domain (userinfo)",
                              lambda: self.sf.oauth2("userinfo", None, method="GET"))
            my_domain = str((info.get("urls") or {}).get("custom_domain") or instance)
        inv.results[OrgRead()] = OrgInfo(row.get("Id", ""), row.get("Name", ""),
                                         bool(row.get("IsSandbox")),
                                         row.get("InstanceName") or "", my_domain.rstrip("/"))

    def read_metadata(self, type_: str, names: list[str]) -> list[dict[str, Any] | None]:
        from zeep.helpers import serialize_object

        def call() -> Any:
            return getattr(self.mdapi, type_).read(names)

        result = self._call(f"reading {type_} metadata", call)
        items = result if isinstance(result, list) else [result]
        out: list[dict[str, Any] | None] = []
        for item in items:
            data = _plain(serialize_object(item))  # type: ignore[no-untyped-call]
            out.append(data if isinstance(data, dict) and data.get("fullName") else None)
        return out

    def query(self, soql: str) -> list[dict[str, Any]]:
        answer = self._call("querying the org", lambda: self.sf.query_all(soql))
        return list(answer.get("records", []))

    # ---- writes ------------------------------------------------------------------------

    def insert_rows(self, sobject: str, rows: list[dict[str, Any]]) -> list[str]:
        """Insert rows all-or-none; returns the new ids."""
        return self._collection(sobject, rows, "POST", "inserting")

    def update_rows(self, sobject: str, rows: list[dict[str, Any]]) -> None:
        """Update rows (each with its Id) all-or-none."""
        self._collection(sobject, rows, "PATCH", "updating")

    def delete_rows(self, sobject: str, ids: list[str]) -> None:
        """Delete rows by id all-or-none (composite/sobjects DELETE, 200 ids per request)."""
        for start in range(0, len(ids), ROWS_PER_CALL):
            chunk = ids[start:start + ROWS_PER_CALL]
            params = {"ids": ",".join(chunk), "allOrNone": "true"}
            answer = self._call(f"deleting {len(chunk)} {sobject} row(s)",
                                partial(self.sf.restful, "composite/sobjects", method="DELETE",
                                        params=params))
            self._collection_ids(sobject, answer or [])

    def _collection(self, sobject: str, rows: list[dict[str, Any]], method: str,
                    doing: str) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(rows), ROWS_PER_CALL):
            chunk = rows[start:start + ROWS_PER_CALL]
            body = {"allOrNone": True,
                    "records": [{"attributes": {"type": sobject}, **r} for r in chunk]}
            answer = self._call(f"{doing} {len(chunk)} {sobject} row(s)",
                                partial(self.sf.restful, "composite/sobjects", method=method,
                                        json=body))
            ids.extend(self._collection_ids(sobject, answer))
        return ids

    def _collection_ids(self, sobject: str, answer: Any) -> list[str]:
        failures = [r for r in answer if not r.get("success")]
        if failures:
            errors = [e for r in failures for e in r.get("errors", [])
                      if e.get("statusCode") != "ALL_OR_NONE_OPERATION_ROLLED_BACK"]
            first = errors[0] if errors else (failures[0].get("errors") or [{}])[0]
            raise SalesforceError(scrub(f"{self.org_label}: {sobject} write refused: "
                                        f"{first.get('statusCode')}: {first.get('message')}"),
                                  code=first.get("statusCode"))
        return [str(r.get("id")) for r in answer]

    def tooling_insert(self, sobject: str, row: dict[str, Any]) -> str:
        answer = self._call(f"creating a Tooling {sobject}",
                            lambda: self.sf.toolingexecute(f"sobjects/{sobject}/", method="POST",
                                                           data=row))
        return str(answer.get("id"))

    def upsert_metadata(self, type_: str, components: list[dict[str, Any]]) -> None:
        for start in range(0, len(components), METADATA_PER_CALL):
            chunk = components[start:start + METADATA_PER_CALL]

            def call(c: list[dict[str, Any]] = chunk) -> None:
                factory = getattr(self.mdapi, type_)
                factory.upsert([factory(**_for_zeep(comp)) for comp in c])

            try:
                self._call(f"writing {type_} metadata ({', '.join(c['fullName'] for c in chunk)})",
                           call)
            except SalesforceError as err:
                raise SalesforceError(_metadata_message(err.message), code=err.code) from None

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
            self.round_trips += 1
            response = self._session.post(f"{base}/services/oauth2/token", data=data,
                                          headers=headers)
        except requests.RequestException as exc:
            raise map_exception(exc, what=what) from None
        try:
            payload = response.json()
        except ValueError:
            return TokenResult(False, response.status_code, "invalid_response",
                               f"HTTP {response.status_code}, not JSON")
        if response.status_code != 200:
            return TokenResult(False, response.status_code, payload.get("error"),
                               payload.get("error_description"))
        instance = str(payload.get("instance_url") or base)
        token = str(payload.get("access_token"))
        try:
            self.round_trips += 1
            api = self._session.get(f"{instance}/services/data/v{self.version}/limits/",
                                    headers={"Authorization": f"Bearer {token}"})
        except requests.RequestException as exc:
            raise map_exception(exc, what=f"{what}: API call") from None
        code = None
        if api.status_code >= 300:
            code, _ = rest_error_details(_json_or_none(api))
        return TokenResult(api.status_code < 300, 200, instance_url=instance,
                           api_status=api.status_code, api_error=code)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


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
