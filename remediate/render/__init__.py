"""Renderers: the same result data as text (for people), JSON (for tools) or Markdown (for
tickets and pull requests); no logic beyond presentation. A change is serialised by
``Change.data`` alone."""

from __future__ import annotations

from typing import Any

from remediate.engine import Assessment, Diagnosis, Finding, VerifyResult
from remediate.plan import Change, Plan


def change_data(c: Change) -> dict[str, Any]:
    return c.data(origin=False)


def finding_data(f: Finding) -> dict[str, Any]:
    return {"playbook": f.playbook, "step": f.step, "kind": f.kind, "cause": f.cause,
            "status": f.status, "checked": f.status != "unknown",
            **({"reason": f.error} if f.error is not None else {}),
            "description": f.description,
            "changes": [change_data(c) for c in f.changes]}


def assessment_data(a: Assessment, org_name: str) -> dict[str, Any]:
    return {"org": org_name, "org_id": a.org.org_id, "my_domain": a.org.my_domain_url,
            "drift": a.drift, "clean": a.clean, "checksum": a.plan.checksum,
            "summary": summary(a.findings),
            "findings": [finding_data(f) for f in a.findings],
            "oauth_usage": [{"username": u.username, "app": u.app, "last_used": u.last_used,
                             "use_count": u.use_count, "installed": u.installed}
                            for u in a.usage]}


def plan_data(p: Plan) -> dict[str, Any]:
    return {"org": p.org, "org_id": p.org_id, "checksum": p.checksum,
            "playbooks": list(p.playbooks) if p.playbooks else None,
            "api_requests": p.api_requests,
            "changes": [c.data() for c in p.changes]}


def summary(findings: list[Finding]) -> dict[str, int]:
    out = {"ok": 0, "drift": 0, "manual": 0, "unknown": 0}
    for f in findings:
        out[f.status] += 1
    return out


def verify_data(v: VerifyResult, org_name: str) -> dict[str, Any]:
    return {"org": org_name, "verified": v.ok,
            "remaining": [change_data(c) for c in v.assessment.plan.changes],
            "tokens": [{"integration": name, "ok": t.ok, "status": t.status, "error": t.error,
                        "error_description": t.error_description,
                        "instance_url": t.instance_url, "api_status": t.api_status,
                        "api_error": t.api_error, "audience": t.audience,
                        "audiences_tried": list(t.audiences_tried)} for name, t in v.tokens]}


def diagnosis_data(d: Diagnosis, org_name: str) -> dict[str, Any]:
    return {"org": org_name, "evidence": list(d.evidence), "causes": list(d.causes),
            "explanation": d.explanation, "advice": d.advice,
            "confirmed": [finding_data(f) for f in d.confirmed],
            "earlier": list(d.earlier), "oauth_usage": list(d.usage)}
