"""What a step kind is, and the read requests and inventory it works with.

A step kind is pure except at one edge: it *names* what it needs to read (``reads``), gets those
reads back from an ``Inventory`` the engine fetched in as few round trips as the APIs allow, and
computes the changes between what is and what its parameters say (``diff``). Applying is the
engine's job: a change carries a ``Write`` (plain data), so check mode and apply mode cannot
disagree. ``capture`` turns what is into parameters, for ``snapshot``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from remediate.errors import NotFound, PlaybookError
from remediate.plan import Change

# ---- read requests (hashable, so the engine can gather and de-duplicate them) --------------


@dataclass(frozen=True)
class UserRead:
    username: str


@dataclass(frozen=True)
class PermissionSetRead:
    name: str  # an API name (Name) or a label (platform-truth U1)


@dataclass(frozen=True)
class LicenseRead:
    developer_name: str  # a DeveloperName or a MasterLabel (platform-truth U1)


@dataclass(frozen=True)
class ProfileRead:
    name: str  # a Name, or the metadata API name (``Admin``; platform-truth U4)


@dataclass(frozen=True)
class MetadataRead:
    type: str
    full_name: str


@dataclass(frozen=True)
class PackageRead:
    namespace: str


@dataclass(frozen=True)
class OrgRead:
    pass


@dataclass(frozen=True)
class ObjectAccessRead:
    """C15: the ObjectPermissions and FieldPermissions rows of a permission set for these
    objects and fields, whether each object and field exists (describe), and the record types
    named (``Object.DeveloperName``). Answered by salesforce/accessreads.py."""

    permission_set: str  # API name or label
    objects: tuple[str, ...]
    fields: tuple[str, ...]  # Object.Field
    record_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppRowRead:
    """The ConnectedApplication row of an app by name: its session policy flag can be read
    even where the app's metadata cannot (an installed app, A1)."""

    name: str


@dataclass(frozen=True)
class OauthUsageRead:
    """The apps a user signed in through (OauthToken: the data behind Setup's Connected Apps
    OAuth Usage), with whether the org has each app."""

    username: str


@dataclass(frozen=True)
class AppRead:
    """Find an app by any of ``names`` (an API name, a namespaced ``ns__Name`` or a display
    name, tried in order) and read it: salesforce/apps.py answers it with an ``AppInfo``, or
    None when no name matches (platform-truth A1, A11, A15)."""

    type: str  # "connected_app" or "external_client_app"
    names: tuple[str, ...]
    namespace: str | None = None  # only apps of this package namespace


Read = (UserRead | PermissionSetRead | LicenseRead | ProfileRead | MetadataRead | PackageRead
        | OrgRead | ObjectAccessRead | AppRowRead | OauthUsageRead | AppRead)

# ---- what the reads return ------------------------------------------------------------------


@dataclass(frozen=True)
class AssignedSet:
    id: str  # the PermissionSetAssignment id
    permission_set_id: str
    name: str
    api_enabled: bool


@dataclass(frozen=True)
class UserInfo:
    id: str
    username: str
    active: bool
    profile_id: str
    profile_name: str
    profile_api_enabled: bool
    permission_sets: tuple[AssignedSet, ...] = ()
    licenses: tuple[str, ...] = ()  # PermissionSetLicense DeveloperNames
    user_license_id: str = ""  # the UserLicense of the user's profile (Profile.UserLicenseId)

    def has_set(self, name: str) -> bool:
        return any(ps.name == name for ps in self.permission_sets)

    @property
    def api_enabled(self) -> bool:
        return self.profile_api_enabled or any(ps.api_enabled for ps in self.permission_sets)


@dataclass(frozen=True)
class PermissionSetInfo:
    id: str
    name: str
    label: str
    license: str | None  # DeveloperName of its PermissionSetLicense, when one was read
    api_enabled: bool
    license_id: str | None = None  # PermissionSet.LicenseId: a PermissionSetLicense or a
    # UserLicense (platform-truth U6), never traversed
    #: The apps it grants: SetupEntityId of its SetupEntityAccess rows (platform-truth A4).
    setup_entities: tuple[str, ...] = ()


@dataclass(frozen=True)
class LicenseInfo:
    id: str
    developer_name: str
    label: str
    total: int | None
    used: int | None


@dataclass(frozen=True)
class ProfileInfo:
    id: str
    name: str
    api_enabled: bool
    user_license_id: str = ""  # Profile.UserLicenseId
    user_license: str = ""  # that UserLicense's Name, when read


@dataclass(frozen=True)
class PackageInfo:
    namespace: str
    name: str
    version_id: str
    version: str


