"""simple-salesforce's Metadata client, with Salesforce's Metadata WSDL parsed once per process.

``Salesforce.mdapi`` parses the bundled 63.0 WSDL every time it is first used on a connection,
about half a second of CPU (reference salesforce-api.md 6.6). A fleet run opens one connection
per org, so that cost would grow with the fleet. zeep accepts an already parsed WSDL
``Document``; this module parses it once (on first need, under a lock) and gives every
connection a light client on top of it, bound to the connection's own requests session
(ADR 0007) and session id.

Nothing here is imported until a command needs the Metadata API: ``zeep`` and
``simple_salesforce`` are imported inside the functions.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import requests

_lock = threading.Lock()
_document: Any = None
_parses = 0  # how many times this process parsed the WSDL (tests pin it at one)

METADATA_NS = "{http://soap.sforce.com/2006/04/metadata}"


def _settings() -> Any:
    from zeep import Settings

    # The same settings simple-salesforce uses for its own client.
    return Settings(strict=False, xsd_ignore_sequence_order=True)


def wsdl_document() -> Any:
    """The parsed Metadata WSDL shipped with simple-salesforce, shared by every client."""
    global _document, _parses
    with _lock:
        if _document is None:
            import simple_salesforce.metadata as vendor
            from zeep.transports import Transport
            from zeep.wsdl import Document

            path = Path(vendor.__file__).parent / "metadata.wsdl"
            transport: Any = Transport()  # type: ignore[no-untyped-call]
            _document = Document(path.absolute().as_uri(), transport, settings=_settings())
            _parses += 1
        return _document


def parse_count() -> int:
    return _parses


def metadata_api(sf: Any, session: requests.Session) -> Any:
    """A ``simple_salesforce.metadata.SfdcMetadataApi`` for ``sf`` on ``session``, built on the
    shared WSDL. It is the vendor class (``read``/``upsert``/``deploy``... unchanged); only its
    constructor's WSDL parse is replaced by the shared document."""
    from simple_salesforce.metadata import SfdcMetadataApi
    from zeep import Client
    from zeep.transports import Transport

    api: Any = SfdcMetadataApi.__new__(SfdcMetadataApi)
    # The attributes SfdcMetadataApi.__init__ sets (simple-salesforce 1.12.x).
    api.session = session
    api._session_id = sf.session_id
    api._instance = sf.sf_instance
    api.metadata_url = sf.metadata_url
    api.headers = sf.headers
    api._api_version = sf.sf_version
    api._deploy_zip = None
    api._client = Client(wsdl_document(), settings=_settings(),  # type: ignore[no-untyped-call]
                         transport=Transport(session=session))  # type: ignore[no-untyped-call]
    api._service = api._client.create_service(f"{METADATA_NS}MetadataBinding", sf.metadata_url)
    api._session_header = api._client.get_element("ns0:SessionHeader")(sessionId=sf.session_id)
    sf._mdapi = api  # so sf.mdapi (deploy/retrieve helpers) uses it too
    return api
