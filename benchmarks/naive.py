"""The naive way, for comparison: one call per check and one write per row.

This is how scripts around simple-salesforce or the Salesforce CLI usually check an org: for
each step, query what that step needs (one query or one ``readMetadata`` per thing it looks at),
wait for the answer, then go on; fix each difference with its own call (one ``create`` or
``update`` per row, one read and one ``upsert`` per metadata change). It runs the same step kinds
as remediate (same checks, same changes) against the same sandbox, so only the way of talking
to the org differs. It is deliberately plain; it is not part of the product.

It is not made worse than it has to be: one sign-in for the whole run, the user's permission
set and licence assignments come with the user in one query, and the Metadata WSDL is parsed
once (remediate's cache), so the comparison is about round trips, not about start-up costs.
"""

from __future__ import annotations

import base64
import copy
import time
from typing import Any
from urllib.parse import quote

import jwt
import requests
from simple_salesforce.api import Salesforce
from zeep.helpers import serialize_object

from remediate.engine import _apply_path  # the same read-modify-write as remediate
from remediate.errors import NotFound
from remediate.orgs import OrgHandle
from remediate.plan import Change, MetadataWrite, RecordWrite
from remediate.salesforce import mdclient
from remediate.salesforce.planner import _user
from remediate.salesforce.reads import _plain
from remediate.salesforce.writes import _for_zeep
from remediate.steps.base import (
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
    StepContext,
    UserRead,
)

USER_FIELDS = (
    "Id, Username, IsActive, ProfileId, Profile.Name, Profile.PermissionsApiEnabled, "
    "(SELECT Id, PermissionSetId, PermissionSet.Name, PermissionSet.IsOwnedByProfile, "
    "PermissionSet.PermissionsApiEnabled FROM PermissionSetAssignments), "
    "(SELECT Id, PermissionSetLicense.DeveloperName FROM PermissionSetLicenseAssignments)")


NAIVE_READS = (UserRead, PermissionSetRead, LicenseRead, ProfileRead, MetadataRead, PackageRead,
               OrgRead)


