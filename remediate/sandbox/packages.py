"""Metadata API file-based calls: ``retrieve`` / ``checkRetrieveStatus`` and ``deploy`` /
``checkDeployStatus`` (Metadata API Developer Guide, "File-Based Calls").

Both calls are asynchronous on the platform: the call answers an ``AsyncResult`` with an id,
and the client polls the check call with that id. The sandbox does the work at once and keeps
the finished result, so the first poll already answers ``done`` (an assumption in
docs/sandbox.md). A retrieve answers a zip in metadata format (``package.xml`` plus one file
per component in the type's directory, under ``unpackaged/`` unless ``singlePackage``); a
deploy reads such a zip and upserts every component it holds through ``metadata.save``, the
same rules the CRUD calls apply, undoing them all when one fails and ``rollbackOnError`` is on
(its default).

The component files carry the fields of the readMetadata record, without ``fullName`` (the
file name is the full name), under a root element named for the type.
"""

from __future__ import annotations

import base64
import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from lxml import etree

from remediate.sandbox import mdxml, metadata
from remediate.sandbox.mdxml import MD_NS
from remediate.sandbox.metadata import MetadataFault
from remediate.sandbox.state import Org, now_iso

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
#: package.xml's ``Settings`` type names MyDomainSettings as member ``MyDomain``.
_SETTINGS_SUFFIX = "Settings"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True,
                          remove_pis=True, huge_tree=False)
#: Largest zip a deploy accepts, compressed and expanded (the platform's limit is 39 MB
#: compressed, about 600 MB expanded; the sandbox keeps a far smaller ceiling).
MAX_ZIP_BYTES = 16 * 1024 * 1024


@dataclass
class _Job:
    kind: str  # "retrieve" or "deploy"
    result: dict[str, Any]
    zip_file: bytes | None = None


def _job(org: Org, job_id: str) -> _Job | None:
    job = org.metadata_job(job_id)
    return job if isinstance(job, _Job) else None


def _async_result(job_id: str) -> dict[str, Any]:
    """AsyncResult as the platform answers a file-based call: queued, not done."""
    return {"done": False, "id": job_id, "state": "Queued"}


def _component_xml(type_name: str, record: dict[str, Any]) -> bytes:
    root = etree.Element(f"{{{MD_NS}}}{type_name}", nsmap={None: MD_NS})
    body = {k: v for k, v in mdxml.ordered(record).items() if k != "fullName"}
    mdxml.append_fields(root, body)
    return _DECLARATION + bytes(etree.tostring(root, encoding="UTF-8", pretty_print=True))


def _file_type(type_name: str) -> tuple[str, str | None]:
    """package.xml type and member rename: MyDomainSettings is Settings:MyDomain."""
    if type_name.endswith(_SETTINGS_SUFFIX) and type_name in metadata.TYPES \
            and type_name != _SETTINGS_SUFFIX:
        return _SETTINGS_SUFFIX, type_name[:-len(_SETTINGS_SUFFIX)]
    return type_name, None


def _package_xml(types: dict[str, list[str]], version: str) -> bytes:
    root = etree.Element(f"{{{MD_NS}}}Package", nsmap={None: MD_NS})
    for name in sorted(types):
        t = etree.SubElement(root, f"{{{MD_NS}}}types")
        for member in types[name]:
            etree.SubElement(t, f"{{{MD_NS}}}members").text = member
        etree.SubElement(t, f"{{{MD_NS}}}name").text = name
    etree.SubElement(root, f"{{{MD_NS}}}version").text = version
    etree.indent(root, space="    ")
    return _DECLARATION + bytes(etree.tostring(root, encoding="UTF-8")) + b"\n"


# ---- retrieve ------------------------------------------------------------------------------


