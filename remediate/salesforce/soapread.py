"""``readMetadata`` / ``listMetadata`` answers read with lxml, as zeep would read them (ADR 0045).

zeep's deserialiser was the largest cost of an org's client CPU (ADR 0040). Here zeep still
builds and sends every request (the wire is unchanged); its answer comes back raw
(``raw_response``) and is read by a small reader that follows zeep's own rules for these
answers: the fields of each type in WSDL order, an element found anywhere among its siblings
(``xsd_ignore_sequence_order``), every occurrence for a list field and the first for a single
one, ``xsi:type`` resolved against the same parsed WSDL, simple values converted by zeep's own
simple types, an empty element without attributes read as None. The result is what
``zeep.helpers.serialize_object`` makes of zeep's objects.

The reader only takes the plain case. Anything else (a status other than 200, a multipart or
non-XML answer, XML that does not parse strictly, a DTD, a fault, an element the WSDL does not
know, an unexpected shape) is handed to zeep's own ``process_reply`` on the same answer, so
errors, faults and odd answers come out exactly as before. The parser is hardened: no entity
expansion, no network, no DTD loading, ``huge_tree`` off. ``tests/unit/test_soapread.py``
compares the reader with zeep on every answer the sandbox serves and on recorded ones.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from lxml import etree

_SOAP_ENV = "{http://schemas.xmlsoap.org/soap/envelope/}"
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_PARSER = etree.XMLParser(remove_comments=True, resolve_entities=False, recover=False,
                          huge_tree=False, no_network=True, load_dtd=False)
#: Field plans by id of the zeep complex type (the type is kept alive in the value).
_plans: dict[int, tuple[Any, list[tuple[str, bool, Any]]]] = {}


class Decline(Exception):
    """Not the plain case: zeep reads this answer."""


def _plan(xsd_type: Any) -> list[tuple[str, bool, Any]]:
    """(name, is_list, type) per field of ``xsd_type``, in WSDL order."""
    got = _plans.get(id(xsd_type))
    if got is not None and got[0] is xsd_type:
        return got[1]
    from zeep.xsd import ComplexType, Element, Sequence
    from zeep.xsd.types.simple import AnySimpleType

    if not isinstance(xsd_type, ComplexType) or xsd_type.attributes \
            or getattr(xsd_type, "_array_type", None) is not None:
        raise Decline("not a plain complex type")
    nested = xsd_type.elements_nested
    if len(nested) != 1 or type(nested[0][1]) is not Sequence or nested[0][1].max_occurs != 1:
        raise Decline("not one sequence")
    fields = []
    for name, element in nested[0][1].elements:
        if type(element) is not Element:
            raise Decline("not a plain element")
        if not isinstance(element.type, AnySimpleType | ComplexType):
            raise Decline("unknown element type")
        fields.append((name, bool(element.accepts_multiple), element))
    _plans[id(xsd_type)] = (xsd_type, fields)
    return fields


def _complex(node: Any, xsd_type: Any, schema: Any, *, allow_none: bool = True) -> Any:
    """What zeep's ComplexType.parse_xmlelement, then serialize_object, give for ``node``."""
    fields = _plan(xsd_type)
    children = list(node)
    if not fields:
        raise Decline("a type without fields")
    if allow_none and not children and not len(node.attrib):
        return None
    by_name: dict[str, list[Any]] = {}
    for child in children:
        tag = child.tag
        if not isinstance(tag, str):
            raise Decline("a processing instruction")
        by_name.setdefault(tag.rpartition("}")[2], []).append(child)
    out: OrderedDict[str, Any] = OrderedDict()
    for name, many, element in fields:
        found = by_name.pop(element.qname.localname, None)
        if many:
            out[name] = [_value(c, element, schema) for c in found] if found else []
        elif found:
            if len(found) > 1:
                raise Decline("a repeated single element")
            out[name] = _value(found[0], element, schema)
        else:
            out[name] = None
    if by_name:
        raise Decline("an element the WSDL does not have")
    return out