def q(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class NaiveClient:
    def __init__(self, handle: OrgHandle) -> None:
        """Signs in with the same admin app as remediate, on a session routed to the sandbox."""
        creds = handle.gateway._creds
        self.handle = handle
        self.session = handle.gateway._session
        domain = (creds.login_url.split("//", 1)[1]).removesuffix(".salesforce.com")
        if creds.auth == "access_token":  # a configured org (benchmarks/wholeprocess.py)
            self.sf = Salesforce(session_id=creds.access_token,
                                 instance_url=creds.instance_url or creds.login_url,
                                 session=self.session, version=handle.gateway.version)
        else:
            self.sf = Salesforce(consumer_key=creds.client_id,
                                 consumer_secret=creds.client_secret, domain=domain,
                                 session=self.session)
        self.md = mdclient.metadata_api(self.sf, self.session)

    # ---- one call per read ------------------------------------------------------------------

    def read(self, r: Read) -> Any:
        sf = self.sf
        if isinstance(r, UserRead):
            rows = sf.query(f"SELECT {USER_FIELDS} FROM User WHERE Username = {q(r.username)}")
            return _user(rows["records"][0]) if rows["records"] else None
        if isinstance(r, PermissionSetRead):
            rows = sf.query("SELECT Id, Name, Label, License.DeveloperName, PermissionsApiEnabled "
                            f"FROM PermissionSet WHERE Name = {q(r.name)}")["records"]
            return PermissionSetInfo(rows[0]["Id"], rows[0]["Name"], rows[0]["Label"],
                                     (rows[0].get("License") or {}).get("DeveloperName"),
                                     bool(rows[0]["PermissionsApiEnabled"])) if rows else None
        if isinstance(r, LicenseRead):
            rows = sf.query("SELECT Id, DeveloperName, MasterLabel, TotalLicenses, UsedLicenses "
                            f"FROM PermissionSetLicense WHERE DeveloperName = "
                            f"{q(r.developer_name)}")["records"]
            return LicenseInfo(rows[0]["Id"], rows[0]["DeveloperName"], rows[0]["MasterLabel"],
                               rows[0]["TotalLicenses"], rows[0]["UsedLicenses"]) if rows else None
        if isinstance(r, ProfileRead):
            rows = sf.query("SELECT Id, Name, PermissionsApiEnabled FROM Profile WHERE Name = "
                            f"{q(r.name)}")["records"]
            return ProfileInfo(rows[0]["Id"], rows[0]["Name"],
                               bool(rows[0]["PermissionsApiEnabled"])) if rows else None
        if isinstance(r, MetadataRead):
            return self.read_component(r.type, r.full_name)
        if isinstance(r, PackageRead):
            soql = ("SELECT SubscriberPackage.Name, SubscriberPackage.NamespacePrefix, "
                    "SubscriberPackageVersionId FROM InstalledSubscriberPackage")
            rows = sf.toolingexecute(f"query/?q={quote(soql)}")["records"]
            for row in rows:
                pkg = row.get("SubscriberPackage") or {}
                if (pkg.get("NamespacePrefix") or "").lower() == r.namespace.lower():
                    return PackageInfo(pkg["NamespacePrefix"], pkg.get("Name") or "",
                                       row["SubscriberPackageVersionId"], "")
            return None
        assert isinstance(r, OrgRead)
        row = sf.query("SELECT Id, Name, IsSandbox, InstanceName FROM Organization")["records"][0]
        return OrgInfo(row["Id"], row["Name"], bool(row["IsSandbox"]), row["InstanceName"] or "",
                       f"https://{sf.sf_instance}")

    def read_component(self, type_: str, name: str) -> dict[str, Any] | None:
        data = _plain(serialize_object(getattr(self.md, type_).read([name])))  # type: ignore[no-untyped-call]
        return data if isinstance(data, dict) and data.get("fullName") else None

    # ---- commands ---------------------------------------------------------------------------

    def audit(self) -> list[Change]:
        """Every step checks its own things, one call each; returns the changes."""
        changes: list[Change] = []
        seen: set[tuple[str, str, str]] = set()
        org = self.read(OrgRead())
        for step in self.handle.steps:
            inv = Inventory({OrgRead(): org})
            for r in step.kind.reads(step.params):
                if r in inv.results:
                    continue
                if isinstance(r, NAIVE_READS):
                    inv.results[r] = self.read(r)
                else:
                    # reads added since this baseline was written (apps by candidate names,
                    # object access, OAuth usage): one read at a time through remediate's own
                    # reader, still a request or a small wave per read, as a naive script does;
                    # an app's read brings its components too
                    inv.results.update(self.handle.gateway.fetch([r]).results)
            try:
                found = step.kind.diff(step.params, inv,
                                       StepContext(step.playbook, step.id, step.cause))
            except NotFound:  # something the step needs is missing: remediate's `unknown`
                continue
            for change in found:
                key = (change.target, change.field,
                       change.write.model_dump_json() if change.write else change.manual or "")
                if key not in seen:
                    seen.add(key)
                    changes.append(change)
        return changes

    def apply(self, changes: list[Change]) -> None:
        """One call per row; one read and one upsert per metadata change."""
        for change in sorted(changes, key=lambda c: c.phase):
            w = change.write
            if isinstance(w, RecordWrite):
                if w.api == "tooling":
                    self.sf.toolingexecute(f"sobjects/{w.sobject}/", method="POST",
                                           data=dict(w.fields))
                elif w.record_id is None:
                    getattr(self.sf, w.sobject).create(dict(w.fields))
                else:
                    getattr(self.sf, w.sobject).update(w.record_id, dict(w.fields))
            elif isinstance(w, MetadataWrite):
                component = copy.deepcopy(self.read_component(w.type, w.full_name)
                                          or {"fullName": w.full_name})
                _apply_path(component, w)
                factory = getattr(self.md, w.type)
                factory.upsert([factory(**_for_zeep(component))])

    def verify(self) -> bool:
        """Check every step again, then sign in as each integration and call the API."""
        clean = not self.audit()
        my_domain = f"https://{self.sf.sf_instance}"
        for login in self.handle.logins:
            clean = self.token_probe(login, my_domain) and clean
        return clean

    def token_probe(self, login: Any, base: str) -> bool:
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
        token: requests.Response = self.session.post(f"{base}/services/oauth2/token", data=data,
                                                     headers=headers)
        if token.status_code != 200:
            return False
        answer = token.json()
        api = self.session.get(f"{answer['instance_url']}/services/data/v59.0/limits/",
                               headers={"Authorization": f"Bearer {answer['access_token']}"})
        return api.status_code < 300


def main(argv: list[str]) -> int:
    """``python benchmarks/naive.py CONFIG ORG``: the naive audit as a whole process, on an org
    configured in a remediate.toml (benchmarks/wholeprocess.py)."""
    from pathlib import Path

    from remediate.orgs import open_org
    from remediate.settings import load_settings

    config = Path(argv[0])
    settings, _ = load_settings(config)
    handle = open_org(argv[1], settings, config_dir=config.parent)
    try:
        changes = NaiveClient(handle).audit()
    finally:
        handle.close()
    print(f"{len(changes)} differences")
    return 2 if changes else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
