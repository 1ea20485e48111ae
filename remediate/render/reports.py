"""Reports for tickets and CI: a self-contained HTML page (audit, plan), SARIF 2.1.0 and JUnit
XML (audit). Presentation only: they render the same data as ``--format json``.

The HTML has its style inline and loads nothing (no script, font, image or stylesheet from
anywhere), so it opens the same attached to a ticket, offline, or in CI artefacts.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any
from xml.etree import ElementTree as ET

from remediate import __version__
from remediate.diagnose import CAUSES
from remediate.engine import Assessment, Finding
from remediate.plan import Change, Plan
from remediate.render import summary

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d1d1f}
h1{font-size:1.5rem;margin:0 0 .25rem} h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
.meta{color:#555;margin-bottom:1rem}
.summary{display:flex;gap:1rem;margin:1rem 0}
.summary div{border-radius:8px;padding:.6rem 1rem;min-width:7rem;font-weight:600}
.s-ok{background:#e3f5e6;color:#17612a} .s-drift{background:#fde4e1;color:#9b1c11}
.s-manual{background:#fff3cd;color:#7a5a00} .s-changes{background:#e7eefc;color:#1c3f8f}
.summary b{display:block;font-size:1.6rem}
table{border-collapse:collapse;width:100%;margin-bottom:1rem}
th,td{border:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f6} code{font-size:12px;white-space:pre-wrap;word-break:break-all}
.status{font-weight:700;text-transform:uppercase;font-size:12px}
tr.status-ok .status{color:#17612a} tr.status-drift .status{color:#9b1c11}
tr.status-manual .status{color:#7a5a00}
.cause{color:#555;font-size:12px} footer{color:#777;font-size:12px;margin-top:2rem}
"""


def _v(value: Any) -> str:
    if value is None:
        return "(none)"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _page(title: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        # no network: forbid every fetch, even if a value were ever to contain a URL
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'">',
        f"<title>{escape(title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
        *body, f"<footer>remediate {escape(__version__)}</footer>", "</body>", "</html>", ""])


def _tiles(tiles: list[tuple[str, str, int]]) -> str:
    cells = "".join(f'<div class="{cls}" id="count-{name}"><b>{n}</b>{escape(name)}</div>'
                    for cls, name, n in tiles)
    return f'<section class="summary" id="summary">{cells}</section>'


def _cause(cause: str | None) -> str:
    if not cause:
        return ""
    return (f'<span class="cause-id">{escape(cause)}</span> '
            f'<span class="cause">{escape(CAUSES.get(cause, ""))}</span>')


def _change_row(c: Change, first: list[str]) -> str:
    how = "automatic" if c.automatic else f"needs a person: {c.manual}"
    return ("<tr>" + "".join(first) + f"<td>{escape(c.target)}</td><td>{escape(c.field)}</td>"
            f"<td><code>{escape(_v(c.before))}</code></td>"
            f"<td><code>{escape(_v(c.after))}</code></td><td>{escape(how)}</td></tr>")


def audit_html(a: Assessment, org_name: str) -> str:
    s = summary(a.findings)
    body = [f"<h1>remediate audit: {escape(org_name)}</h1>",
            f'<p class="meta">Org id <code>{escape(a.org.org_id)}</code>, My Domain '
            f"{escape(a.org.my_domain_url)}. Plan checksum <code>{escape(a.plan.checksum[:16])}"
            "</code>.</p>",
            f'<p id="verdict">{_verdict(s)}</p>',
            _tiles([("s-ok", "ok", s["ok"]), ("s-drift", "drift", s["drift"]),
                    ("s-manual", "manual", s["manual"])])]
    by_playbook: dict[str, list[Finding]] = {}
    for f in a.findings:
        by_playbook.setdefault(f.playbook, []).append(f)
    for name, findings in by_playbook.items():
        body += [f'<h2 class="playbook">Playbook {escape(name)}</h2>',
                 '<table><thead><tr><th>step</th><th>status</th><th>cause</th><th>target</th>'
                 "<th>field</th><th>before</th><th>after</th><th>how</th></tr></thead><tbody>"]
        for f in findings:
            first = [f'<td class="step">{escape(f.step)}<br><span class="cause">'
                     f"{escape(f.description)}</span></td>",
                     f'<td class="status">{escape(f.status)}</td>', f"<td>{_cause(f.cause)}</td>"]
            attrs = f'class="finding status-{f.status}" data-step="{escape(f.playbook)}/' \
                    f'{escape(f.step)}"'
            if not f.changes:
                body.append(f"<tr {attrs}>{''.join(first)}<td colspan=\"5\"></td></tr>")
                continue
            for i, c in enumerate(f.changes):
                row = _change_row(c, first if i == 0 else ["<td></td>"] * 3)
                body.append(row.replace("<tr>", f"<tr {attrs}>", 1))
        body.append("</tbody></table>")
    return _page(f"remediate audit: {org_name}", body)


def _verdict(s: dict[str, int]) -> str:
    if not s["drift"] and not s["manual"]:
        return "The org matches its playbooks."
    return (f"{s['drift']} step(s) drifted and remediate can fix them; {s['manual']} need a "
            "person.")


