"""Metadata records as XML: the codec the SOAP calls (``soap.py``) and the file-based calls'
zips (``packages.py``) share, so neither translator imports the other (docs/adr/0031).
Plain values follow ``metadata.py``: nested dicts, booleans as ``bool``, other leaves ``str``.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

MD_NS = "http://soap.sforce.com/2006/04/metadata"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

#: Fields that are lists (maxOccurs="unbounded" in the WSDL), per type, at any depth. A field
#: here becomes a list even when it occurs once; any other field repeated in a request does too.
LIST_FIELDS: dict[str, frozenset[str]] = {
    "ConnectedApp": frozenset({"attributes", "ipRanges", "permissionSetName", "profileName",
                               "scopes", "locations", "options"}),
    "ExternalClientApplication": frozenset(),
    "ExtlClntAppOauthSettings": frozenset({"customAttributes", "trustedIpRanges"}),
    "ExtlClntAppGlobalOauthSettings": frozenset(),
    "ExtlClntAppOauthConfigurablePolicies": frozenset({"customAttributes"}),
    "ExtlClntAppConfigurablePolicies": frozenset(),
    "Profile": frozenset({"userPermissions", "loginIpRanges", "applicationVisibilities",
                          "classAccesses", "customPermissions", "fieldPermissions",
                          "objectPermissions", "pageAccesses", "recordTypeVisibilities",
                          "tabVisibilities", "layoutAssignments", "loginFlows"}),
    "PermissionSet": frozenset({"userPermissions", "applicationVisibilities", "classAccesses",
                                "customPermissions", "fieldPermissions", "objectPermissions",
                                "pageAccesses", "recordTypeVisibilities", "tabSettings",
                                "externalCredentialPrincipalAccesses"}),
    "NamedCredential": frozenset({"namedCredentialParameters"}),
    "RemoteSiteSetting": frozenset(),
    "MyDomainSettings": frozenset(),
    "ConnectedAppSettings": frozenset(),
}


def md(local: str) -> str:
    return f"{{{MD_NS}}}{local}"


def to_value(el: etree._Element, lists: frozenset[str]) -> Any:
    """XML to plain values: "true"/"false" -> bool, other text -> str, nil -> None."""
    if el.get(f"{{{XSI_NS}}}nil") == "true":
        return None
    children = [c for c in el if isinstance(c.tag, str)]
    if not children:
        text = el.text or ""
        if text in ("true", "false"):
            return text == "true"
        return text
    out: dict[str, Any] = {}
    for child in children:
        key = etree.QName(child).localname
        value = to_value(child, lists)
        if key in out:
            if not isinstance(out[key], list):
                out[key] = [out[key]]
            out[key].append(value)
        else:
            out[key] = [value] if key in lists else value
    return out


def ordered(value: Any) -> Any:
    """Metadata records in WSDL order: fullName first, then fields alphabetically."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (k != "fullName", k))
        return {k: ordered(value[k]) for k in keys}
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return value


def append_fields(parent: etree._Element, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if key.startswith("_"):
            continue
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            child = etree.SubElement(parent, md(key))
            if isinstance(item, dict):
                append_fields(child, item)
            elif isinstance(item, bool):
                child.text = "true" if item else "false"
            else:
                child.text = str(item)
