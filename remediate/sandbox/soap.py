"""The Metadata API (SOAP 1.1) wire: envelope in, envelope out.

``POST /services/Soap/m/{version}`` (also with a trailing slash or ``/{orgId}``). The request is
parsed with lxml (no entities, no network), the session and caller checked, the body turned into
plain values and handed to ``metadata.py``; the answer is written in Salesforce's shape
(reference section 3): default namespace ``http://soap.sforce.com/2006/04/metadata``, records
typed with ``xsi:type="<Type>"``, fields of each type in the WSDL's order (``fullName`` first,
then alphabetical, which is how the WSDL lists them), and whole-call failures as SOAP faults
with HTTP 500.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from remediate.sandbox import access, metadata
from remediate.sandbox.mdxml import LIST_FIELDS, MD_NS, XSI_NS
from remediate.sandbox.mdxml import append_fields as _append_fields
from remediate.sandbox.mdxml import md as _md
from remediate.sandbox.mdxml import ordered as _ordered
from remediate.sandbox.mdxml import to_value as _to_value
from remediate.sandbox.metadata import Component, MetadataFault, Result
from remediate.sandbox.wire import Context, Response, api_versions, soap_fault

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"

PATH = re.compile(r"^/services/Soap/m/(\d+\.\d+)(/[A-Za-z0-9]{15,18})?/?$")

#: CHOICE (docs/sandbox.md): the fault for a version the org does not serve.
UNSUPPORTED_VERSION = "Invalid Api version specified on URL"
INVALID_SESSION = "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session"
#: [I] the text Salesforce is widely quoted with for a non-admin Metadata API caller.
INSUFFICIENT_ACCESS = ("INSUFFICIENT_ACCESS: use of the Metadata API requires a user with the "
                       "ModifyAllData or ModifyMetadata permissions")

_WRITES = {"createMetadata": "create", "updateMetadata": "update", "upsertMetadata": "upsert"}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True,
                          remove_pis=True, huge_tree=False)


class _ClientFault(Exception):
    """A request Salesforce would refuse before looking at it (soapenv:Client)."""


def handle(ctx: Context) -> Response:
    request = ctx.request
    if request.method.upper() != "POST" or not PATH.match(request.path):
        return Response(404, b"<html><body>Not Found</body></html>", {"Content-Type": "text/html"})
    try:
        envelope = etree.fromstring(request.body, _PARSER)
    except etree.XMLSyntaxError as exc:
        return soap_fault("soapenv:Client", f"Unable to parse the request: {exc.msg}")
    try:
        header, operation = _split(envelope)
    except _ClientFault as exc:
        return soap_fault("soapenv:Client", str(exc))
    org = ctx.org
    version = PATH.match(request.path).group(1)  # type: ignore[union-attr]
    if org is not None and version not in api_versions(org.max_api_version):
        return soap_fault("sf:UNSUPPORTED_API_VERSION", UNSUPPORTED_VERSION)
    token = _text(header, "SessionHeader", "sessionId") if header is not None else None
    session = org.session_for(token) if (org is not None and token) else None
    if org is None or session is None:
        return soap_fault("sf:INVALID_SESSION_ID", INVALID_SESSION)
    if not (access.is_admin(org, session.user_id)
            or access.has_permission(org, session.user_id, "ModifyMetadata")):
        return soap_fault("sf:INSUFFICIENT_ACCESS", INSUFFICIENT_ACCESS)
    all_or_none = (_text(header, "AllOrNoneHeader", "allOrNone") or "").strip() == "true"
    name = etree.QName(operation).localname
    try:
        return _envelope(_call(ctx, name, operation, all_or_none, version))
    except MetadataFault as exc:
        return soap_fault(f"sf:{exc.code}", str(exc))
    except _ClientFault as exc:
        return soap_fault("soapenv:Client", str(exc))


def _call(ctx: Context, name: str, op: etree._Element, all_or_none: bool,
          version: str) -> etree._Element:
    org = ctx.org
    assert org is not None
    response = etree.Element(f"{{{MD_NS}}}{name}Response", nsmap={None: MD_NS})
    if name == "readMetadata":
        type_name = _child_text(op, "type")
        records = metadata.read(org, type_name, _children_text(op, "fullNames"), version)
        result = etree.SubElement(response, _md("result"))
        for record in records:
            element = etree.SubElement(result, _md("records"))
            element.set(f"{{{XSI_NS}}}type", type_name)
            if record is not None:
                _append_fields(element, _ordered(record))
    elif name in _WRITES:
        type_name, components = _components(op)
        too_new = metadata.field_too_new(type_name, components, version)
        if too_new is not None:
            # CHOICE (docs/sandbox.md): a field the WSDL of this version lacks fails the parse.
            raise _ClientFault(f"Element {{{MD_NS}}}{too_new} invalid at this location in type "
                               f"{type_name}")
        if components:
            metadata.check_count(len(components))
            metadata.kind_of(type_name)
        ctx.mark_write()
        results = metadata.save(org, type_name, components, _WRITES[name],  # type: ignore[arg-type]
                                all_or_none) if components else []
        _append_results(response, results, upsert=name == "upsertMetadata")
    elif name == "deleteMetadata":
        type_name = _child_text(op, "type")
        names = _children_text(op, "fullNames")
        metadata.kind_of(type_name)
        metadata.check_count(len(names))
        ctx.mark_write()
        _append_results(response, metadata.delete(org, type_name, names, all_or_none),
                        upsert=False)
    elif name == "listMetadata":
        types = [_child_text(q, "type") for q in op if etree.QName(q).localname == "queries"]
        for props in metadata.list_metadata(org, types):
            _append_fields(etree.SubElement(response, _md("result")), props)
    elif name == "describeMetadata":
        _append_fields(etree.SubElement(response, _md("result")), metadata.describe())
    elif name in _FILE_CALLS:
        _append_fields(etree.SubElement(response, _md("result")), _file_call(ctx, name, op))
    else:
        raise _ClientFault(f"No operation available for request {{{MD_NS}}}{name}")
    return response


_FILE_CALLS = frozenset({"retrieve", "checkRetrieveStatus", "deploy", "checkDeployStatus",
                         "checkStatus"})
_RETRIEVE_LISTS = frozenset({"types", "members", "packageNames", "specificFiles"})


def _file_call(ctx: Context, name: str, op: etree._Element) -> dict[str, Any]:
    """The file-based calls (packages.py): retrieve and deploy with their status checks."""
    from remediate.sandbox import packages

    org = ctx.org
    assert org is not None
    if name == "retrieve":
        # The WSDL names the part retrieveRequest; jsforce (the sf CLI) sends it as request.
        request = [el for el in op if isinstance(el.tag, str)]
        value = _to_value(request[0], _RETRIEVE_LISTS) if request else {}
        return packages.retrieve(org, value if isinstance(value, dict) else {})
    if name == "checkStatus":
        return packages.check_status(org, _child_text(op, "asyncProcessId"))
    if name == "checkRetrieveStatus":
        return packages.check_retrieve_status(org, _child_text(op, "asyncProcessId"),
                                              _child_text(op, "includeZip") != "false")
    if name == "deploy":
        options = _local_children(op, "DeployOptions")
        value = _to_value(options[0], frozenset({"runTests"})) if options else {}
        ctx.mark_write()
        return packages.deploy(org, _child_text(op, "ZipFile"),
                               value if isinstance(value, dict) else {})
    return packages.check_deploy_status(org, _child_text(op, "asyncProcessId"),
                                        _child_text(op, "includeDetails") == "true")


# ---- request ---------------------------------------------------------------------------------


def _split(envelope: etree._Element) -> tuple[etree._Element | None, etree._Element]:
    if envelope.tag != f"{{{SOAP_NS}}}Envelope":
        raise _ClientFault("Not a SOAP 1.1 envelope")
    header = envelope.find(f"{{{SOAP_NS}}}Header")
    body = envelope.find(f"{{{SOAP_NS}}}Body")
    operations = [el for el in body if isinstance(el.tag, str)] if body is not None else []
    if not operations:
        raise _ClientFault("The SOAP body holds no operation")
    return header, operations[0]


def _local_children(parent: etree._Element, local: str) -> list[etree._Element]:
    return [el for el in parent if isinstance(el.tag, str) and etree.QName(el).localname == local]


def _text(parent: etree._Element | None, *path: str) -> str | None:
    node = parent
    for local in path:
        if node is None:
            return None
        found = _local_children(node, local)
        node = found[0] if found else None
    return None if node is None else (node.text or "")


def _child_text(parent: etree._Element, local: str) -> str:
    return (_text(parent, local) or "").strip()


def _children_text(parent: etree._Element, local: str) -> list[str]:
    return [(el.text or "").strip() for el in _local_children(parent, local)]


def _components(op: etree._Element) -> tuple[str, list[Component]]:
    """The ``metadata`` elements of a write call, as dicts, and their single type."""
    elements = _local_children(op, "metadata")
    types = []
    for el in elements:
        raw = el.get(f"{{{XSI_NS}}}type")
        if not raw:
            raise MetadataFault("INVALID_TYPE", "Must specify a {http://www.w3.org/2001/"
                                                "XMLSchema-instance}type attribute value")
        prefix, _, local = raw.rpartition(":")
        if prefix and el.nsmap.get(prefix) not in (MD_NS, None):
            metadata.kind_of(None)  # a type from another namespace is no metadata type
        types.append(local)
    distinct = sorted(set(types))
    if len(distinct) > 1:
        # Reference: one type per call. The fault code is the sandbox's choice (metadata.CHOICES).
        raise MetadataFault("INVALID_TYPE", "Cannot mix metadata types in one call "
                                            f"({', '.join(distinct)})")
    type_name = distinct[0] if distinct else ""
    if elements:
        metadata.kind_of(type_name)
    lists = LIST_FIELDS.get(type_name, frozenset())
    components = []
    for el in elements:
        value = _to_value(el, lists)
        components.append(value if isinstance(value, dict) else {})
    return type_name, components


# ---- response --------------------------------------------------------------------------------


def _envelope(response: etree._Element) -> Response:
    root = etree.Element(f"{{{SOAP_NS}}}Envelope",
                         nsmap={"soapenv": SOAP_NS, None: MD_NS, "xsi": XSI_NS})
    body = etree.SubElement(root, f"{{{SOAP_NS}}}Body")
    body.append(response)
    etree.cleanup_namespaces(root, top_nsmap={"soapenv": SOAP_NS, None: MD_NS, "xsi": XSI_NS})
    declaration = b'<?xml version="1.0" encoding="UTF-8"?>'
    return Response.of_xml(200, declaration + etree.tostring(root, xml_declaration=False,
                                                             encoding="UTF-8"))


def _append_results(parent: etree._Element, results: list[Result], upsert: bool) -> None:
    for r in results:
        fields: dict[str, Any] = {}
        if upsert:
            fields["created"] = r.created
        fields["errors"] = [{"fields": e.fields, "message": e.message,
                             "statusCode": e.status_code} for e in r.errors]
        fields["fullName"] = r.full_name
        fields["success"] = r.success
        _append_fields(etree.SubElement(parent, _md("result")), fields)
