"""The gateway's writes, each saying truthfully whether it may be sent again (retry.Resend).

Rows through ``composite/sobjects`` with allOrNone (200 per request): an update by id is
``IDEMPOTENT``; an insert is ``AFTER_READ_BACK`` (sent again only for the rows a read shows
missing, ADR 0009); a delete is ``NEVER`` (ADR 0030). A Tooling insert (the package install
request) is ``NEVER``; the install is then polled (P2). Metadata through ``upsertMetadata`` (10
per request, read-modify-write on the component the same run read) is ``IDEMPOTENT``.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from remediate.errors import ConfigError, OutcomeUnknown, SalesforceError
from remediate.logging import get_logger
from remediate.salesforce import reads
from remediate.salesforce.errors import bad_answer, scrub
from remediate.salesforce.planner import METADATA_PER_CALL, _in
from remediate.salesforce.retry import Resend, maybe_applied
from remediate.salesforce.session import Connection

ROWS_PER_CALL = 200
log = get_logger()


def insert_rows(conn: Connection, sobject: str, rows: list[dict[str, Any]]) -> list[str]:
    """Insert rows all-or-none; returns the new ids.

    An insert is not idempotent: sent twice, it makes two rows or fails DUPLICATE_VALUE.
    When a request fails in a way that leaves its outcome open (the connection dropped
    after sending, a read timeout, an unreadable answer), the gateway does not send it
    again blindly: it reads which of the rows now exist, and inserts only the missing ones
    (ADR 0009). Rows found that way count as inserted by this call.
    """
    ids: list[str] = []
    for start in range(0, len(rows), ROWS_PER_CALL):
        ids.extend(_insert_chunk(conn, sobject, rows[start:start + ROWS_PER_CALL]))
    return ids


def _insert_chunk(conn: Connection, sobject: str, rows: list[dict[str, Any]]) -> list[str]:
    """One insert request under the retry policy, ``Resend.AFTER_READ_BACK``: after a failure
    that may have committed it, the next attempt first reads which of the rows now exist and
    sends only the missing ones; when the policy gives up, one last read-back decides."""
    label = f"{conn.org_label}: inserting {len(rows)} {sobject} row(s)"
    found: dict[int, str] = {}
    open_: list[OutcomeUnknown] = []  # the last failure, when it may have committed rows
    used: list[Any] = [None]

    def look() -> None:
        last = open_[-1]
        try:
            existing = _find_rows(conn, sobject, rows)
        except SalesforceError as err:
            raise OutcomeUnknown(f"{last.message}; reading back whether it was applied "
                                 f"failed too ({err.message})", code=last.code) from None
        found.update(existing)
        if existing:
            log.info("gateway.insert_found_after_failure", sobject=sobject,
                     rows=len(existing), error=last.message)

    def attempt() -> list[str]:
        if open_:
            look()
            open_.clear()
        missing = [i for i in range(len(rows)) if i not in found]
        if missing:
            body = {"allOrNone": True, "records": [{"attributes": {"type": sobject}, **rows[i]}
                                                   for i in missing]}
            what = f"{conn.org_label}: inserting {len(missing)} {sobject} row(s)"
            try:
                answer = conn._attempt(what, partial(conn._sf_call, "restful",
                                                     "composite/sobjects", method="POST",
                                                     json=body), used)
                for i, new_id in zip(missing, _collection_ids(conn, sobject, answer),
                                     strict=True):
                    found[i] = new_id
            except SalesforceError as err:
                if maybe_applied(err):
                    open_.append(OutcomeUnknown(f"{err.message}; the write may or may not "
                                                "have been applied", code=err.code))
                raise
        return [found[i] for i in range(len(rows))]

    try:
        return conn._retrying(label, attempt, used, write=Resend.AFTER_READ_BACK)
    except OutcomeUnknown:
        raise
    except SalesforceError:
        if not open_:
            raise
        last = open_[-1]
        look()
        if len(found) == len(rows):
            return [found[i] for i in range(len(rows))]
        raise OutcomeUnknown(f"{last.message}; {len(rows) - len(found)} of {len(rows)} "
                             "row(s) may or may not have been inserted", code=last.code) from None


def _find_rows(conn: Connection, sobject: str, rows: list[dict[str, Any]]) -> dict[int, str]:
    """Index -> id of the rows (matched on every field) that exist in the org."""
    names = sorted({k for r in rows for k, v in r.items() if isinstance(v, str)})
    if not names:
        return {}
    where = " AND ".join(f"{n} IN ({_in(sorted({str(r[n]) for r in rows if n in r}))})"
                         for n in names)
    found = reads.query(conn, f"SELECT Id, {', '.join(names)} FROM {sobject} WHERE {where}")
    out: dict[int, str] = {}
    for i, row in enumerate(rows):
        for rec in found:
            if all(_same(rec.get(k), v) for k, v in row.items()):
                out[i] = str(rec["Id"])
                break
    return out


def update_rows(conn: Connection, sobject: str, rows: list[dict[str, Any]]) -> None:
    """Update rows (each with its Id) all-or-none. Setting fields by id is idempotent
    (``Resend.IDEMPOTENT``): a request whose outcome is open is sent again."""
    for start in range(0, len(rows), ROWS_PER_CALL):
        chunk = rows[start:start + ROWS_PER_CALL]
        body = {"allOrNone": True,
                "records": [{"attributes": {"type": sobject}, **r} for r in chunk]}
        answer = conn._call(f"updating {len(chunk)} {sobject} row(s)",
                            partial(conn._sf_call, "restful", "composite/sobjects",
                                    method="PATCH", json=body),
                            write=Resend.IDEMPOTENT)
        _collection_ids(conn, sobject, answer)


def delete_rows(conn: Connection, sobject: str, ids: list[str]) -> None:
    """Delete rows by id all-or-none (composite/sobjects DELETE, 200 ids per request).

    Never sent again when its outcome is open (``Resend.NEVER``): its effect would repeat
    harmlessly, but a second delete of a row the first one deleted answers ENTITY_IS_DELETED,
    and allOrNone rolls the whole request back, so a committed delete would be reported as
    refused. Ending "outcome unknown" is the truth; the next read shows what happened."""
    for start in range(0, len(ids), ROWS_PER_CALL):
        chunk = ids[start:start + ROWS_PER_CALL]
        params = {"ids": ",".join(chunk), "allOrNone": "true"}
        answer = conn._call(f"deleting {len(chunk)} {sobject} row(s)",
                            partial(conn._sf_call, "restful", "composite/sobjects",
                                    method="DELETE", params=params),
                            write=Resend.NEVER)
        _collection_ids(conn, sobject, answer or [])


def _collection_ids(conn: Connection, sobject: str, answer: Any) -> list[str]:
    if not isinstance(answer, list) or not all(isinstance(r, dict) for r in answer):
        raise bad_answer(f"{conn.org_label}: writing {sobject} rows",
                         "not a list of save results")
    failures = [r for r in answer if not r.get("success")]
    if failures:
        errors = [e for r in failures for e in r.get("errors") or []
                  if isinstance(e, dict)
                  and e.get("statusCode") != "ALL_OR_NONE_OPERATION_ROLLED_BACK"]
        first = errors[0] if errors else ((failures[0].get("errors") or [{}])[0] or {})
        if not isinstance(first, dict) or not first.get("statusCode"):
            raise bad_answer(f"{conn.org_label}: writing {sobject} rows",
                             "a save result with neither success nor an error")
        raise SalesforceError(scrub(f"{conn.org_label}: {sobject} write refused: "
                                    f"{first.get('statusCode')}: {first.get('message')}"),
                              code=first.get("statusCode"))
    return [str(r.get("id")) for r in answer]


def tooling_insert(conn: Connection, sobject: str, row: dict[str, Any]) -> str:
    """Create one Tooling row; never sent again when its outcome is open (a second
    PackageInstallRequest is a second install)."""
    answer = conn._call(f"creating a Tooling {sobject}",
                        lambda: conn.sf.toolingexecute(f"sobjects/{sobject}/", method="POST",
                                                       data=row),
                        write=Resend.NEVER)
    if not isinstance(answer, dict) or not answer.get("id"):
        raise OutcomeUnknown(f"{conn.org_label}: creating a Tooling {sobject}: unexpected "
                             "answer (no id); it may or may not have been created",
                             code="BAD_ANSWER")
    return str(answer["id"])


def install_package(conn: Connection, fields: dict[str, Any], *, key_env: str | None = None) -> str:
    """Install a package: insert a Tooling PackageInstallRequest, then poll it until its
    Status is SUCCESS or ERROR (platform-truth P2), at most ``install_deadline_s``. A
    progress line per poll goes to ``progress``. The installation key is read from the
    environment variable ``key_env`` here, sent as ``Password``, and appears in no log,
    error or journal. Returns the request's id."""
    import os

    row = dict(fields)
    version = str(row.get("SubscriberPackageVersionKey"))
    if key_env:
        key = os.environ.get(key_env)
        if not key:
            raise ConfigError(f"{conn.org_label}: installing package {version}: the "
                              f"installation key variable {key_env} is not set; nothing "
                              "was written")
        row["Password"] = key
    request_id = tooling_insert(conn, "PackageInstallRequest", row)
    deadline = time.monotonic() + conn.install_deadline_s
    polls = 0
    while True:
        polls += 1
        answer = conn._call(
            f"reading install request {request_id}",
            lambda: conn.sf.toolingexecute(f"sobjects/PackageInstallRequest/{request_id}",
                                           method="GET"))
        if not isinstance(answer, dict):
            raise bad_answer(f"{conn.org_label}: reading install request {request_id}",
                             "not a record")
        status = str(answer.get("Status") or "")
        conn.progress(f"{conn.org_label}: package {version}: {status or 'no status'} "
                      f"(poll {polls}, request {request_id})")
        if status == "SUCCESS":
            return request_id
        if status == "ERROR":
            errors = (answer.get("Errors") or {}).get("errors") \
                if isinstance(answer.get("Errors"), dict) else None
            text = "; ".join(str(e.get("message")) for e in errors or []
                             if isinstance(e, dict)) or "no error text"
            raise SalesforceError(scrub(f"{conn.org_label}: installing package {version} "
                                        f"ended in ERROR: {text}"), code="INSTALL_ERROR")
        if time.monotonic() + conn.install_poll_s > deadline:
            raise OutcomeUnknown(f"{conn.org_label}: installing package {version}: still "
                                 f"{status or 'not finished'} after {polls} poll(s) "
                                 f"(deadline {conn.install_deadline_s:.0f} s); request "
                                 f"{request_id} may yet complete", code="INSTALL_TIMEOUT")
        time.sleep(conn.install_poll_s)