@dataclass(frozen=True)
class OrgInfo:
    org_id: str
    name: str
    is_sandbox: bool
    instance_name: str
    my_domain_url: str  # https://acme.my.salesforce.com


@dataclass(frozen=True)
class ObjectAccessInfo:
    """What an ``ObjectAccessRead`` found. Keys of the dicts are lower-cased names."""

    permission_set_id: str | None
    objects: dict[str, dict[str, Any]]  # object -> its ObjectPermissions row
    fields: dict[str, dict[str, Any]]  # Object.Field -> its FieldPermissions row
    described: dict[str, frozenset[str] | None]  # object -> its fields (lower); None: no such
    record_types: dict[str, str]  # Object.DeveloperName -> RecordType id


@dataclass(frozen=True)
class AppRow:
    id: str
    name: str
    high_assurance: bool  # ConnectedApplication.OptionsHasSessionLevelPolicy


@dataclass(frozen=True)
class AppUsage:
    """One app a user signed in through (an OauthToken row) and whether the org has the app:
    ``installed`` None when it could not be told (no app of that name or label was read)."""

    username: str
    app: str  # AppName: the app's label
    last_used: str | None
    use_count: int | None
    installed: bool | None


@dataclass(frozen=True)
class AppInfo:
    """An app found in the org (salesforce/apps.py), and where it came from."""

    type: str  # "connected_app" or "external_client_app"
    full_name: str  # the metadata API name, ``ns__Name`` when packaged
    label: str
    record_id: str  # ConnectedApplication id, or the ExternalClientApplication id
    namespace: str | None  # the package namespace, None for a local app
    manageable_state: str  # listMetadata's manageableState (unmanaged, installed, ...)
    matched: str  # which name matched, and how
    #: ECA parts found by their externalClientApplication field (A11): type -> fullName, or
    #: None when no component of that type names the app.
    parts: tuple[tuple[str, str | None], ...] = ()
    distribution_state: str | None = None  # ECAs: Local or Packaged

    @property
    def installed(self) -> bool:
        """Installed from a package: its policies are edited in Setup only (A1, A3)."""
        return bool(self.namespace) or self.manageable_state not in ("unmanaged", "") \
            or (self.distribution_state or "Local") != "Local"

    @property
    def origin(self) -> str:
        if self.installed:
            return f"installed from the package with namespace {self.namespace!r}" \
                if self.namespace else "installed from a package"
        return "local to the org"

    def part(self, type_: str) -> str | None:
        return dict(self.parts).get(type_)


@dataclass(frozen=True)
class AppMissing:
    """No app of the org matched an ``AppRead``: what was looked for, for the finding."""

    note: str


@dataclass(frozen=True)
class Ambiguous:
    """A read whose name matches no API name but the labels of several records."""

    what: str  # "permission set", "permission set license"
    name: str
    candidates: tuple[str, ...]  # their API names
    how: str = "is the label of"

    def error(self, where: str) -> PlaybookError:
        return PlaybookError(f"{where}: {self.what} {self.name!r} {self.how} "
                             f"{len(self.candidates)} {self.what}s "
                             f"({', '.join(self.candidates)}); name one by its API name")


@dataclass(frozen=True)
class ReadFailed:
    """A read that failed on its own (an optional read, platform-truth U5): the steps that need
    it cannot be checked; the others are."""

    message: str


