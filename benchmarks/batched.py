"""A competent batched audit script, the baseline a careful engineer would write (issue 17).

The way CumulusCI tasks and good simple-salesforce scripts read an org: one SOQL query per
object (all the names it needs in one ``IN`` list), one Tooling query, one ``readMetadata`` per
metadata type (up to 10 names each), sent one after another on one kept-alive session, then the
checks in memory. It makes the reads remediate's audit needs for the same playbooks (the
runner writes them to a JSON file from the bound steps) and prints one line per object read.
It imports simple-salesforce and lets it parse its Metadata WSDL as any such script does; it
imports nothing from remediate. Not part of the product.

    python benchmarks/batched.py READS.json   # REMEDIATE_BENCH_URL, _TOKEN, _CA in the env
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any
from urllib.parse import quote


def _in(values: list[str]) -> str:
    return "(" + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
                           for v in values) + ")"


def main(path: str) -> int:
    # simple-salesforce's Metadata client makes its own zeep transport (its own session), which
    # trusts what the environment names; the REST calls use the session below.
    os.environ["REQUESTS_CA_BUNDLE"] = os.environ["REMEDIATE_BENCH_CA"]
    import requests
    from simple_salesforce import Salesforce

    with open(path, encoding="utf-8") as file:
        reads: dict[str, Any] = json.load(file)
    session = requests.Session()
    session.verify = os.environ["REMEDIATE_BENCH_CA"]
    sf = Salesforce(session_id=os.environ["REMEDIATE_BENCH_TOKEN"],
                    instance_url=os.environ["REMEDIATE_BENCH_URL"], session=session,
                    version="59.0")
    found: dict[str, Any] = {}
    queries = {
        "User": ("SELECT Id, Username, IsActive, ProfileId, Profile.Name, "
                 "Profile.PermissionsApiEnabled FROM User WHERE Username IN ", "users"),
        "PermissionSetAssignment": ("SELECT Id, AssigneeId, PermissionSetId, PermissionSet.Name "
                                    "FROM PermissionSetAssignment WHERE Assignee.Username IN ",
                                    "users"),
        "PermissionSetLicenseAssign": ("SELECT Id, AssigneeId, PermissionSetLicense.DeveloperName"
                                       " FROM PermissionSetLicenseAssign WHERE "
                                       "Assignee.Username IN ", "users"),
        "PermissionSet": ("SELECT Id, Name, Label, License.DeveloperName, PermissionsApiEnabled "
                          "FROM PermissionSet WHERE Name IN ", "permission_sets"),
        "PermissionSetLicense": ("SELECT Id, DeveloperName, MasterLabel, TotalLicenses, "
                                 "UsedLicenses FROM PermissionSetLicense WHERE DeveloperName IN ",
                                 "licenses"),
        "Profile": ("SELECT Id, Name, PermissionsApiEnabled FROM Profile WHERE Name IN ",
                    "profiles"),
    }
    for obj, (soql, key) in queries.items():
        if reads.get(key):
            found[obj] = sf.query_all(soql + _in(reads[key]))["records"]
    found["Organization"] = sf.query("SELECT Id, Name, IsSandbox, InstanceName "
                                     "FROM Organization")["records"]
    if reads.get("packages"):
        soql = ("SELECT SubscriberPackage.Name, SubscriberPackage.NamespacePrefix, "
                "SubscriberPackageVersionId FROM InstalledSubscriberPackage")
        found["InstalledSubscriberPackage"] = sf.toolingexecute(
            f"query/?q={quote(soql)}")["records"]
    for type_, names in sorted(reads.get("metadata", {}).items()):
        for start in range(0, len(names), 10):
            found[type_] = getattr(sf.mdapi, type_).read(names[start:start + 10])
    for obj, rows in found.items():
        count = len(rows) if isinstance(rows, list) else 1
        print(f"{obj}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
