"""The sandbox org's REST and Tooling API (reference section 5; objects from section 4).

``handle`` authenticates the request, parses ``/services/data/vNN.N[/tooling]/...`` into a
``_Call`` and hands it to ``_route``. The composite resource builds a ``_Call`` per subrequest
and goes through the same router, so a subrequest behaves exactly like the call on its own.

This module only translates (docs/adr/0031): record changes go to the data backend,
``data.insert``, ``data.update`` and ``data.delete``, which single-record CRUD and
``composite/sobjects`` share and which hold the org's business rules (duplicates, licences,
profile-owned permission sets, references) and their side effects (licence counts, installed
packages, a new user's profile assignment). Query cursors are the org's (``Org.open_cursor``),
allOrNone rolls back through ``Org.snapshot``/``Org.restore``.

Where the reference leaves Salesforce's behaviour open, the choice is a constant or a row in
``CHOSEN`` below, so docs/sandbox.md can list them from one place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from remediate.sandbox import access, data
from remediate.sandbox.data import NOT_FOUND_MESSAGE, Failure
from remediate.sandbox.ids import KEY_PREFIXES, is_valid_id, same_id
from remediate.sandbox.schema import OBJECTS, PERMISSION_FLAGS, SObject, lookup
from remediate.sandbox.state import Org, Row, Session
from remediate.sandbox.wire import (
    DAILY_API_MAX,
    RELEASE_NAMES,
    Context,
    Response,
    api_versions,
    rest_error,
)

# ---- behaviour chosen where the reference is uncertain ------------------------------------

#: One line per choice: what the sandbox does, and why. Mirrored in docs/sandbox.md.
CHOSEN: dict[str, str] = {
    "duplicate_assignment": "DUPLICATE_VALUE 'Duplicate PermissionSetAssignment. Assignee: <id>; "
                            "Permission Set: <id>' (18-char ids, semicolon form of the sf CLI "
                            "quote, reference 4.4)",
    "duplicate_license_assignment": "DUPLICATE_VALUE 'Duplicate PermissionSetLicenseAssign. "
                                    "Assignee: <id>; Permission Set License: <id>' (same shape "
                                    "as the assignment duplicate)",
    "license_missing": "FIELD_INTEGRITY_EXCEPTION \"The user license doesn't allow the "
                       "permission: <first permission of the set>\" with fields "
                       "[PermissionSetId] (the wording quoted in reference 4.5)",
    "profile_owned_assign": "assigning or unassigning a profile-owned permission set: "
                            "FIELD_INTEGRITY_EXCEPTION (the profile decides those assignments)",
    "profile_owned_modify": "updating or deleting a profile-owned PermissionSet: "
                            "INSUFFICIENT_ACCESS_OR_READONLY (reference 4.3: not modifiable)",
    "license_exhausted": "PermissionSetLicenseAssign when UsedLicenses >= TotalLicenses: "
                         "LICENSE_LIMIT_EXCEEDED 'License Limit Exceeded'",
    "license_in_use": "deleting a PermissionSetLicenseAssign the user's permission sets still "
                      "need: FIELD_INTEGRITY_EXCEPTION",
    "profile_other_license": "updating User.ProfileId to a profile of another UserLicense: "
                             "FIELD_INTEGRITY_EXCEPTION \"You can only assign profiles that are "
                             "compatible with the user's license\" (platform-truth U2; the "
                             "sandbox refuses every crossing, upgrades included)",
    "permission_set_in_use": "deleting a PermissionSet that is still assigned: DELETE_FAILED",
    "dml_needs_admin": "DML by a session without ManageUsers or ModifyAllData: HTTP 403 "
                       "INSUFFICIENT_ACCESS 'insufficient access rights on object id' (one "
                       "quote); as statusCode of the item inside composite/sobjects",
    "not_createable": "insert/update/delete on an object that does not allow it: 400 "
                      "INVALID_TYPE_FOR_OPERATION 'entity type cannot be inserted|updated|"
                      "deleted'",
    "read_only_field": "writing a read-only field: 400 INVALID_FIELD_FOR_INSERT_UPDATE "
                       "'Unable to create/update fields: X. ...'",
    "bad_id": "GET/PATCH/DELETE /sobjects/T/<id>: an id that is not well formed or has another "
              "object's key prefix is 400 MALFORMED_ID '<T> ID: id value of incorrect type: "
              "<id>'; a well-formed id of T that is not stored is 404 NOT_FOUND",
    "setup_entity_on_profile_set": "SetupEntityAccess rows may have a profile-owned ParentId "
                                   "(open question 6; this is how profile access to an app is "
                                   "stored)",
    "package_install": "Tooling PackageInstallRequest is asynchronous (platform-truth P2): the "
                       "insert answers Status 'IN_PROGRESS'; each read of the request (GET or "
                       "query) stands for time passing, and the package's install_polls-th "
                       "read sees 'SUCCESS' (an InstalledSubscriberPackage row) or, with "
                       "install_error, 'ERROR' and Errors {errors: [{message}]} (a wrong "
                       "Password: 'The installation key is not valid.', the sandbox's "
                       "wording); Password is never returned; an unknown version key is 400 "
                       "INVALID_CROSS_REFERENCE_KEY at insert",
    "collections_limit": "composite/sobjects with more than 200 records: 400 "
                         "EXCEEDED_ID_LIMIT 'record limit reached. cannot submit more than 200 "
                         "records into this call'",
    "composite_limit": "composite with more than 25 subrequests (or more than 5 query/"
                       "collections ones): 400 LIMIT_EXCEEDED",
    "composite_bad_reference": "a subrequest whose @{ref...} cannot be resolved: 400 "
                               "PROCESSING_HALTED 'Invalid reference specified. ...'",
    "session_scope": "an app's session whose scopes lack api/full: 401 INVALID_SESSION_ID 'This "
                     "session is not valid for use with the REST API'; an inactive user's "
                     "session is 401 'Session expired or invalid'",
    "query_locator": "nextRecordsUrl is /services/data/vNN.N[/tooling]/query/<01g id>-<offset>; "
                     "an unknown or used-up locator is 400 INVALID_QUERY_LOCATOR",
    "login_history_rows": "LoginHistory is readable by every API user; without ManageUsers a "
                          "session sees only its own user's rows (reference 4.7)",
}

ROLLED_BACK = ("Record rolled back because not all records were valid and the request was "
               "using AllOrNone header")
HALTED = ("The transaction was rolled back since another operation in the same transaction "
          "failed.")
COLLECTION_MAX = 200
COMPOSITE_MAX = 25
COMPOSITE_QUERY_MAX = 5
_PREFIX_TO_OBJECT = {prefix: name for name, prefix in KEY_PREFIXES.items()}
_PATH = re.compile(r"^/services/data/v(\d+\.\d+)(/tooling)?(?:/(.*))?$")
_REFERENCE = re.compile(r"@\{([^}]+)\}")


# ---- small types ---------------------------------------------------------------------------


@dataclass
class _Call:
    """One REST/Tooling call after authentication (a whole request or a composite part)."""

    ctx: Context
    org: Org
    session: Session
    version: str
    tooling: bool
    method: str
    parts: list[str]
    params: dict[str, list[str]]
    body: bytes
    in_composite: bool = False

    @property
    def user_id(self) -> str:
        return self.session.user_id

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None

    @property
    def base(self) -> str:
        return f"/services/data/v{self.version}" + ("/tooling" if self.tooling else "")


# ---- entry point ---------------------------------------------------------------------------


def handle(ctx: Context, *, tooling: bool = False) -> Response:
    request = ctx.request
    path = request.path
    if path.rstrip("/") == "/services/data" and request.method == "GET":
        return Response.of_json(200, _versions(ctx.org))
    match = _PATH.match(path)
    if match is None:
        return data.not_found().response()
    session_or_error = _authenticate(ctx)
    if isinstance(session_or_error, Response):
        return session_or_error
    assert ctx.org is not None
    version = match.group(1)
    if version not in api_versions(ctx.org.max_api_version):
        return data.not_found().response()
    call = _Call(ctx, ctx.org, session_or_error, version, tooling, request.method.upper(),
                 _split(match.group(3)), request.query, request.body)
    return _route(call)


def _versions(org: Org | None) -> list[dict[str, str]]:
    return [{"label": RELEASE_NAMES[v], "url": f"/services/data/v{v}", "version": v}
            for v in api_versions(org.max_api_version if org is not None else None)]


def _split(rest: str | None) -> list[str]:
    return [p for p in (rest or "").split("/") if p]


def _authenticate(ctx: Context) -> Session | Response:
    expired = rest_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
    token = ctx.request.bearer()
    if not token or ctx.org is None:
        return expired
    session = ctx.org.session_for(token)
    if session is None:
        return expired
    user = ctx.org.get("User", session.user_id)
    if user is None or not user.get("IsActive"):
        return expired
    scopes = {s.lower() for s in session.scopes}
    if session.app is not None and not scopes & {"api", "full"}:
        return rest_error(401, "INVALID_SESSION_ID",
                          "This session is not valid for use with the REST API")
    if not access.has_permission(ctx.org, session.user_id, "ApiEnabled"):
        return rest_error(403, "API_CURRENTLY_DISABLED", "API is disabled for this User")
    return session


# ---- routing -------------------------------------------------------------------------------


def _route(call: _Call) -> Response:
    parts, method = call.parts, call.method
    if not parts:
        return _method(call, ("GET",)) or Response.of_json(200, _resources(call))
    head = parts[0]
    if head in ("query", "queryAll"):
        if len(parts) == 1:
            return _method(call, ("GET",)) or _query(call)
        if len(parts) == 2:
            return _method(call, ("GET",)) or _query_more(call, parts[1])
    elif head == "sobjects":
        if len(parts) == 1:
            return _method(call, ("GET",)) or _describe_global(call)
        if len(parts) == 2:
            return _method(call, ("GET", "POST")) or (
                _create(call, parts[1]) if method == "POST" else _object_info(call, parts[1]))
        if len(parts) == 3 and parts[2] == "describe":
            return _method(call, ("GET",)) or _describe(call, parts[1])
        if len(parts) == 3:
            return _method(call, ("GET", "PATCH", "DELETE")) or _record(call, parts[1], parts[2])
    elif head == "composite" and not call.tooling:
        if len(parts) == 1:
            return _method(call, ("POST",)) or _composite(call)
        if parts[1] == "sobjects" and len(parts) == 2:
            return _method(call, ("POST", "PATCH", "DELETE")) or _collections(call)
        if parts[1] == "sobjects" and len(parts) == 3:
            return _method(call, ("GET",)) or _collections_get(call, parts[2])
    elif head == "limits" and len(parts) == 1 and not call.tooling:
        return _method(call, ("GET",)) or Response.of_json(200, _limits(call.org))
    return data.not_found().response()


def _method(call: _Call, allowed: tuple[str, ...]) -> Response | None:
    if call.method in allowed or (call.method == "HEAD" and "GET" in allowed):
        return None
    return rest_error(405, "METHOD_NOT_ALLOWED",
                      f"HTTP Method '{call.method}' not allowed. Allowed are "
                      f"{','.join(allowed)}")


def _resources(call: _Call) -> dict[str, str]:
    names = ["query", "queryAll", "sobjects"] if call.tooling else \
        ["query", "queryAll", "sobjects", "composite", "limits", "tooling"]
    return {name: f"{call.base}/{name}" for name in names}


# ---- visibility ----------------------------------------------------------------------------


def _sees_setup(org: Org, user_id: str) -> bool:
    return access.is_admin(org, user_id) or access.has_permission(org, user_id, "ViewSetup")


def _visible_object(call: _Call, obj: SObject) -> bool:
    """Whether this session can see the object through this API at all."""
    if obj.api == "tooling" and not call.tooling:
        return False
    if obj.name == "LoginHistory":  # every user may read their own rows (reference 4.7)
        return True
    if obj.data:  # C15: a data object needs Read through the profile or a permission set
        return access.can_read_object(call.org, call.user_id, obj.name)
    return not obj.setup or _sees_setup(call.org, call.user_id)


def _visible_fn(call: _Call) -> Callable[[str], bool]:
    def visible(name: str) -> bool:
        obj = lookup(name)
        return obj is None or _visible_object(call, obj)
    return visible


def _resolve_type(call: _Call, name: str) -> SObject | None:
    obj = lookup(name)
    if obj is None or not _visible_object(call, obj):
        return None
    return obj


def _row_filter(call: _Call, sobject: str) -> Callable[[Row], bool] | None:
    """Row-level scoping: LoginHistory of other users needs Manage Users."""
    if sobject == "LoginHistory" and not access.has_permission(call.org, call.user_id,
                                                               "ManageUsers"):
        uid = call.user_id
        return lambda row: same_id(row.get("UserId"), uid)
    return None


class _ScopedOrg:
    """The org as one session's queries see it: rows it may not read are left out."""

    def __init__(self, call: _Call) -> None:
        self._call = call
        self._org = call.org

    def __getattr__(self, name: str) -> Any:
        return getattr(self._org, name)

    def rows(self, sobject: str) -> list[Row]:
        if sobject == "UserPermissionAccess":  # the session user's effective permissions
            uid = self._call.user_id
            return [{"Id": uid, **{f"Permissions{flag}": access.has_permission(self._org, uid, flag)
                                   for flag in PERMISSION_FLAGS}}]
        rows = self._org.query_rows(sobject)
        keep = _row_filter(self._call, sobject)
        return rows if keep is None else [r for r in rows if keep(r)]