def _value(node: Any, element: Any, schema: Any) -> Any:
    from zeep.xsd import ComplexType

    xsd_type = element.type
    if node.get(_XSI_TYPE) is not None:
        from zeep.utils import qname_attr
        from zeep.xsd.const import xsi_ns

        try:
            named = schema.get_type(qname_attr(node, xsi_ns("type")), fail_silently=True)
        except Exception:  # zeep raises for a type its namespace lacks: zeep's error stands
            raise Decline("an xsi:type the WSDL does not have") from None
        if named is not None and named is not xsd_type:
            if not isinstance(named, ComplexType) or not isinstance(xsd_type, ComplexType):
                raise Decline("xsi:type on a simple element")
            xsd_type = named
    if isinstance(xsd_type, ComplexType):
        return _complex(node, xsd_type, schema)
    if len(node):
        raise Decline("children in a simple element")
    return xsd_type.parse_xmlelement(node, schema)


def _body_child(response: Any, answer: str) -> Any:
    """The answer element (``readMetadataResponse``...) of a plain 200 SOAP answer."""
    from zeep.utils import get_media_type

    if response.status_code != 200 or not response.content:
        raise Decline("not a 200 answer with a body")
    content_type = response.headers.get("Content-Type", "text/xml")
    if get_media_type(content_type) == "multipart/related":  # type: ignore[no-untyped-call]
        raise Decline("multipart")
    try:
        root = etree.fromstring(response.content, parser=_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        raise Decline("XML zeep reads in its own way") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise Decline("a DTD")
    if root.tag != f"{_SOAP_ENV}Envelope":
        raise Decline("not a SOAP 1.1 envelope")
    body = root.find(f"{_SOAP_ENV}Body")
    if body is None or body.find(f"{_SOAP_ENV}Fault") is not None:
        raise Decline("no body, or a fault")
    kids = list(body)
    if len(kids) != 1 or not isinstance(kids[0].tag, str) \
            or kids[0].tag.rpartition("}")[2] != answer:
        raise Decline("not one answer element")
    return kids[0]


def _answer(api: Any, operation: str, response: Any, answer: str) -> Any:
    """The answer's result field as serialize_object gives it (Decline when not plain)."""
    binding = api._service._binding
    message = binding.get(operation).output
    if message.header.type._element:
        raise Decline("an output header")
    schema = api._client.wsdl.types
    node = _body_child(response, answer)
    # zeep parses the answer element itself with allow_none off: an empty
    # <listMetadataResponse/> is a result of no file properties ([]), not None
    value = _complex(node, message.body.type, schema, allow_none=False)
    if not isinstance(value, OrderedDict) or list(value) != ["result"]:
        raise Decline("not one result")
    return value["result"]


def _zeep(api: Any, operation: str, response: Any) -> Any:
    binding = api._service._binding
    return binding.process_reply(api._client, binding.get(operation), response)


def read(api: Any, type_: str, names: list[str]) -> tuple[list[Any], bool]:
    """``readMetadata(type_, names)``: (records, True) read here as serialize_object would
    give them, or (zeep's answer as simple-salesforce's ``read`` returns it, False)."""
    metadata_type = getattr(api, type_)  # may move the client to the full WSDL
    with api._client.settings(raw_response=True):
        response = metadata_type._service.readMetadata(
            metadata_type._name, names, _soapheaders=[metadata_type._session_header])
    try:
        result = _answer(api, "readMetadata", response, "readMetadataResponse")
        if not isinstance(result, OrderedDict) or list(result) != ["records"] \
                or not result["records"]:
            raise Decline("not a read result with records")
        return list(result["records"]), True
    except Decline:
        pass
    zeep_answer = _zeep(api, "readMetadata", response)
    return type(metadata_type).read(_Replay(metadata_type, zeep_answer), names), False


def list_metadata(api: Any, queries: list[Any]) -> tuple[Any, bool]:
    """``listMetadata(queries)``: (file properties, True) read here, or (zeep's, False)."""
    with api._client.settings(raw_response=True):
        response = api._service.listMetadata(queries, api._api_version,
                                             _soapheaders=[api._session_header])
    try:
        listed = _answer(api, "listMetadata", response, "listMetadataResponse")
        if listed is not None and not isinstance(listed, list):
            raise Decline("not a list of file properties")
        return listed, True
    except Decline:
        pass
    return _zeep(api, "listMetadata", response), False


class _Replay:
    """Stands for a MetadataType whose service answers what zeep already read, so
    simple-salesforce's own ``read`` shapes (and fails on) zeep's answer as before."""

    def __init__(self, metadata_type: Any, answer: Any) -> None:
        self._name = metadata_type._name
        self._session_header = metadata_type._session_header
        self._service = self
        self._answer = answer

    def readMetadata(self, *_args: Any, **_kwargs: Any) -> Any:
        return self._answer
