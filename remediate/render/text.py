"""Human-readable output, Terraform-style: + for additions, ~ for changes, ! for manual steps."""

from __future__ import annotations

import json
from typing import Any

from remediate.diagnose import CAUSES
from remediate.engine import ApplyResult, Assessment, Diagnosis, VerifyResult
from remediate.plan import Change, Plan
from remediate.render import summary


def _v(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def change_lines(c: Change, indent: str = "    ") -> list[str]:
    if not c.automatic:
        return [f"{indent}! {c.target}: {c.field}", f"{indent}    needs a person: {c.manual}"]
    mark = "+" if c.before in (None, False, "not assigned", []) else "~"
    return [f"{indent}{mark} {c.target}: {c.field}: {_v(c.before)} -> {_v(c.after)}"]


def audit(a: Assessment, org_name: str) -> str:
    lines = [f"Org {org_name} ({a.org.org_id}, {a.org.my_domain_url})", ""]
    current = None
    for f in a.findings:
        if f.playbook != current:
            current = f.playbook
            lines.append(f"Playbook {current}")
        mark = {"ok": "ok    ", "drift": "DRIFT ", "manual": "MANUAL",
                "unknown": "UNKNOWN"}[f.status]
        cause = f" [{f.cause}]" if f.cause else ""
        lines.append(f"  {mark} {f.step}{cause}")
        if f.error is not None:
            lines.append(f"      not checked: {f.error}")
        for c in f.changes:
            lines.extend(change_lines(c, "      "))
    s = summary(a.findings)
    lines += ["", f"{s['ok']} ok, {s['drift']} drifted, {s['manual']} need a person"
                  + (f", {s['unknown']} could not be checked." if s["unknown"] else ".")]
    if a.drift:
        lines.append("Run 'remediate plan' to see the changes, 'remediate apply' to make them.")
    if a.usage:
        from remediate.engine import usage_evidence

        lines += ["", "Connected Apps OAuth Usage of the integration users:"]
        lines += [f"  {line.removeprefix('OAuth usage: ')}" for line in usage_evidence(a.usage)]
    return "\n".join(lines)


def plan(p: Plan, unknown: int = 0) -> str:
    lines = [f"Plan for org {p.org} ({p.org_id}), checksum {p.checksum[:16]}"]
    if p.empty and unknown:
        return "\n".join([*lines, "", "No changes to plan, but not every step could be "
                                       "checked."])
    if p.empty:
        return "\n".join([*lines, "", "No changes. The org matches its playbooks."])
    auto, manual = p.automatic, p.manual
    if auto:
        lines += ["", f"remediate will make {len(auto)} change(s), in this order:"]
        for c in auto:
            lines.extend(change_lines(c))
            lines.append(f"        ({c.playbook}/{c.step}{', ' + c.cause if c.cause else ''})")
    if manual:
        lines += ["", f"{len(manual)} change(s) need a person (remediate will not make them):"]
        for c in manual:
            lines.extend(change_lines(c))
    return "\n".join(lines)


def applied(r: ApplyResult) -> str:
    if not r.applied:
        out = "Nothing to apply: the org already matches its playbooks."
        if r.manual:
            out += f" {len(r.manual)} change(s) still need a person (see 'remediate plan')."
        return out
    lines = [f"Applied {len(r.applied)} change(s) (run {r.run_id}):"]
    for c in r.applied:
        lines.extend(change_lines(c))
    if r.manual:
        lines.append(f"{len(r.manual)} change(s) still need a person:")
        for c in r.manual:
            lines.extend(change_lines(c))
    return "\n".join(lines)


def verified(v: VerifyResult) -> str:
    p = v.assessment.plan
    lines = []
    if p.empty and not v.assessment.unknown:
        lines.append("Re-read: the org matches its playbooks.")
    elif not p.empty:
        lines.append(f"Re-read: {len(p.changes)} difference(s) remain:")
        for c in p.changes:
            lines.extend(change_lines(c))
    for f in v.assessment.unknown:
        lines.append(f"Re-read: {f.playbook}/{f.step} could not be checked: {f.error}")
    for name, t in v.tokens:
        aud = f" with JWT audience {t.audience}" if t.audience else ""
        if t.ok:
            lines.append(f"Token request for {name}: ok (signed in at {t.instance_url}{aud}, "
                         f"API call HTTP {t.api_status}).")
        elif t.status != 200 or t.api_status is None:
            tried = (f" (JWT audiences tried: {', '.join(t.audiences_tried)})"
                     if t.audiences_tried else "")
            lines.append(f"Token request for {name}: FAILED: {t.error}: "
                         f"{t.error_description}{tried}")
        else:
            lines.append(f"Token request for {name}: signed in, but the API call failed: HTTP "
                         f"{t.api_status} {t.api_error}")
    for name, why in v.not_tried.items():
        lines.append(f"Token request for {name}: not tried (no credentials): {why}")
    if v.reread_only:
        lines.append("Sign-in not tried (--reread-only): only the re-read is verified.")
    elif not v.tokens and not v.not_tried:
        lines.append("No integration is bound for sign-in ([orgs.<name>.verify.<integration>] "
                     "in remediate.toml), so nothing signed in; pass --reread-only to verify "
                     "the re-read alone.")
    lines.append("Verified." if v.ok else "NOT verified.")
    return "\n".join(lines)


def diagnosed(d: Diagnosis) -> str:
    lines = []
    if d.evidence:
        lines.append("Evidence:")
        lines.extend(f"  {e}" for e in d.evidence)
    else:
        lines.append("No error text was given and the integration users have no current failed "
                     "logins in Login History.")
    if d.past:
        lines.append(f"({d.past} older failed login(s) left out: each is before its user's last "
                     "successful sign-in, or before --since.)")
    lines.extend(f"  {e}" for e in d.earlier)
    if d.usage:
        lines += ["", "Connected Apps OAuth Usage (which apps the integration users signed in "
                      "through):"]
        lines.extend(f"  {u.removeprefix('OAuth usage: ')}" for u in d.usage)
    for text in d.unrecognised:
        lines += ["", f"remediate does not recognise this error text: {text!r}. It names no "
                      "cause for it."]
    if d.advice:
        lines += ["", f"Not a configuration drift: {d.advice}."]
    if d.causes:
        lines += ["", "Likely cause(s):"]
        for cause in d.causes:
            lines.append(f"  {cause}: {CAUSES.get(cause, '')}")
    if d.explanation:
        lines.append(f"  ({d.explanation})")
    if d.confirmed:
        lines += ["", "Confirmed by the audit; these steps fix it:"]
        for f in d.confirmed:
            lines.append(f"  {f.playbook}/{f.step} [{f.cause}] ({f.status})")
            for c in f.changes:
                lines.extend(change_lines(c, "      "))
        lines += ["", "Run 'remediate plan' and 'remediate apply' to fix it."]
    elif d.causes:
        lines += ["", "The audit finds no drift for these causes: check the integration's own "
                      "settings (URL, credentials), or whether the org changed meanwhile."]
    if not d.named:
        lines += ["", "No cause named."]
    return "\n".join(lines)


def rollback(p: Plan, inv: Any) -> str:
    """A rollback's changes: what the org holds now (re-read just now) against what rollback
    will write, with removals (list items taken out, rows deleted) marked as removals."""
    from remediate.plan import MetadataWrite, RecordDelete
    from remediate.steps.base import get_path

    lines = [f"Rollback plan for org {p.org} ({p.org_id}), checksum {p.checksum[:16]}",
             "Each line: what the org holds now (re-read) -> what rollback will write."]
    auto, manual = p.automatic, p.manual
    if auto:
        lines += ["", f"remediate will make {len(auto)} change(s), in this order:"]
    for c in auto:
        w = c.write
        if isinstance(w, RecordDelete):
            lines.append(f"    - REMOVE {c.target}: {c.field}: delete row {w.record_id} "
                         f"(now: {_v(c.before)}; after: {_v(c.after)})")
        elif isinstance(w, MetadataWrite) and w.mode == "remove":
            now = get_path(inv.metadata(w.type, w.full_name), w.path)
            items = [] if now is None else (now if isinstance(now, list) else [now])
            left = [item for item in items if item not in w.value]
            lines.append(f"    - REMOVE {c.target}: {c.field}: take out {_v(w.value)}: "
                         f"{_v(items)} -> {_v(left)}")
        else:
            lines.append(f"    ~ {c.target}: {c.field}: {_v(c.before)} -> {_v(c.after)}")
        lines.append(f"        ({c.playbook}/{c.step}{', ' + c.cause if c.cause else ''})")
    if manual:
        lines += ["", f"{len(manual)} change(s) need a person (remediate will not make them):"]
        for c in manual:
            lines.extend(change_lines(c))
    return "\n".join(lines)