# ---- query ---------------------------------------------------------------------------------


def _query(call: _Call) -> Response:
    from remediate.sandbox import soql

    text = call.param("q")
    if not text or not text.strip():
        return rest_error(400, "MALFORMED_QUERY", "SOQL statements cannot be empty or null")
    if "packageinstallrequest" in text.lower():
        data.advance_installs(call.org)
    if call.param("columns") == "true":
        try:
            return Response.of_json(200, soql.columns(text, tooling=call.tooling,
                                                      visible=_visible_fn(call)))
        except soql.SoqlError as exc:
            return rest_error(400, exc.code, exc.message)
    try:
        result = soql.run(text, cast(Org, _ScopedOrg(call)), version=call.version,
                          tooling=call.tooling, visible=_visible_fn(call))
    except soql.SoqlError as exc:
        return rest_error(400, exc.code, exc.echoed(text))
    if result.is_count:
        body: dict[str, Any] = {"totalSize": result.total_size, "done": True, "records": []}
    else:
        records = list(result.records)
        for record in records:
            _page_children(call, record)
        body = _page(call, records, result.total_size)
    return Response.of_json(200, _tooling_envelope(body, result.entity)
                            if call.tooling else body)


def _tooling_envelope(body: dict[str, Any], entity: str | None) -> dict[str, Any]:
    """The Tooling API's query answer: size, totalSize, done, queryLocator, entityTypeName,
    records (recorded traffic, tests/conformance). ``size`` counts this batch's records and
    ``queryLocator`` is the next batch's locator, else null; nextRecordsUrl sits before
    entityTypeName (docs/sandbox.md assumptions)."""
    out: dict[str, Any] = {"size": len(body["records"]), "totalSize": body["totalSize"],
                           "done": body["done"], "queryLocator": None}
    if "nextRecordsUrl" in body:
        out["queryLocator"] = body["nextRecordsUrl"].rsplit("/", 1)[1]
        out["nextRecordsUrl"] = body["nextRecordsUrl"]
    out["entityTypeName"] = entity
    out["records"] = body["records"]
    return out