def upsert_metadata(conn: Connection, type_: str, components: list[dict[str, Any]]) -> None:
    """Upsert components (read-modify-write; a Profile carries only the parts written, a
    Profile deploy overlays, platform-truth U3): idempotent, so sent again when the
    outcome of a request is open."""
    for start in range(0, len(components), METADATA_PER_CALL):
        chunk = components[start:start + METADATA_PER_CALL]

        def call(c: list[dict[str, Any]] = chunk) -> None:
            factory = getattr(conn.mdapi, type_)
            factory.upsert([factory(**_for_zeep(comp)) for comp in c])

        try:
            conn._call(f"writing {type_} metadata ({', '.join(c['fullName'] for c in chunk)})",
                       call, write=Resend.IDEMPOTENT)
        except SalesforceError as err:
            raise type(err)(_metadata_message(err.message), code=err.code) from None


def _same(found: Any, wanted: Any) -> bool:
    if isinstance(found, str) and isinstance(wanted, str) and len(found) >= 15 \
            and len(wanted) >= 15:
        return found[:15] == wanted[:15]  # 15- and 18-character ids name the same row
    return bool(found == wanted)


def _for_zeep(component: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in component.items() if not k.startswith("_")}


def _metadata_message(message: str) -> str:
    # simple-salesforce raises a bare Exception "\n<fullName>: (<statusCode>, <message>), "
    return " ".join(message.split()).rstrip(", ")