@dataclass
class Inventory:
    """The answers to every read of a run, keyed by the read. ``None``: not found."""

    results: dict[Read, Any] = field(default_factory=dict)
    #: The API version the reads were made at, and how it was chosen (salesforce/versions.py).
    api_version: str | None = None
    api_version_how: str = "negotiated"

    def get(self, read: Read, *, where: str = "") -> Any:
        if read not in self.results:
            raise KeyError(f"{read!r} was not read; the step must list it in reads()")
        value = self.results[read]
        if isinstance(value, Ambiguous):
            raise value.error(where or "reading the org")
        if isinstance(value, ReadFailed):
            raise NotFound(f"{where + ': ' if where else ''}{value.message}")
        return value

    @property
    def org(self) -> OrgInfo:
        info = self.get(OrgRead())
        assert isinstance(info, OrgInfo)
        return info

    def user(self, username: str, *, where: str) -> UserInfo:
        info = self.get(UserRead(username))
        if info is None:
            raise NotFound(f"{where}: no user with username {username!r} in the org",
                           hint="check the playbook variable that names the integration user")
        assert isinstance(info, UserInfo)
        return info

    def permission_set(self, name: str, *, where: str) -> PermissionSetInfo:
        info = self.get(PermissionSetRead(name), where=where)
        if info is None:
            raise NotFound(f"{where}: no permission set with API name or label {name!r} in "
                           "the org")
        assert isinstance(info, PermissionSetInfo)
        return info

    def license(self, developer_name: str, *, where: str) -> LicenseInfo:
        info = self.get(LicenseRead(developer_name), where=where)
        if info is None:
            raise NotFound(f"{where}: no permission set license with DeveloperName or label "
                           f"{developer_name!r} in the org",
                           hint="e.g. SalesforceAPIIntegrationPsl or 'Salesforce API "
                                "Integration'")
        assert isinstance(info, LicenseInfo)
        return info

    def profile(self, name: str, *, where: str) -> ProfileInfo:
        info = self.get(ProfileRead(name), where=where)
        if info is None:
            raise NotFound(f"{where}: no profile with name or API name {name!r} in the org")
        assert isinstance(info, ProfileInfo)
        return info

    def app(self, read: AppRead, *, where: str) -> AppInfo | None:
        """The app a read found, or None; several apps matching one name is bad input."""
        info = self.get(read, where=where)
        if info is None or isinstance(info, AppMissing):
            return None
        assert isinstance(info, AppInfo)
        return info

    def app_note(self, read: AppRead) -> str:
        """What a read that found no app looked for ("" when it found one)."""
        value = self.results.get(read)
        return value.note if isinstance(value, AppMissing) else ""

    def metadata(self, type_: str, full_name: str, *, where: str = "") -> dict[str, Any] | None:
        value = self.get(MetadataRead(type_, full_name), where=where)
        return value if value is None else dict(value)


# ---- step kinds ---------------------------------------------------------------------------


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class StepContext:
    playbook: str
    step: str
    cause: str | None

    @property
    def where(self) -> str:
        return f"playbook {self.playbook!r}, step {self.step!r}"

    def change(self, kind: str, **fields: Any) -> Change:
        return Change(playbook=self.playbook, step=self.step, kind=kind, cause=self.cause,
                      **fields)


class StepKind(Generic[P]):
    """Base of every step kind. Subclasses set the class attributes and the three methods."""

    name: ClassVar[str]
    summary: ClassVar[str]
    causes: ClassVar[tuple[str, ...]]
    permissions: ClassVar[tuple[str, ...]]  # Salesforce permissions the applying user needs
    params: ClassVar[type[Params]]
    example: ClassVar[dict[str, Any]]  # parameters of a working example (contract-tested)

    def reads(self, p: P) -> Iterable[Read]:
        raise NotImplementedError

    def diff(self, p: P, inv: Inventory, ctx: StepContext) -> list[Change]:
        raise NotImplementedError

    def capture(self, p: P, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        """Parameters that describe the org as it is now (for ``snapshot``)."""
        raise NotImplementedError


REGISTRY: dict[str, StepKind[Any]] = {}
_LOADED: list[bool] = []


def register(cls: type[StepKind[Any]]) -> type[StepKind[Any]]:
    if cls.name in REGISTRY:
        raise ValueError(f"step kind {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def kinds() -> dict[str, StepKind[Any]]:
    """Every step kind, importing the step modules (every module of remediate.steps, found on
    first use; each registers its kinds) once."""
    if not _LOADED:
        import importlib
        import pkgutil

        import remediate.steps as package

        for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
            if module != "base":
                importlib.import_module(f"remediate.steps.{module}")
        _LOADED.append(True)
    return REGISTRY


def get_path(data: dict[str, Any] | None, path: str) -> Any:
    """The value at a dotted ``path``; a part ``name[key=value]`` is the item of list ``name``
    whose ``key`` is ``value`` (a named credential's ``namedCredentialParameters[parameterType=
    Url]``)."""
    cur: Any = data
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        name, selector = split_selector(part)
        cur = cur.get(name)
        if selector is not None:
            cur = next((i for i in list_items(cur) if i.get(selector[0]) == selector[1]), None)
    return cur


def split_selector(part: str) -> tuple[str, tuple[str, str] | None]:
    """``"name[key=value]"`` -> ("name", ("key", "value")); a plain part -> (part, None)."""
    if part.endswith("]") and "[" in part:
        name, _, rest = part[:-1].partition("[")
        key, _, value = rest.partition("=")
        return name, (key, value)
    return part, None


def list_items(value: Any) -> list[dict[str, Any]]:
    """The dict items of a list field (one item may come back bare, not in a list)."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [i for i in value if isinstance(i, dict)]
    return []