def _page_children(call: _Call, record: dict[str, Any]) -> None:
    """A child sub-query answers one batch of children; the rest behind ``nextRecordsUrl``
    (platform-truth U7). The batch size is the sandbox's ``child_page_size``."""
    size = max(1, call.ctx.sandbox.child_page_size)
    for key, value in record.items():
        if not (isinstance(value, dict) and isinstance(value.get("records"), list)):
            continue
        children = value["records"]
        if len(children) <= size:
            continue
        locator = call.org.open_cursor(children, len(children), size)
        record[key] = {**value, "done": False, "records": children[:size],
                       "nextRecordsUrl": f"{call.base}/query/{locator}-{size}"}


def _page(call: _Call, records: list[dict[str, Any]], total: int) -> dict[str, Any]:
    size = max(1, call.ctx.sandbox.page_size)
    if len(records) <= size:
        return {"totalSize": total, "done": True, "records": records}
    locator = call.org.open_cursor(records, total)
    return {"totalSize": total, "done": False,
            "nextRecordsUrl": f"{call.base}/query/{locator}-{size}", "records": records[:size]}


def _query_more(call: _Call, token: str) -> Response:
    locator, _, offset_text = token.partition("-")
    cursor = call.org.cursor(locator)
    if cursor is None or not offset_text.isdigit():
        return rest_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    offset = int(offset_text)
    size = cursor.size or max(1, call.ctx.sandbox.page_size)
    page = cursor.records[offset:offset + size]
    body: dict[str, Any] = {"totalSize": cursor.total, "done": True}
    if offset + size < len(cursor.records):
        # Recorded traffic: nextRecordsUrl comes before records, as on the first page.
        body["done"] = False
        body["nextRecordsUrl"] = f"{call.base}/query/{locator}-{offset + size}"
    else:
        call.org.close_cursor(locator)
    body["records"] = page
    if not call.tooling:
        return Response.of_json(200, body)
    entity = page[0].get("attributes", {}).get("type") if page else None
    return Response.of_json(200, _tooling_envelope(body, entity))


