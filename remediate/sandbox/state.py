"""The state of one sandbox org, and the rules that are not about any one wire protocol.

Storage is two maps:

* ``tables``: sObject name -> record id -> row (a plain dict of field values, 18-character ids).
  Rows hold only canonical fields; a few objects are *views* computed on read (see ``rows``):
  ``Profile`` takes its ``Permissions*`` flags from its profile-owned permission set, and
  ``ConnectedApplication`` takes its ``Options*`` flags from the ConnectedApp metadata.
* ``metadata``: Metadata API type -> fullName -> component (nested dicts and lists, booleans as
  ``bool``, everything else as ``str``). ConnectedApp ``profileName``/``permissionSetName`` are not
  stored there: they are the SetupEntityAccess rows, so the REST and Metadata views of "who may use
  this app" can never disagree.

Every change to either map, at any depth, passes through the org's **write counter**
(``Org.generation``, ADR 0047): the containers are ``TrackedDict``/``TrackedList``, whose every
mutating method bumps the counter before it changes anything, so a row ``Org.get`` hands out and
a caller changes in place is counted like an ``Org.update``. Values computed from the state
(``access.py``'s permission checks) are kept in ``Org.derived()``, a memo the next change
empties; that is the one cache of the org state, and it cannot outlive a change.

Everything that decides an outcome from the org state (who may use an app, whether the API is
enabled for a user, IP ranges) lives in ``access.py``; the protocol modules (``oauth``, ``rest``,
``soap``) only translate.
"""

from __future__ import annotations

import copy
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, NoReturn, TypeVar, cast

from remediate.sandbox.ids import IdFactory, same_id
from remediate.sandbox.schema import OBJECTS, PERMISSION_FLAGS

Row = dict[str, Any]


def now_iso() -> str:
    """Salesforce's datetime format: 2026-11-23T15:19:58.000+0000."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _copy_row(row: Row) -> Row:
    """``copy.deepcopy(row)``, fast for its usual values: a str, number, bool or None is
    immutable and kept as it is, anything else is deep-copied (a fleet's queries copy every
    row of a table per query, issue 17)."""
    return {k: v if v is None or isinstance(v, _IMMUTABLE) else copy.deepcopy(v)
            for k, v in row.items()}


_IMMUTABLE = (str, int, float)  # bool is an int
T = TypeVar("T")


# ---- the write counter -------------------------------------------------------------------------


class _Counter:
    """One org's write counter (its generation); shared by every tracked container of the org."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


def _track(value: Any, counter: _Counter) -> Any:
    """``value`` ready to store under ``counter``: dicts and lists (at any depth) become tracked
    containers of that counter, copied when they are someone else's; scalars stay as they are."""
    if value is None or isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, TrackedDict | TrackedList) and value._counter is counter:
        return value
    if isinstance(value, dict):
        return TrackedDict(counter, value)
    if isinstance(value, list):
        return TrackedList(counter, value)
    return value


def _plain(value: Any, memo: dict[int, Any]) -> Any:
    """A deep copy of a stored value as plain dicts and lists (a snapshot, a caller's copy)."""
    if value is None or isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, dict):
        return {k: _plain(v, memo) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, memo) for v in value]
    return copy.deepcopy(value, memo)