# ---- a licence and the permission set assignments that need it, in one composite (ADR 0044) --


class Together:
    """What ``insert_together`` did. ``how``: ``together`` (one composite, committed),
    ``apart`` (the composite was rolled back because the assignments needed the licence first,
    then the licence and the assignments were sent one after the other) or ``read_back`` (the
    composite's outcome was open; a read showed what it committed and the rest was sent).
    ``licence`` and ``assignments`` each hold the new ids, or the error that stopped them;
    ``assignments`` is None when they were never sent (the licence failed first)."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.licence: list[str] | SalesforceError = []
        self.assignments: list[str] | SalesforceError | None = None
        self.rolled_back: str | None = None  # the composite's refusal, when it was rolled back


def insert_together(conn: Connection, licences: list[dict[str, Any]],
                    assignments: list[dict[str, Any]]) -> Together:
    """Insert permission set licence assignments and the permission set assignments that need
    them in ONE ``composite`` request: allOrNone true (either both are committed or neither,
    "Composite Request Body"; it overrides the collections' own flag, "allOrNone Parameters in
    Composite and Collections Requests"), collateSubrequests false (the subrequests run in the
    order received), one ``composite/sobjects`` POST per type (a collection may not mix two
    setup objects, "Create Records Using sObject Collections").

    Whether the assignments see the licence inserted by the earlier subrequest is not
    documented (docs/sandbox.md): when the answer is the assignment refused while the rest was
    rolled back, the two are sent apart (licence, then assignments) and ``how`` says so. Sent
    once (``Resend.NEVER``): after an open outcome a read shows which rows exist and only the
    missing ones are inserted (insert_rows, which reads before it resends, ADR 0009)."""
    if len(licences) > ROWS_PER_CALL or len(assignments) > ROWS_PER_CALL:
        raise ValueError("insert_together takes at most 200 rows of each type")
    base = f"/services/data/v{conn.version}/composite/sobjects"
    body = {"allOrNone": True, "collateSubrequests": False, "compositeRequest": [
        {"method": "POST", "url": base, "referenceId": ref,
         "body": {"allOrNone": True, "records": [{"attributes": {"type": sobject}, **r}
                                                 for r in rows]}}
        for ref, sobject, rows in (("licence", "PermissionSetLicenseAssign", licences),
                                   ("assignments", "PermissionSetAssignment", assignments))]}
    what = (f"inserting {len(licences)} PermissionSetLicenseAssign and {len(assignments)} "
            "PermissionSetAssignment row(s) in one composite")
    try:
        answer = conn._call(what, partial(conn._sf_call, "restful", "composite", method="POST",
                                          json=body), write=Resend.NEVER)
    except OutcomeUnknown as err:
        return conn.sequential(partial(_after_open, conn, licences, assignments, err))
    parts = answer.get("compositeResponse") if isinstance(answer, dict) else None
    if not isinstance(parts, list) or len(parts) != 2 or not all(isinstance(p, dict)
                                                                 for p in parts):
        raise bad_answer(f"{conn.org_label}: {what}", "not two subrequest answers")
    lic, psa = parts
    if _committed(lic) and _committed(psa):
        done = Together("together")
        done.licence = _collection_ids(conn, "PermissionSetLicenseAssign", lic["body"])
        done.assignments = _collection_ids(conn, "PermissionSetAssignment", psa["body"])
        return done
    # nothing was committed (allOrNone): which subrequest refused, and why?
    lic_error, psa_error = subrequest_refusal(lic), subrequest_refusal(psa)
    if lic_error is not None:
        done = Together("together")
        done.licence = SalesforceError(scrub(f"{conn.org_label}: PermissionSetLicenseAssign "
                                             f"write refused: {lic_error[0]}: {lic_error[1]}"),
                                       code=lic_error[0])
        return done  # the assignments were rolled back unsent in effect: never committed
    reason = f"{psa_error[0]}: {psa_error[1]}" if psa_error else "no error given"
    log.info("gateway.composite_rolled_back", org=conn.org_label, refused=reason)
    done = Together("apart")
    done.rolled_back = scrub(reason)
    return conn.sequential(partial(_apart, conn, licences, assignments, done))


def _apart(conn: Connection, licences: list[dict[str, Any]], assignments: list[dict[str, Any]],
           done: Together) -> Together:
    """Today's path: the licence, then (once it is written) the assignments."""
    try:
        done.licence = insert_rows(conn, "PermissionSetLicenseAssign", licences)
    except SalesforceError as err:
        done.licence = err
        return done
    try:
        done.assignments = insert_rows(conn, "PermissionSetAssignment", assignments)
    except SalesforceError as err:
        done.assignments = err
    return done