# ---- describe and limits -------------------------------------------------------------------


def _object_summary(call: _Call, obj: SObject) -> dict[str, Any]:
    """An object's describeGlobal entry: the recorded key set in the recorded (alphabetical)
    order (tests/conformance). The CRUD flags, name and key prefix are the sandbox's; the
    other flags are fixed defaults (docs/sandbox.md, known differences)."""
    url = f"{call.base}/sobjects/{obj.name}"
    return {"activateable": False, "associateEntityType": None, "associateParentEntity": None,
            "createable": obj.createable, "custom": False, "customSetting": False,
            "deepCloneable": False, "deletable": obj.deletable, "deprecatedAndHidden": False,
            "feedEnabled": False, "hasSubtypes": False, "isInterface": False,
            "isSubtype": False, "keyPrefix": KEY_PREFIXES.get(obj.name), "label": obj.name,
            "labelPlural": obj.name, "layoutable": False, "mergeable": False,
            "mruEnabled": False, "name": obj.name, "queryable": True, "replicateable": False,
            "retrieveable": True, "searchable": False, "triggerable": False,
            "undeletable": False, "updateable": obj.updateable,
            "urls": {"rowTemplate": f"{url}/{{ID}}", "describe": f"{url}/describe",
                     "sobject": url}}


def _describe_global(call: _Call) -> Response:
    objects = [_object_summary(call, obj) for obj in OBJECTS.values()
               if _visible_object(call, obj)]
    return Response.of_json(200, {"encoding": "UTF-8", "maxBatchSize": COLLECTION_MAX,
                                  "sobjects": objects})