class _CopiedPlain:
    """A stored container's copies (``copy.copy``, ``copy.deepcopy``, pickling) are plain
    built-in dicts and lists, the caller's to change: never tracked, never read-only."""

    __slots__ = ()
    _plain_type: ClassVar[type]

    def __copy__(self) -> Any:
        return self._plain_type(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return _plain(self, memo)

    def __reduce__(self) -> Any:
        return self._plain_type, (self._plain_type(self),)


class TrackedDict(_CopiedPlain, dict[str, Any]):
    """A dict of the org's state: every change bumps the org's write counter first.

    Reads are the built-in dict's. A copy (``copy.copy``, ``copy.deepcopy``, ``dict(row)``,
    pickling) is a plain dict, the caller's to change."""

    __slots__ = ("_counter",)
    _plain_type = dict

    def __init__(self, counter: _Counter, values: Any = ()) -> None:
        self._counter = counter
        super().__init__()
        for key, value in dict(values).items():
            dict.__setitem__(self, key, _track(value, counter))

    def __setitem__(self, key: str, value: Any) -> None:
        self._counter.value += 1
        dict.__setitem__(self, key, _track(value, self._counter))

    def __delitem__(self, key: str) -> None:
        self._counter.value += 1
        dict.__delitem__(self, key)

    def __ior__(self, other: Any) -> TrackedDict:  # type: ignore[override,misc]
        self.update(other)
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._counter.value += 1
        for key, value in dict(*args, **kwargs).items():
            dict.__setitem__(self, key, _track(value, self._counter))

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self._counter.value += 1
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._counter.value += 1
        return dict.popitem(self)

    def clear(self) -> None:
        self._counter.value += 1
        dict.clear(self)


class TrackedList(_CopiedPlain, list[Any]):
    """A list inside a stored value (a component's repeated field): changes bump the counter."""

    __slots__ = ("_counter",)
    _plain_type = list

    def __init__(self, counter: _Counter, values: Any = ()) -> None:
        self._counter = counter
        super().__init__(_track(v, counter) for v in values)

    def _bump(self) -> None:
        self._counter.value += 1

    def __setitem__(self, index: Any, value: Any) -> None:
        self._bump()
        if isinstance(index, slice):
            list.__setitem__(self, index, [_track(v, self._counter) for v in value])
        else:
            list.__setitem__(self, index, _track(value, self._counter))

    def __delitem__(self, index: Any) -> None:
        self._bump()
        list.__delitem__(self, index)

    def __iadd__(self, other: Any) -> TrackedList:  # type: ignore[misc]
        self.extend(other)
        return self

    def __imul__(self, n: Any) -> TrackedList:  # type: ignore[misc]
        self._bump()
        list.__imul__(self, n)
        return self

    def append(self, value: Any) -> None:
        self._bump()
        list.append(self, _track(value, self._counter))

    def extend(self, values: Any) -> None:
        self._bump()
        list.extend(self, [_track(v, self._counter) for v in values])

    def insert(self, index: Any, value: Any) -> None:
        self._bump()
        list.insert(self, index, _track(value, self._counter))

    def pop(self, index: Any = -1) -> Any:
        self._bump()
        return list.pop(self, index)

    def remove(self, value: Any) -> None:
        self._bump()
        list.remove(self, value)

    def clear(self) -> None:
        self._bump()
        list.clear(self)

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._bump()
        list.sort(self, *args, **kwargs)

    def reverse(self) -> None:
        self._bump()
        list.reverse(self)


class ReadOnlyRow(_CopiedPlain, dict[str, Any]):
    """A row of a query view shared by every query of one generation (``Org.query_rows``):
    reads are the built-in dict's, any change raises. A copy is a plain dict."""

    __slots__ = ()
    _plain_type = dict

    def _refuse(self) -> NoReturn:
        raise TypeError("a shared query row is read-only: copy it before changing it")

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        self._refuse()

    def __delitem__(self, key: str) -> NoReturn:
        self._refuse()

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        self._refuse()

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def setdefault(self, key: str, default: Any = None) -> NoReturn:
        self._refuse()

    def pop(self, key: str, *default: Any) -> NoReturn:
        self._refuse()

    def popitem(self) -> NoReturn:
        self._refuse()

    def clear(self) -> NoReturn:
        self._refuse()


#: Org attributes that are not configuration: changing them does not move the write counter
#: (sign-in sessions and tokens, open cursors, finished Metadata API jobs, the API usage count,
#: the id factory, the open composite's inserts; see ADR 0047).
_UNCOUNTED = frozenset({"sessions", "refresh_tokens", "cursors", "metadata_jobs", "api_usage",
                        "ids", "composite_inserts", "_counter", "_derived"})
#: Org attributes holding nested configuration: stored as tracked containers.
_TRACKED = frozenset({"tables", "metadata", "passwords", "package_apps", "uninstalled_apps",
                      "jwt_audiences"})


@dataclass
class Session:
    """An access token the sandbox issued."""

    token: str
    user_id: str
    app: str | None  # ConnectedApp / ExternalClientApplication fullName, None for admin logins
    scopes: tuple[str, ...]
    issued_at_ms: int
    grant: str


@dataclass
class Cursor:
    """An open query cursor: the rows a query answered beyond its first page."""

    records: list[Row]
    total: int
    size: int = 0  # rows per page after the first; 0: the sandbox's page_size


@dataclass(frozen=True)
class Snapshot:
    """Copies of an org's tables (and metadata, when taken with it) to roll a call back to."""

    tables: dict[str, dict[str, Row]]
    metadata: dict[str, dict[str, Any]] | None


@dataclass
class Org:
    """One emulated org. Create it from a scenario with ``scenario.build_org``."""

    org_id: str
    name: str
    my_domain: str
    instance_name: str
    is_sandbox: bool = False
    sandbox_name: str | None = None
    organization_type: str = "Enterprise Edition"
    #: Hosts of earlier My Domains of this org (OrgDomainLog); they no longer answer API calls.
    ids: IdFactory = field(default_factory=IdFactory)
    tables: dict[str, dict[str, Row]] = field(default_factory=lambda: {n: {} for n in OBJECTS})
    metadata: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)  # user id -> password
    sessions: dict[str, Session] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> user id
    #: Source IP the sandbox assumes for a request that does not say (see docs/sandbox.md).
    default_client_ip: str = "198.51.100.7"
    api_usage: int = 0  # REST and Tooling calls today (Sforce-Limit-Info, /limits)
    #: Highest API version this org serves (None: app.API_VERSIONS up to the current release).
    #: A test pins an org to an older release with it, e.g. "59.0" for one that predates the
    #: ECA fields of A10.
    max_api_version: str | None = None
    #: Finished Metadata API retrieve/deploy jobs by async id (packages.py keeps them).
    metadata_jobs: dict[str, Any] = field(default_factory=dict)
    #: Connected apps a not-yet-installed package brings: SubscriberPackage id -> app specs
    #: (``scenario.ConnectedAppSpec`` dumps). Installing the package creates them.
    package_apps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Connected apps the integrations use that are defined in another org and not installed in
    #: this one (A8): fullName -> ConnectedApp component. Only the token endpoint sees them.
    uninstalled_apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: JWT bearer audiences an app's sign-ins are accepted with, when not all of them:
    #: app fullName -> kinds among "my_domain", "login", "test" (docs/sandbox.md, assumption).
    jwt_audiences: dict[str, list[str]] = field(default_factory=dict)
    #: Open query cursors by locator (REST ``nextRecordsUrl``); not persisted.
    cursors: dict[str, Cursor] = field(default_factory=dict, repr=False)
    #: A fixed time (ISO 8601) the org's login-hours rule reads instead of the real clock, so a
    #: scenario can place a sign-in outside a profile's login hours (objectaccess.py).
    clock: str | None = None
    #: Whether a PermissionSetAssignment insert sees a PermissionSetLicenseAssign inserted by an
    #: earlier subrequest of the same ``composite`` request (one transaction). Salesforce does
    #: not document it (docs/sandbox.md, assumptions; ``remediate doctor`` probe
    #: ``licence-in-one-composite``): True is the sandbox's choice, False the other reading.
    licence_in_composite: bool = True
    #: Ids of the rows inserted by the composite request being answered (None: none open).
    composite_inserts: set[str] | None = field(default=None, repr=False)

    # ---- the write counter -----------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _UNCOUNTED:
            counter = self.__dict__.get("_counter")
            if counter is None:
                counter = _Counter()
                object.__setattr__(self, "_counter", counter)
            counter.value += 1
            if name in _TRACKED:
                value = _track(value, counter)
        object.__setattr__(self, name, value)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A copy (``copy.deepcopy``, pickle) gets a write counter of its own, its stores
        tracked by it, and no memo: without this a deep copy's tables would be the plain
        dicts a tracked dict copies to, and its changes would go uncounted."""
        for name, value in state.items():
            if name not in ("_counter", "_derived"):
                setattr(self, name, value)

    @property
    def generation(self) -> int:
        """The org's write counter: moves on every change of its configuration (rows,
        components, passwords, scenario switches), however it is made (ADR 0047)."""
        return self._write_counter().value

    def touch(self) -> None:
        """Count a change the tracked containers cannot see (none is known; for hooks)."""
        self._write_counter().value += 1

    def _write_counter(self) -> _Counter:
        return cast(_Counter, self.__dict__["_counter"])

    def derived(self) -> dict[Any, Any]:
        """A memo of values computed from the org state, valid for this generation only: the
        first call after any change hands out a new, empty one. Reads and writes of one org
        are serialized by the sandbox's per-org lock (app.py)."""
        generation = self._write_counter().value
        memo: tuple[int, dict[Any, Any]] | None = self.__dict__.get("_derived")
        if memo is None or memo[0] != generation:
            memo = (generation, {})
            object.__setattr__(self, "_derived", memo)
        return memo[1]

    def kept(self, key: tuple[str, ...], compute: Callable[[], T]) -> T:
        """``compute()``, kept in ``derived`` under ``key`` until the org next changes."""
        memo = self.derived()
        if key not in memo:
            memo[key] = compute()
        return memo[key]  # type: ignore[no-any-return]

    # ---- hosts -----------------------------------------------------------------------------

    @property
    def my_domain_host(self) -> str:
        """The org's My Domain login host, in the enhanced-domain forms of reference 4.10."""
        if self.is_sandbox:
            return f"{self.my_domain}--{self.sandbox_name}.sandbox.my.salesforce.com"
        return f"{self.my_domain}.my.salesforce.com"

    @property
    def instance_host(self) -> str:
        """The legacy instanced host, e.g. usa238.salesforce.com (not a My Domain)."""
        return f"{self.instance_name.lower()}.salesforce.com"

    @property
    def my_domain_url(self) -> str:
        return f"https://{self.my_domain_host}"

    def accepts_jwt_audience(self, app: str, audience: str, own: set[str]) -> bool:
        """Whether a JWT bearer assertion for ``app`` may carry ``audience``. ``own`` are the
        URLs that are this org's own (its My Domain, the served host). By default the My Domain
        and both generic login URLs are accepted (reference 1.3); a scenario can narrow that per
        app (``jwt_audiences``), as a real org is known to refuse some (platform-truth P3)."""
        audience = audience.rstrip("/")
        kinds = {"my_domain": own, "login": {"https://login.salesforce.com"},
                 "test": {"https://test.salesforce.com"}}
        allowed = self.jwt_audiences.get(app, list(kinds))
        return any(audience in kinds[k] for k in allowed if k in kinds)

    # ---- rows ------------------------------------------------------------------------------

    def insert(self, sobject: str, row: Row) -> Row:
        """Store a new row, filling Id and audit fields. Business rules are the caller's."""
        stamped = dict(row)
        stamped.setdefault("Id", self.ids.new(sobject))
        ts = now_iso()
        fields = OBJECTS[sobject].fields
        for audit in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            if audit in fields:
                stamped.setdefault(audit, ts)
        table = self.tables[sobject]
        table[stamped["Id"]] = stamped
        if self.composite_inserts is not None:
            self.composite_inserts.add(str(stamped["Id"]))
        return table[stamped["Id"]]

    def update(self, sobject: str, record_id: str, values: Row) -> Row:
        row = self.get(sobject, record_id)
        if row is None:
            raise KeyError(record_id)
        row.update(values)
        fields = OBJECTS[sobject].fields
        for audit in ("LastModifiedDate", "SystemModstamp"):
            if audit in fields:
                row[audit] = now_iso()
        return row

    def delete(self, sobject: str, record_id: str) -> None:
        row = self.get(sobject, record_id)
        if row is None:
            raise KeyError(record_id)
        del self.tables[sobject][row["Id"]]

    def get(self, sobject: str, record_id: str | None) -> Row | None:
        """The stored row (not a view) by 15- or 18-character id."""
        if not record_id:
            return None
        table = self.tables[sobject]
        if record_id in table:
            return table[record_id]
        for rid, row in table.items():
            if same_id(rid, record_id):
                return row
        return None

    def find(self, sobject: str, **where: Any) -> list[Row]:
        """Stored rows whose fields equal the given values (ids compared 15/18-safe)."""
        out = []
        for row in self.tables[sobject].values():
            if all(_eq(row.get(k), v) for k, v in where.items()):
                out.append(row)
        return out

    def find_one(self, sobject: str, **where: Any) -> Row | None:
        found = self.find(sobject, **where)
        return found[0] if found else None

    def rows(self, sobject: str) -> list[Row]:
        """What a query sees: copies of the rows, with view fields computed."""
        out = [_copy_row(r) for r in self.tables[sobject].values()]
        if sobject == "Profile":
            for row in out:
                owned = self.profile_permission_set(row["Id"])
                for flag in PERMISSION_FLAGS:
                    key = f"Permissions{flag}"
                    row[key] = bool(owned and owned.get(key))
        elif sobject == "ConnectedApplication":
            for row in out:
                app = self.metadata.get("ConnectedApp", {}).get(row["Name"], {})
                oauth = app.get("oauthConfig") or {}
                row["OptionsAllowAdminApprovedUsersOnly"] = bool(oauth.get("isAdminApproved"))
                session = app.get("sessionPolicy") or {}
                row["OptionsHasSessionLevelPolicy"] = session.get("sessionLevel") == "HIGH_ASSURANCE"
        elif sobject == "Organization":
            out = [self.organization_row()]
        return out

    def query_rows(self, sobject: str) -> list[Row]:
        """What a query sees, as ``rows``, but the rows are shared by every query until the
        next change (kept in ``derived``) and read-only (``ReadOnlyRow``): the SOQL evaluator
        only reads them and copies any nested value it answers with (ADR 0047)."""
        return list(self.kept(("query_rows", sobject),
                              lambda: tuple(ReadOnlyRow(r) for r in self.rows(sobject))))

    def organization_row(self) -> Row:
        return {
            "Id": self.org_id,
            "Name": self.name,
            "InstanceName": self.instance_name,
            "IsSandbox": self.is_sandbox,
            "OrganizationType": self.organization_type,
            "NamespacePrefix": None,
            "LanguageLocaleKey": "en_US",
            "TrialExpirationDate": None,
            "CreatedDate": "2020-01-01T00:00:00.000+0000",
            "LastModifiedDate": "2020-01-01T00:00:00.000+0000",
            "SystemModstamp": "2020-01-01T00:00:00.000+0000",
        }

    # ---- lookups used by several protocols -------------------------------------------------

    def user_by_username(self, username: str) -> Row | None:
        lowered = username.lower()
        for row in self.tables["User"].values():
            if str(row.get("Username", "")).lower() == lowered:
                return row
        return None

    def profile_by_name(self, name: str) -> Row | None:
        return self.find_one("Profile", Name=name)

    def profile_by_full_name(self, full_name: str) -> Row | None:
        """The profile whose metadata API name is ``full_name`` (kept in ``_FullName``;
        standard profiles have API names such as ``Admin``)."""
        for row in self.tables["Profile"].values():
            if str(row.get("_FullName") or row.get("Name")) == full_name:
                return row
        return None

    def profile_permission_set(self, profile_id: str) -> Row | None:
        for row in self.tables["PermissionSet"].values():
            if row.get("IsOwnedByProfile") and same_id(row.get("ProfileId"), profile_id):
                return row
        return None

    def permission_set_by_name(self, name: str) -> Row | None:
        for row in self.tables["PermissionSet"].values():
            if not row.get("IsOwnedByProfile") and row.get("Name") == name:
                return row
        return None

    def license_by_name(self, developer_name_or_label: str) -> Row | None:
        for row in self.tables["PermissionSetLicense"].values():
            if developer_name_or_label in (row.get("DeveloperName"), row.get("MasterLabel")):
                return row
        return None

    def connected_application(self, app_name: str) -> Row | None:
        """The row of the ConnectedApp component ``app_name``: by ``Name``, which holds the
        API name (an assumption, docs/sandbox.md), or by ``_ApiName`` where a test switched
        ``Name`` to the app's label (the other reading, probe ``connected-app-name``)."""
        row = self.find_one("ConnectedApplication", _ApiName=app_name)
        return row if row is not None else self.find_one("ConnectedApplication", Name=app_name)

    # ---- transactions ----------------------------------------------------------------------

    def begin_composite(self) -> None:
        """A composite request starts: rows inserted until ``end_composite`` are its own."""
        self.composite_inserts = set()

    def end_composite(self) -> None:
        self.composite_inserts = None

    def inserted_in_composite(self, row_id: str) -> bool:
        return self.composite_inserts is not None and row_id in self.composite_inserts

    def snapshot(self, *, metadata: bool = True) -> Snapshot:
        """A copy to roll back to (allOrNone, rollbackOnError, checkOnly deploys)."""
        return Snapshot(copy.deepcopy(self.tables),
                        copy.deepcopy(self.metadata) if metadata else None)

    def restore(self, snapshot: Snapshot) -> None:
        """Undo every row (and, if the snapshot has it, component) change since ``snapshot``."""
        for name, table in self.tables.items():
            table.clear()
            table.update(snapshot.tables.get(name, {}))
        if snapshot.metadata is not None:
            self.metadata.clear()
            self.metadata.update(snapshot.metadata)

    # ---- Metadata API file-based jobs (packages.py shapes them) ----------------------------

    def new_metadata_job_id(self, request_type: str) -> str:
        """An async id for a retrieve (``RetrieveRequest``) or deploy (``DeployRequest``)."""
        return self.ids.new(request_type)

    def store_metadata_job(self, job_id: str, job: Any) -> None:
        self.metadata_jobs[job_id] = job

    def metadata_job(self, job_id: str) -> Any:
        return self.metadata_jobs.get(job_id)

    # ---- query cursors ---------------------------------------------------------------------

    def open_cursor(self, records: list[Row], total: int, size: int = 0) -> str:
        """Keep the rows of a query answer behind a new query locator; return the locator."""
        locator = self.ids.new("QueryLocator")
        self.cursors[locator] = Cursor(records, total, size)
        return locator

    def cursor(self, locator: str) -> Cursor | None:
        return self.cursors.get(locator)

    def close_cursor(self, locator: str) -> None:
        self.cursors.pop(locator, None)

    # ---- sessions --------------------------------------------------------------------------

    def new_session(self, user_id: str, app: str | None, scopes: tuple[str, ...],
                    grant: str) -> Session:
        token = f"{self.org_id[:15]}!{secrets.token_urlsafe(48)}"
        issued = int(datetime.now(UTC).timestamp() * 1000)
        session = Session(token, user_id, app, scopes, issued, grant)
        self.sessions[token] = session
        return session

    def session_for(self, token: str) -> Session | None:
        return self.sessions.get(token)

    def issue_refresh_token(self, user_id: str) -> str:
        """A new refresh token for ``user_id`` (Salesforce's start 5Aep861)."""
        refresh = f"5Aep861{secrets.token_urlsafe(40)}"
        self.refresh_tokens[refresh] = user_id
        return refresh

    def refresh_token_user(self, refresh: str) -> str | None:
        """The user a live refresh token belongs to."""
        return self.refresh_tokens.get(refresh)

    def check_password(self, user_id: str, password: str) -> bool:
        """Whether ``password`` is the user's (compared in constant time)."""
        stored = self.passwords.get(user_id)
        return stored is not None and hmac.compare_digest(stored.encode(), password.encode())

    def revoke_token(self, token: str) -> bool:
        """Revoke an access or refresh token; False when this org never issued it.

        Revoking a refresh token also ends the sessions its user holds through refreshable
        grants (password, refresh_token): the sandbox does not link a refresh token to the
        exact access tokens minted from it (CHOICE, see oauth.revoke)."""
        if token in self.sessions:
            del self.sessions[token]
            return True
        if token in self.refresh_tokens:
            user_id = self.refresh_tokens.pop(token)
            for key, session in list(self.sessions.items()):
                if same_id(session.user_id, user_id) and \
                        session.grant in ("password", "refresh_token"):
                    del self.sessions[key]
            return True
        return False

    def record_login(self, row: Row) -> Row:
        """One LoginHistory row (a sign-in attempt; not a configuration write)."""
        return self.insert("LoginHistory", row)

    def count_api_call(self) -> int:
        """Count one REST/Tooling call against today's allocation; the count so far."""
        self.api_usage += 1
        return self.api_usage

    def expire_sessions(self) -> None:
        """Invalidate every access token (what a session timeout or logout does)."""
        self.sessions.clear()


def _eq(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, str) and isinstance(wanted, str) and len(stored) in (15, 18) \
            and len(wanted) in (15, 18) and stored[:3] == wanted[:3]:
        return same_id(stored, wanted)
    return bool(stored == wanted)
