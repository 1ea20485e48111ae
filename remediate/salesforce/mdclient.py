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
_document: Any = None  # the trimmed WSDL (ADR 0028), or the full one if it could not be made
_full: Any = None  # the full WSDL, parsed only for a component type outside TYPES
_parses = 0  # how many times this process parsed the WSDL (tests pin it at one)

#: The metadata component types remediate reads or writes (steps, doctor). The parsed WSDL
#: holds these and what they reach; any other type makes a client parse the full WSDL first.
TYPES = ("ConnectedApp", "ConnectedAppSettings", "ExternalClientApplication",
         "ExtlClntAppConfigurablePolicies",
         "ExtlClntAppGlobalOauthSettings", "ExtlClntAppOauthConfigurablePolicies",
         "ExtlClntAppOauthSettings", "MyDomainSettings", "NamedCredential", "PermissionSet",
         "Profile", "RemoteSiteSetting")

METADATA_NS = "{http://soap.sforce.com/2006/04/metadata}"


def _settings() -> Any:
    from zeep import Settings

    # The same settings simple-salesforce uses for its own client.
    return Settings(strict=False, xsd_ignore_sequence_order=True)


def _vendor_wsdl() -> Path:
    import simple_salesforce.metadata as vendor

    return Path(vendor.__file__).parent / "metadata.wsdl"


def _parse(path: Path) -> Any:
    global _parses
    from zeep.transports import Transport
    from zeep.wsdl import Document

    transport: Any = Transport()  # type: ignore[no-untyped-call]
    document = Document(path.absolute().as_uri(), transport, settings=_settings())
    _parses += 1
    return document


def wsdl_document(*, full: bool = False) -> Any:
    """The parsed Metadata WSDL shared by every client: by default simple-salesforce's, trimmed
    to ``TYPES`` (ADR 0028; the whole file if the trimmed copy cannot be made or read)."""
    global _document, _full
    with _lock:
        if full:
            if _full is None:
                _full = _parse(_vendor_wsdl())
            return _full
        if _document is None:
            from remediate.salesforce import wsdltrim
            from remediate.settings import cache_dir

            source = _vendor_wsdl()
            try:
                path = wsdltrim.trimmed_wsdl(source, TYPES, cache_dir() / "wsdl")
            except (OSError, ValueError):
                path = source
            _document = _parse(path)
            if path == source:
                _full = _document
        return _document


def parse_count() -> int:
    return _parses


def metadata_api(sf: Any, session: requests.Session) -> Any:
    """A ``simple_salesforce.metadata.SfdcMetadataApi`` for ``sf`` on ``session``, built on the
    shared WSDL. It is the vendor class (``read``/``upsert``/``deploy``... unchanged); only its
    constructor's WSDL parse is replaced by the shared document."""
    from simple_salesforce.metadata import MetadataType, SfdcMetadataApi
    from zeep import Client
    from zeep.transports import Transport

    class TrimmedMetadataApi(SfdcMetadataApi):
        """The vendor class; a type the trimmed WSDL lacks moves it to the full WSDL."""

        def __getattr__(self, item: str) -> MetadataType:
            if not item.startswith("_"):
                from zeep.exceptions import LookupError as NoSuchType

                try:
                    self._client.get_type(f"ns0:{item}")  # type: ignore[no-untyped-call]
                except NoSuchType:
                    bind(self, wsdl_document(full=True))
            return super().__getattr__(item)

    def bind(api: Any, document: Any) -> None:
        api._client = Client(document, settings=_settings(),  # type: ignore[no-untyped-call]
                             transport=Transport(session=session))  # type: ignore[no-untyped-call]
        api._service = api._client.create_service(f"{METADATA_NS}MetadataBinding",
                                                  sf.metadata_url)
        api._session_header = api._client.get_element("ns0:SessionHeader")(
            sessionId=sf.session_id)

    api: Any = TrimmedMetadataApi.__new__(TrimmedMetadataApi)
    # The attributes SfdcMetadataApi.__init__ sets (simple-salesforce 1.12.x).
    api.session = session
    api._session_id = sf.session_id
    api._instance = sf.sf_instance
    api.metadata_url = sf.metadata_url
    api.headers = sf.headers
    api._api_version = sf.sf_version
    api._deploy_zip = None
    bind(api, wsdl_document())
    sf._mdapi = api  # so sf.mdapi (deploy/retrieve helpers) uses it too
    return api