def send_composite(conn: Connection, what: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """One REST composite, sent once (``Resend.NEVER``): doctor's rolled-back probe."""
    answer = conn._call(what, partial(conn._sf_call, "restful", "composite", method="POST",
                                      json=body), write=Resend.NEVER)
    parts = answer.get("compositeResponse") if isinstance(answer, dict) else None
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise bad_answer(f"{conn.org_label}: {what}", "no compositeResponse list")
    return parts


def _committed(part: dict[str, Any]) -> bool:
    status = part.get("httpStatusCode")
    body = part.get("body")
    return isinstance(status, int) and status < 300 and isinstance(body, list) and all(
        isinstance(r, dict) and r.get("success") for r in body)


_NOT_THE_CAUSE = frozenset({"ALL_OR_NONE_OPERATION_ROLLED_BACK", "PROCESSING_HALTED"})


def subrequest_refusal(part: dict[str, Any]) -> tuple[str, str] | None:
    """(code, message) of a subrequest's own refusal; None when it was only rolled back."""
    body = part.get("body")
    errors: list[Any] = []
    for item in body if isinstance(body, list) else []:
        if isinstance(item, dict) and "errors" in item:  # a save result
            errors.extend(item.get("errors") or [])
        elif isinstance(item, dict):  # an error of the subrequest itself
            errors.append({"statusCode": item.get("errorCode"), "message": item.get("message")})
    for e in errors:
        if isinstance(e, dict) and e.get("statusCode") and e["statusCode"] not in _NOT_THE_CAUSE:
            return str(e["statusCode"]), str(e.get("message"))
    return None


def _after_open(conn: Connection, licences: list[dict[str, Any]],
                assignments: list[dict[str, Any]], err: OutcomeUnknown) -> Together:
    """The composite's outcome is open: read which rows exist, insert only the missing ones
    (licence first). A read that fails leaves both open."""
    done = Together("read_back")
    try:
        found_lic = _find_rows(conn, "PermissionSetLicenseAssign", licences)
        found_psa = _find_rows(conn, "PermissionSetAssignment", assignments)
    except SalesforceError as read_err:
        open_ = OutcomeUnknown(f"{err.message}; reading back whether it was applied failed "
                               f"too ({read_err.message})", code=err.code)
        done.licence, done.assignments = open_, open_
        return done
    try:
        done.licence = _fill(conn, "PermissionSetLicenseAssign", licences, found_lic)
    except SalesforceError as lic_err:
        done.licence = lic_err
        return done
    try:
        done.assignments = _fill(conn, "PermissionSetAssignment", assignments, found_psa)
    except SalesforceError as psa_err:
        done.assignments = psa_err
    return done


def _fill(conn: Connection, sobject: str, rows: list[dict[str, Any]],
          found: dict[int, str]) -> list[str]:
    missing = [i for i in range(len(rows)) if i not in found]
    if missing:
        for i, new_id in zip(missing, insert_rows(conn, sobject, [rows[i] for i in missing]),
                             strict=True):
            found[i] = new_id
    return [found[i] for i in range(len(rows))]