def retrieve(org: Org, request: dict[str, Any]) -> dict[str, Any]:
    """``retrieve(RetrieveRequest)``: build the zip now, answer the AsyncResult."""
    unpackaged = request.get("unpackaged") or {}
    if not isinstance(unpackaged, dict):
        unpackaged = {}
    version = str(unpackaged.get("version") or request.get("apiVersion") or "")
    single = request.get("singlePackage") is True
    prefix = "" if single else "unpackaged/"
    files: list[tuple[str, bytes]] = []
    props: list[dict[str, Any]] = []
    messages: list[dict[str, str]] = []
    asked: dict[str, list[str]] = {}
    admin = metadata._admin(org)
    admin_id = str(admin["Id"]) if admin else ""
    admin_name = str(admin.get("Name") or admin.get("Username")) if admin else ""
    for entry in _as_list(unpackaged.get("types")):
        if not isinstance(entry, dict):
            continue
        package_type = str(entry.get("name") or "")
        members = [str(m) for m in _as_list(entry.get("members"))]
        # The zip's package.xml echoes the manifest as asked (recorded: members "*" stays "*").
        asked.setdefault(package_type, []).extend(members)
        for member in members:
            type_name = f"{member}{_SETTINGS_SUFFIX}" if package_type == _SETTINGS_SUFFIX \
                else package_type
            kind = metadata.KINDS.get(type_name)
            if kind is None:
                messages.append({"fileName": f"{prefix}package.xml",
                                 "problem": f"Entity type: '{package_type}' is unknown"})
                continue
            info = metadata.TYPES[type_name]
            names = kind.names(org) if member == "*" else [member if package_type !=
                                                           _SETTINGS_SUFFIX else type_name[
                                                               :-len(_SETTINGS_SUFFIX)]]
            for name in names:
                record = kind.read(org, name)
                if record is None:
                    messages.append({
                        "fileName": f"{prefix}package.xml",
                        "problem": f"Entity of type '{package_type}' named '{name}' cannot "
                                   "be found"})
                    continue
                file_name = f"{info.directory}/{name}.{info.suffix}"
                files.append((prefix + file_name, _component_xml(type_name, record)))
                row = kind.row(org, name)
                props.append({
                    "createdById": admin_id, "createdByName": admin_name,
                    "createdDate": metadata._api_date(row.get("CreatedDate") if row else None),
                    "fileName": f"{prefix}{file_name}", "fullName": name,
                    "id": kind.record_id(org, name), "lastModifiedById": admin_id,
                    "lastModifiedByName": admin_name,
                    "lastModifiedDate": metadata._api_date(
                        row.get("LastModifiedDate") if row else None),
                    "manageableState": "unmanaged", "type": package_type,
                })
    package = _package_xml(asked, version or "67.0")
    files.insert(0, (f"{prefix}package.xml", package))
    props.append({"createdById": admin_id, "createdByName": admin_name,
                  "createdDate": metadata._api_date(None),
                  "fileName": f"{prefix}package.xml", "fullName": f"{prefix}package.xml",
                  "id": "", "lastModifiedById": admin_id, "lastModifiedByName": admin_name,
                  "lastModifiedDate": metadata._api_date(None), "manageableState":
                      "unmanaged", "type": "Package"})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    job_id = org.new_metadata_job_id("RetrieveRequest")
    result: dict[str, Any] = {"done": True, "fileProperties": props, "id": job_id}
    if messages:
        result["messages"] = messages
    result.update({"status": "Succeeded", "success": True})
    org.store_metadata_job(job_id, _Job("retrieve", result, buffer.getvalue()))
    return _async_result(job_id)


def check_status(org: Org, job_id: str) -> dict[str, Any]:
    """``checkStatus`` (the older poll CumulusCI still sends): the AsyncResult, finished."""
    if _job(org, job_id) is None:
        raise MetadataFault("INVALID_ID_FIELD", "invalid async process id")
    return {"done": True, "id": job_id, "state": "Completed"}


def check_retrieve_status(org: Org, job_id: str, include_zip: bool) -> dict[str, Any]:
    job = _job(org, job_id)
    if job is None or job.kind != "retrieve":
        raise MetadataFault("INVALID_ID_FIELD", "Retrieve result has been deleted.")
    result = dict(job.result)
    if include_zip and job.zip_file is not None:
        result["zipFile"] = base64.b64encode(job.zip_file).decode()
    return result


# ---- deploy --------------------------------------------------------------------------------