def _object_info(call: _Call, name: str) -> Response:
    obj = _resolve_type(call, name)
    if obj is None:
        return data.not_found().response()
    return Response.of_json(200, {"objectDescribe": _object_summary(call, obj),
                                  "recentItems": []})


def _describe(call: _Call, name: str) -> Response:
    obj = _resolve_type(call, name)
    if obj is None:
        return data.not_found().response()
    refs = {r.field: r for r in obj.references}
    fields = []
    read_only = data.read_only_on_create(obj.name)
    for fname, ftype in obj.fields.items():
        ref = refs.get(fname)
        fields.append({
            "name": fname, "label": fname, "type": ftype,
            "filterable": obj.filterable is None or fname in obj.filterable,
            "createable": obj.createable and fname not in read_only,
            "updateable": obj.updateable and fname in obj.updateable_fields,
            "nillable": fname not in obj.required_on_create and fname != "Id",
            "referenceTo": [ref.target] if ref else [],
            "relationshipName": ref.relationship if ref else None,
        })
    body = _object_summary(call, obj)
    body["fields"] = fields
    body["childRelationships"] = [
        # keys and order as a recorded describe has them (tests/conformance)
        {"cascadeDelete": False, "childSObject": c.child, "deprecatedAndHidden": False,
         "field": c.field, "junctionIdListNames": [], "junctionReferenceTo": [],
         "relationshipName": c.name, "restrictedDelete": False}
        for c in obj.children]
    return Response.of_json(200, body)


def _limits(org: Org) -> dict[str, dict[str, int]]:
    # A real answer lists its limits in alphabetical order, each {Max, Remaining}
    # (tests/conformance/pasted/telegraf_limits.yaml).
    return {
        "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        "DailyApiRequests": {"Max": DAILY_API_MAX,
                             "Remaining": max(0, DAILY_API_MAX - org.api_usage)},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        "DataStorageMB": {"Max": 1024, "Remaining": 1024},
    }


# ---- records -------------------------------------------------------------------------------


def _shape(call: _Call, obj: SObject, row: Row, only: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": {"type": obj.name,
                                          "url": f"{call.base}/sobjects/{obj.name}/{row['Id']}"}}
    for fname in only if only is not None else list(obj.fields):
        out[fname] = row.get(fname)
    return out


def _view(call: _Call, obj: SObject, record_id: str) -> Row | None:
    """The row as queries see it (view fields computed), or None."""
    keep = _row_filter(call, obj.name)
    for row in call.org.rows(obj.name):
        if same_id(row.get("Id"), record_id) and (keep is None or keep(row)):
            return row
    return None


def _check_id(obj: SObject, record_id: str) -> Failure | None:
    prefix = KEY_PREFIXES.get(obj.name)
    if not is_valid_id(record_id) or (prefix is not None and record_id[:3] != prefix):
        return Failure(400, "MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: "
                                            f"{record_id}", ("Id",))
    return None


def _field_list(obj: SObject, text: str | None) -> list[str] | Failure | None:
    if text is None:
        return None
    out = []
    for raw in text.split(","):
        name = obj.field_name(raw.strip())
        if name is None:
            return Failure(400, "INVALID_FIELD",
                           f"No such column '{raw.strip()}' on sobject of type {obj.name}")
        out.append(name)
    return out


def _record(call: _Call, type_name: str, record_id: str) -> Response:
    obj = _resolve_type(call, type_name)
    if obj is None:
        return data.not_found().response()
    bad = _check_id(obj, record_id)
    if call.method == "GET":
        if bad is not None:
            return bad.response()
        only = _field_list(obj, call.param("fields"))
        if isinstance(only, Failure):
            return only.response()
        if obj.name == "PackageInstallRequest":
            data.advance_installs(call.org)
        row = _view(call, obj, record_id)
        if row is None:
            return data.not_found().response()
        return Response.of_json(200, _shape(call, obj, row, only))
    call.ctx.mark_write()
    if bad is not None:
        return bad.response()
    if call.method == "DELETE":
        failure = data.delete(call.org, call.user_id, obj, record_id)
        if failure is not None and failure.code == "NOT_FOUND" and call.org.ids.issued(record_id):
            # Recorded traffic (tests/conformance): deleting a record already deleted is 404
            # ENTITY_IS_DELETED; an id the org never issued stays NOT_FOUND.
            failure = Failure(404, "ENTITY_IS_DELETED", "entity is deleted")
    else:
        values = _json_object(call.body)
        if isinstance(values, Failure):
            return values.response()
        failure = data.update(call.org, call.user_id, obj, record_id, values)
    return failure.response() if failure is not None else Response(204)