def plan_html(p: Plan) -> str:
    auto, manual = p.automatic, p.manual
    body = [f"<h1>remediate plan: {escape(p.org)}</h1>",
            f'<p class="meta">Org id <code>{escape(p.org_id)}</code>, checksum '
            f"<code>{escape(p.checksum[:16])}</code>, made {escape(p.created_at)}"
            + (f", playbooks {escape(', '.join(p.playbooks))}" if p.playbooks else "")
            + ".</p>",
            '<p id="verdict">' + ("No changes. The org matches its playbooks." if p.empty else
                                  f"remediate will make {len(auto)} change(s); {len(manual)} "
                                  "need a person.")
            + (f" Apply will cost about {p.api_requests} API request(s)."
               if p.api_requests else "") + "</p>",
            _tiles([("s-changes", "automatic", len(auto)), ("s-manual", "manual", len(manual))])]
    if p.changes:
        body.append('<table><thead><tr><th>#</th><th>step</th><th>cause</th><th>target</th>'
                    "<th>field</th><th>before</th><th>after</th><th>how</th></tr></thead>"
                    "<tbody>")
        for i, c in enumerate(p.changes, 1):
            status = "drift" if c.automatic else "manual"
            row = _change_row(c, [f"<td>{i}</td>",
                                  f'<td class="step">{escape(c.playbook)}/{escape(c.step)}</td>',
                                  f"<td>{_cause(c.cause)}</td>"])
            body.append(row.replace("<tr>", f'<tr class="change status-{status}">', 1))
        body.append("</tbody></table>")
    return _page(f"remediate plan: {p.org}", body)


# ---- SARIF 2.1.0 ---------------------------------------------------------------------------

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def sarif(a: Assessment, org_name: str) -> str:
    """One result per step that is not ok: ``error`` for drift remediate can fix, ``warning``
    for a change a person must make. Rules are the step kinds; the location is the playbook
    (a logical location, as there is no source line)."""
    kinds = sorted({f.kind for f in a.findings})
    rules = [{"id": kind, "name": kind.replace(".", "_"),
              "shortDescription": {"text": f"remediate step kind {kind}"}} for kind in kinds]
    results = []
    for f in a.findings:
        if f.status == "ok":
            continue
        lines = [f"{c.target}: {c.field}: {_v(c.before)} -> {_v(c.after)}"
                 + ("" if c.automatic else f" (needs a person: {c.manual})") for c in f.changes]
        cause = f" [{f.cause}: {CAUSES.get(f.cause, '')}]" if f.cause else ""
        results.append({
            "ruleId": f.kind, "ruleIndex": kinds.index(f.kind),
            "level": "error" if f.status == "drift" else "warning",
            "message": {"text": f"{f.playbook}/{f.step} drifted{cause}: " + "; ".join(lines)},
            "locations": [{"logicalLocations": [{
                "name": f.step, "fullyQualifiedName": f"{org_name}/{f.playbook}/{f.step}",
                "kind": "module"}]}],
            "partialFingerprints": {"step": f"{org_name}/{f.playbook}/{f.step}"},
            "properties": {"org": org_name, "playbook": f.playbook, "step": f.step,
                           "cause": f.cause, "status": f.status},
        })
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "remediate", "version": __version__,
                            "rules": rules}},
        "automationDetails": {"id": f"remediate-audit/{org_name}"},
        "results": results,
        "properties": {"org": org_name, "org_id": a.org.org_id, "drift": a.drift},
    }]}
    return json.dumps(log, indent=2, default=str)


# ---- JUnit XML -----------------------------------------------------------------------------


def junit(a: Assessment, org_name: str) -> str:
    """A test suite per playbook, a test case per step: drift is a failure, a manual change
    a failure of type ``manual``, an ok step passes."""
    root = ET.Element("testsuites", name=f"remediate audit {org_name}")
    by_playbook: dict[str, list[Finding]] = {}
    for f in a.findings:
        by_playbook.setdefault(f.playbook, []).append(f)
    total = failed = 0
    for name, findings in by_playbook.items():
        bad = sum(1 for f in findings if f.status != "ok")
        suite = ET.SubElement(root, "testsuite", name=f"{org_name}/{name}",
                              tests=str(len(findings)), failures=str(bad), errors="0",
                              skipped="0")
        for f in findings:
            case = ET.SubElement(suite, "testcase", name=f.step, classname=f"{org_name}.{name}")
            if f.status == "ok":
                continue
            text = "\n".join(f"{c.target}: {c.field}: {_v(c.before)} -> {_v(c.after)}"
                             + ("" if c.automatic else f" (needs a person: {c.manual})")
                             for c in f.changes)
            failure = ET.SubElement(case, "failure", type=f.status,
                                    message=f"{f.step} drifted"
                                            + (f" [{f.cause}]" if f.cause else ""))
            failure.text = text
        total += len(findings)
        failed += bad
    root.set("tests", str(total))
    root.set("failures", str(failed))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