def deploy(org: Org, zip_b64: str, options: dict[str, Any]) -> dict[str, Any]:
    """``deploy(zipFile, DeployOptions)``: apply the zip now, answer the AsyncResult."""
    job_id = org.new_metadata_job_id("DeployRequest")
    started = metadata._api_date(now_iso())
    try:
        raw = base64.b64decode(zip_b64, validate=False)
        if len(raw) > MAX_ZIP_BYTES:
            raise ValueError("too large")
        archive = zipfile.ZipFile(io.BytesIO(raw))
        entries = {i.filename: i for i in archive.infolist() if not i.is_dir()}
        if sum(i.file_size for i in entries.values()) > MAX_ZIP_BYTES:
            raise ValueError("too large")
    except (ValueError, zipfile.BadZipFile):
        raise MetadataFault("INVALID_ZIP", "The zip file is not a valid zip file") from None
    check_only = options.get("checkOnly") is True
    rollback = options.get("rollbackOnError") is not False
    by_directory = {(info.directory, info.suffix): name for name, info in metadata.TYPES.items()}
    successes: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    snapshot = org.snapshot()
    # Without a manifest nothing is deployed and the answer names the missing file, counting
    # no component (a real org's answer: tests/conformance/pasted/simple_salesforce_deploy.yaml).
    manifest = any(PurePosixPath(path).name == "package.xml" for path in entries)
    if not manifest:
        failures.append(_failure("", "package.xml", "package.xml", "No package.xml found",
                                 started))
    for path, entry in sorted(entries.items()) if manifest else ():
        parts = PurePosixPath(path).parts
        if parts and parts[-1] == "package.xml":
            # the manifest's entry answers changed=true (the pasted real answer)
            successes.append(_component_result("", path, "package.xml", True, False, True,
                                               started))
            continue
        if len(parts) < 2:
            continue
        directory, file_name = parts[-2], parts[-1]
        stem, _, suffix = file_name.partition(".")
        type_name = by_directory.get((directory, suffix))
        if type_name is None:
            failures.append(_failure("", path, stem,
                                     f"An object '{stem}' of type {directory} was named in "
                                     "package.xml, but was not found in zipped directory",
                                     started))
            continue
        try:
            root = etree.fromstring(archive.read(entry), _PARSER)
        except etree.XMLSyntaxError as exc:
            failures.append(_failure(type_name, path, stem,
                                     f"Error parsing file: {exc.msg}", started))
            continue
        value = mdxml.to_value(root, mdxml.LIST_FIELDS.get(type_name, frozenset()))
        comp = value if isinstance(value, dict) else {}
        comp["fullName"] = stem
        package_type, member = _file_type(type_name)
        results = metadata.save(org, type_name, [comp], "upsert")
        for r in results:
            if r.success:
                successes.append(_component_result(package_type, path, member or stem, True,
                                                   r.created, not r.created, started,
                                                   metadata.KINDS[type_name].record_id(org,
                                                                                       stem)))
            else:
                err = r.errors[0]
                failures.append(_failure(package_type, path, member or stem,
                                         err.message, started))
    ok = not failures
    if (check_only or (rollback and not ok)):
        org.restore(snapshot)
    deployed = len([s for s in successes if s["fileName"] != "package.xml"
                    and not s["fileName"].endswith("/package.xml")])
    total = deployed + len(failures) if manifest else 0
    # createdBy is a 15-character user id in the recorded answer; the org's admin stands for
    # the caller, as in retrieve's fileProperties.
    admin = metadata._admin(org)
    result: dict[str, Any] = {
        "checkOnly": check_only, "completedDate": metadata._api_date(now_iso()),
        "createdBy": str(admin["Id"])[:15] if admin else "",
        "createdByName": str(admin.get("Name") or admin.get("Username")) if admin else "",
        "createdDate": started,
        "details": {"componentFailures": failures, "componentSuccesses": successes,
                    "runTestResult": {"numFailures": 0, "numTestsRun": 0, "totalTime": 0.0}},
        "done": True, "id": job_id, "ignoreWarnings": options.get("ignoreWarnings") is True,
        "lastModifiedDate": metadata._api_date(now_iso()),
        "numberComponentErrors": len(failures) if manifest else 0,
        "numberComponentsDeployed": deployed if ok or not rollback else 0,
        "numberComponentsTotal": total, "numberTestErrors": 0, "numberTestsCompleted": 0,
        "numberTestsTotal": 0, "rollbackOnError": rollback, "runTestsEnabled": False,
        "startDate": started, "status": "Succeeded" if ok else "Failed", "success": ok,
    }
    org.store_metadata_job(job_id, _Job("deploy", result))
    return _async_result(job_id)


def check_deploy_status(org: Org, job_id: str, include_details: bool) -> dict[str, Any]:
    job = _job(org, job_id)
    if job is None or job.kind != "deploy":
        raise MetadataFault("INVALID_ID_FIELD", "invalid deploy id")
    result = dict(job.result)
    if not include_details:
        result["details"] = {}
    return result


def _component_result(type_name: str, path: str, full_name: str, success: bool, created: bool,
                      changed: bool, when: str, record_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"changed": changed, "componentType": type_name, "created": created,
                           "createdDate": when, "deleted": False, "fileName": path,
                           "fullName": full_name, "success": success}
    if record_id:
        out["id"] = record_id
    return out


def _failure(type_name: str, path: str, full_name: str, message: str, when: str) -> dict[str, Any]:
    return {"changed": False, "componentType": type_name, "created": False,
            "createdDate": when, "deleted": False, "fileName": path, "fullName": full_name,
            "problem": message, "problemType": "Error", "success": False}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