def _create(call: _Call, type_name: str) -> Response:
    obj = _resolve_type(call, type_name)
    if obj is None:
        return data.not_found().response()
    call.ctx.mark_write()
    values = _json_object(call.body)
    if isinstance(values, Failure):
        return values.response()
    values.pop("attributes", None)
    result = data.insert(call.org, call.user_id, obj, values)
    if isinstance(result, Failure):
        return result.response()
    # Recorded traffic (tests/conformance): a 201 carries the new record's path in Location.
    return Response.of_json(201, {"id": result, "success": True, "errors": []},
                            {"Location": f"{call.base}/sobjects/{obj.name}/{result}"})


def _json_object(body: bytes) -> dict[str, Any] | Failure:
    parsed = _json(body)
    if not isinstance(parsed, dict):
        return Failure(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    return parsed


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


# ---- sObject collections -------------------------------------------------------------------


def _bool_param(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _collections(call: _Call) -> Response:
    call.ctx.mark_write()
    if call.method == "DELETE":
        ids = [i for i in (call.param("ids") or "").split(",") if i]
        all_or_none = _bool_param(call.param("allOrNone") or "false")
        if len(ids) > COLLECTION_MAX:
            return _too_many()
        return _run_collection(call, ids, all_or_none, _delete_one)
    payload = _json(call.body)
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        return rest_error(400, "JSON_PARSER_ERROR",
                          "The request body must be an object with a records array")
    records = payload["records"]
    if len(records) > COLLECTION_MAX:
        return _too_many()
    if call.method == "POST":
        mixed = data.mixed_setup_types([str((r.get("attributes") or {}).get("type"))
                                        for r in records if isinstance(r, dict)
                                        and isinstance(r.get("attributes"), dict)])
        if mixed is not None:
            return mixed.response()
    all_or_none = _bool_param(payload.get("allOrNone", False))
    worker = _insert_one if call.method == "POST" else _update_one
    return _run_collection(call, records, all_or_none, worker)


def _too_many() -> Response:
    return rest_error(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than "
                                                f"{COLLECTION_MAX} records into this call")


_Outcome = tuple[str | None, Failure | None]


def _run_collection(call: _Call, items: list[Any], all_or_none: bool,
                    worker: Callable[[_Call, Any], _Outcome]) -> Response:
    snapshot = call.org.snapshot(metadata=False) if all_or_none else None
    outcomes = [worker(call, item) for item in items]
    failed = any(f is not None for _, f in outcomes)
    results: list[dict[str, Any]] = []
    for record_id, failure in outcomes:
        if failure is not None:
            result: dict[str, Any] = {"success": False, "errors": [failure.item()]}
            if record_id is not None:
                result = {"id": record_id, **result}
            results.append(result)
        elif failed and all_or_none:
            rolled_back: dict[str, Any] = {"success": False, "errors": [
                {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": ROLLED_BACK,
                 "fields": []}]}
            # A pasted real answer (tests/conformance, treecipe_all_or_none): a create that
            # was rolled back names no id; updates and deletes echo the id they were given.
            if worker is not _insert_one:
                rolled_back = {"id": record_id, **rolled_back}
            results.append(rolled_back)
        else:
            results.append({"id": record_id, "success": True, "errors": []})
    if failed and snapshot is not None:
        call.org.restore(snapshot)
    return Response.of_json(200, results)


def _item_type(call: _Call, item: Any) -> SObject | Failure:
    if not isinstance(item, dict):
        return Failure(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
    attributes = item.get("attributes")
    type_name = attributes.get("type") if isinstance(attributes, dict) else None
    if not type_name:
        return Failure(400, "INVALID_TYPE", "Must specify a type in the attributes of each "
                                            "record")
    obj = _resolve_type(call, str(type_name))
    if obj is None:
        return Failure(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
    return obj


def _insert_one(call: _Call, item: Any) -> _Outcome:
    obj = _item_type(call, item)
    if isinstance(obj, Failure):
        return None, obj
    values = {k: v for k, v in item.items() if k != "attributes"}
    result = data.insert(call.org, call.user_id, obj, values)
    return (None, result) if isinstance(result, Failure) else (result, None)


def _update_one(call: _Call, item: Any) -> _Outcome:
    obj = _item_type(call, item)
    if isinstance(obj, Failure):
        return None, obj
    values = {k: v for k, v in item.items() if k != "attributes"}
    record_id = next((str(v) for k, v in values.items() if k.lower() == "id"), None)
    if not record_id:
        return None, Failure(400, "MISSING_ARGUMENT", "Id not specified in an update call",
                             ("Id",))
    values = {k: v for k, v in values.items() if k.lower() != "id"}
    bad = _check_id(obj, record_id)
    if bad is not None:
        return record_id, bad
    return record_id, data.update(call.org, call.user_id, obj, record_id, values)


def _delete_one(call: _Call, record_id: Any) -> _Outcome:
    rid = str(record_id)
    name = _PREFIX_TO_OBJECT.get(rid[:3]) if is_valid_id(rid) else None
    obj = _resolve_type(call, name) if name else None
    if obj is None:
        return rid, Failure(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
    if call.org.get(obj.name, rid) is None:
        return rid, Failure(400, "ENTITY_IS_DELETED", "entity is deleted")
    return rid, data.delete(call.org, call.user_id, obj, rid)


def _collections_get(call: _Call, type_name: str) -> Response:
    obj = _resolve_type(call, type_name)
    if obj is None:
        return data.not_found().response()
    only = _field_list(obj, call.param("fields"))
    if isinstance(only, Failure):
        return only.response()
    if only is None:
        return rest_error(400, "MISSING_ARGUMENT", "fields parameter is required")
    out: list[dict[str, Any] | None] = []
    for rid in (call.param("ids") or "").split(","):
        if not rid:
            continue
        bad = _check_id(obj, rid)
        if bad is not None:
            return bad.response()
        row = _view(call, obj, rid)
        out.append(_shape(call, obj, row, only) if row is not None else None)
    return Response.of_json(200, out)


# ---- composite -----------------------------------------------------------------------------


@dataclass
class _SubResult:
    reference_id: str
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"body": self.body, "httpHeaders": self.headers,
                "httpStatusCode": self.status, "referenceId": self.reference_id}


def _composite(call: _Call) -> Response:
    payload = _json(call.body)
    if call.in_composite:
        return rest_error(400, "INVALID_API_INPUT", "A composite request cannot be nested")
    if not isinstance(payload, dict) or not isinstance(payload.get("compositeRequest"), list):
        return rest_error(400, "JSON_PARSER_ERROR",
                          "The request body must be an object with a compositeRequest array")
    subs: list[Any] = payload["compositeRequest"]
    if len(subs) > COMPOSITE_MAX:
        return rest_error(400, "LIMIT_EXCEEDED", f"Limit Exceeded: a composite request may have "
                                                 f"at most {COMPOSITE_MAX} subrequests")
    heavy = sum(1 for s in subs if isinstance(s, dict) and _is_query_or_collection(s.get("url")))
    if heavy > COMPOSITE_QUERY_MAX:
        return rest_error(400, "LIMIT_EXCEEDED",
                          f"Limit Exceeded: a composite request may have at most "
                          f"{COMPOSITE_QUERY_MAX} query or sObject Collections subrequests")
    for sub in subs:
        if not isinstance(sub, dict) or not all(sub.get(k) for k in ("method", "url",
                                                                     "referenceId")):
            return rest_error(400, "JSON_PARSER_ERROR",
                              "Each subrequest needs method, url and referenceId")
    all_or_none = _bool_param(payload.get("allOrNone", False))
    snapshot = call.org.snapshot(metadata=False) if all_or_none else None
    done: list[_SubResult] = []
    bodies: dict[str, Any] = {}
    halted = False
    failing: _SubResult | None = None
    call.org.begin_composite()
    try:
        for sub in _execution_order(subs, _collated(payload, call.version)):
            ref = str(sub["referenceId"])
            if halted:
                done.append(_SubResult(ref, 400, [{"errorCode": "PROCESSING_HALTED",
                                                   "message": HALTED}]))
                continue
            result = _run_subrequest(call, sub, bodies)
            done.append(result)
            # the composite's allOrNone overrides a collections subrequest's own flag ("allOrNone
            # Parameters in Composite and Collections Requests"): one refused record halts it all
            if result.status < 300 and not (all_or_none and _refused_item(result.body)):
                bodies[ref] = result.body
            elif all_or_none:
                halted = True
                failing = result
    finally:
        call.org.end_composite()
    if halted and snapshot is not None:
        call.org.restore(snapshot)
        for result in done:
            if result.status < 300 and result is not failing:
                result.status = 400
                result.body = [{"errorCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                "message": ROLLED_BACK}]
    position = {str(sub["referenceId"]): i for i, sub in enumerate(subs)}
    done.sort(key=lambda r: position.get(r.reference_id, len(subs)))  # answered in request order
    return Response.of_json(200, {"compositeResponse": [r.as_json() for r in done]})


def _collated(payload: dict[str, Any], version: str) -> bool:
    """collateSubrequests: default true from API 49.0, false in 48.0; subrequests with HTTP
    headers are never collated ("Composite Request Body", REST API Developer Guide)."""
    flag = payload.get("collateSubrequests")
    if flag is None:
        return float(version) >= 49.0
    return _bool_param(flag)


def _execution_order(subs: list[Any], collated: bool) -> list[Any]:
    """Collated subrequests have no guaranteed order except an explicit dependency (an
    ``@{ref}`` of an earlier one): the sandbox runs them last first, each after what it
    references, so a client that needs an order and sends collateSubrequests true is caught.
    Uncollated subrequests, and those with headers, run in the order received."""
    if not collated:
        return subs
    pinned = [s for s in subs if s.get("httpHeaders")]
    free = [s for s in reversed(subs) if not s.get("httpHeaders")]
    order: list[Any] = []
    placed: set[str] = set()
    names = {str(s["referenceId"]) for s in subs}
    while free:
        for sub in free:
            needs = {m.split(".")[0] for m in _REFERENCE.findall(json.dumps(
                [sub.get("url"), sub.get("body")]))} & names
            if needs <= placed:
                break
        else:  # a cycle or a forward reference: keep the rest as received (it fails as it would)
            sub = free[-1]
        free.remove(sub)
        order.append(sub)
        placed.add(str(sub["referenceId"]))
    return pinned + order


def _refused_item(body: Any) -> bool:
    """A collections answer (a list of save results) with a record that was not saved."""
    return isinstance(body, list) and any(isinstance(r, dict) and r.get("success") is False
                                          for r in body)


def _is_query_or_collection(url: Any) -> bool:
    parts = _split(urlsplit(str(url or "")).path)
    rest = parts[3:]
    return bool(rest) and (rest[0] in ("query", "queryAll") or rest[:2] == ["composite",
                                                                           "sobjects"])


def _run_subrequest(call: _Call, sub: dict[str, Any], bodies: dict[str, Any]) -> _SubResult:
    ref = str(sub["referenceId"])
    try:
        url = _substitute(str(sub["url"]), bodies)
        body = _substitute_tree(sub.get("body"), bodies)
    except _UnresolvedReference as exc:
        return _SubResult(ref, 400, [{"errorCode": "PROCESSING_HALTED",
                                      "message": f"Invalid reference specified. No value for "
                                                 f"{exc.expression} found in {exc.ref}."}])
    split = urlsplit(url)
    match = _PATH.match(split.path)
    if match is None:
        return _SubResult(ref, 404, [{"errorCode": "NOT_FOUND", "message": NOT_FOUND_MESSAGE}])
    version = match.group(1)
    if version not in api_versions(call.org.max_api_version):
        return _SubResult(ref, 404, [{"errorCode": "NOT_FOUND", "message": NOT_FOUND_MESSAGE}])
    inner = _Call(call.ctx, call.org, call.session, version, match.group(2) is not None,
                  str(sub["method"]).upper(), _split(match.group(3)),
                  parse_qs(split.query, keep_blank_values=True),
                  json.dumps(body).encode() if body is not None else b"", in_composite=True)
    response = _route(inner)
    parsed = json.loads(response.body) if response.body else None
    headers = {}
    if response.status == 201 and isinstance(parsed, dict) and parsed.get("id"):
        type_name = inner.parts[1] if len(inner.parts) > 1 else ""
        headers["Location"] = f"{inner.base}/sobjects/{type_name}/{parsed['id']}"
    return _SubResult(ref, response.status, parsed, headers=headers)


class _UnresolvedReference(Exception):
    def __init__(self, expression: str, ref: str) -> None:
        super().__init__(expression)
        self.expression = expression
        self.ref = ref


def _lookup_reference(expression: str, bodies: dict[str, Any]) -> Any:
    """Resolve ``ref.path[0].Field`` against the bodies of earlier subrequests."""
    tokens = re.findall(r"[^.\[\]]+|\[\d+\]", expression)
    if not tokens or tokens[0] not in bodies:
        raise _UnresolvedReference(expression, tokens[0] if tokens else expression)
    value: Any = bodies[tokens[0]]
    for token in tokens[1:]:
        if token.startswith("["):
            index = int(token[1:-1])
            if not isinstance(value, list) or index >= len(value):
                raise _UnresolvedReference(expression, tokens[0])
            value = value[index]
        else:
            if not isinstance(value, dict) or token not in value:
                raise _UnresolvedReference(expression, tokens[0])
            value = value[token]
    return value


def _substitute(text: str, bodies: dict[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        value = _lookup_reference(match.group(1), bodies)
        return str(value) if not isinstance(value, bool) else str(value).lower()
    return _REFERENCE.sub(replace, text)


def _substitute_tree(node: Any, bodies: dict[str, Any]) -> Any:
    if isinstance(node, str):
        whole = _REFERENCE.fullmatch(node)
        if whole is not None:  # keep the referenced value's JSON type
            return _lookup_reference(whole.group(1), bodies)
        return _substitute(node, bodies)
    if isinstance(node, list):
        return [_substitute_tree(v, bodies) for v in node]
    if isinstance(node, dict):
        return {k: _substitute_tree(v, bodies) for k, v in node.items()}
    return node

