"""Salesforce-shaped record ids for the sandbox org.

Ids are 15 case-sensitive characters (3-character key prefix, then a counter) followed by the
3-character case-safe suffix Salesforce appends to form the 18-character id. The suffix uses
Salesforce's published algorithm, so ids look and compare like real ones.
"""

from __future__ import annotations

import string

_ALPHANUM = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX_CHARS = string.ascii_uppercase + "012345"

#: Key prefixes of the objects the sandbox stores. Real prefixes where known; the few marked
#: "sandbox" are our own choice (documented in docs/sandbox.md).
KEY_PREFIXES: dict[str, str] = {
    "Organization": "00D",
    "User": "005",
    "Profile": "00e",
    "UserLicense": "100",
    "PermissionSet": "0PS",
    "PermissionSetAssignment": "0Pa",
    "PermissionSetLicense": "0PL",
    "PermissionSetLicenseAssign": "2LA",
    "ConnectedApplication": "0H4",
    "SetupEntityAccess": "0J0",
    "LoginHistory": "0Ya",
    "LoginIpRange": "0Lr",  # sandbox
    "InstalledSubscriberPackage": "0A3",
    "SubscriberPackage": "033",
    "SubscriberPackageVersion": "04t",
    "OrgDomainLog": "0Oz",  # sandbox
    "ExternalClientApplication": "0xI",  # sandbox
    "PackageInstallRequest": "0Hf",
    "QueryLocator": "01g",
    "ObjectPermissions": "110",
    "FieldPermissions": "01k",
    "RecordType": "012",
    "OauthToken": "0CQ",  # sandbox (the object reference says Id is always null)
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "Lead": "00Q",
    "DeployRequest": "0Af",  # Metadata API deploy ids
    "RetrieveRequest": "09S",  # Metadata API retrieve ids
}


def case_safe_suffix(id15: str) -> str:
    """The 3-character suffix that turns a 15-character id into its 18-character form."""
    if len(id15) != 15:
        raise ValueError(f"expected a 15-character id, got {id15!r}")
    out = []
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if ch.isupper())
        out.append(_SUFFIX_CHARS[bits])
    return "".join(out)


def to18(id15: str) -> str:
    return id15 if len(id15) == 18 else id15 + case_safe_suffix(id15)


def _base62(n: int, width: int) -> str:
    digits = []
    while n:
        n, r = divmod(n, 62)
        digits.append(_ALPHANUM[r])
    return "".join(reversed(digits)).rjust(width, "0")


class IdFactory:
    """Hands out deterministic ids per key prefix; `pod` keeps orgs of one fleet apart."""

    def __init__(self, pod: int = 0) -> None:
        self._pod = pod
        self._next: dict[str, int] = {}

    def new(self, sobject: str) -> str:
        prefix = KEY_PREFIXES[sobject]
        n = self._next.get(prefix, 1)
        self._next[prefix] = n + 1
        # prefix (3) + pod (2) + counter (10) = 15 characters
        return to18(prefix + _base62(self._pod, 2) + _base62(n, 10))

    def issued(self, record_id: str) -> bool:
        """Whether this factory handed out ``record_id`` (15 or 18 characters)."""
        if len(record_id) not in (15, 18) or record_id[3:5] != _base62(self._pod, 2):
            return False
        n = 0
        for char in record_id[5:15]:
            if char not in _ALPHANUM:
                return False
            n = n * 62 + _ALPHANUM.index(char)
        return 1 <= n < self._next.get(record_id[:3], 1)

    def state(self) -> dict[str, int]:
        """Next counter value per prefix, so a saved org keeps issuing fresh ids."""
        return dict(self._next)

    def restore(self, state: dict[str, int]) -> None:
        self._next = dict(state)


def is_valid_id(value: str) -> bool:
    if len(value) not in (15, 18) or not value.isalnum():
        return False
    return len(value) == 15 or case_safe_suffix(value[:15]) == value[15:]


def same_id(a: str | None, b: str | None) -> bool:
    """Compare ids the way Salesforce does: 15- and 18-character forms are equal."""
    if a is None or b is None:
        return a is b
    return a[:15] == b[:15]
