"""Markdown output, for tickets and change requests."""

from __future__ import annotations

import json
from typing import Any

from remediate.engine import Assessment
from remediate.plan import Plan
from remediate.render import summary


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return str(text).replace("|", "\\|")


def audit(a: Assessment, org_name: str) -> str:
    s = summary(a.findings)
    lines = [f"## remediate audit: {org_name}", "",
             f"Org id `{a.org.org_id}`, My Domain {a.org.my_domain_url}. "
             f"{s['ok']} ok, {s['drift']} drifted, {s['manual']} need a person, "
             f"{s['unknown']} could not be checked.", "",
             "| playbook | step | cause | status | target | field | before | after |",
             "|---|---|---|---|---|---|---|---|"]
    for f in a.findings:
        if f.error is not None:
            lines.append(f"| {f.playbook} | {f.step} | {f.cause or ''} | unknown | "
                         f"{_cell('not checked: ' + f.error)} | | | |")
        elif not f.changes:
            lines.append(f"| {f.playbook} | {f.step} | {f.cause or ''} | ok | | | | |")
        for c in f.changes:
            lines.append(f"| {f.playbook} | {f.step} | {f.cause or ''} | {f.status} | "
                         f"{_cell(c.target)} | {_cell(c.field)} | {_cell(c.before)} | "
                         f"{_cell(c.after)} |")
    return "\n".join(lines)


def plan(p: Plan) -> str:
    lines = [f"## remediate plan: {p.org}", "", f"Checksum `{p.checksum}`", "",
             "| # | step | target | field | before | after | how |", "|---|---|---|---|---|---|---|"]
    for i, c in enumerate(p.changes, 1):
        how = "automatic" if c.automatic else f"manual: {c.manual}"
        lines.append(f"| {i} | {c.playbook}/{c.step} | {_cell(c.target)} | {_cell(c.field)} | "
                     f"{_cell(c.before)} | {_cell(c.after)} | {_cell(how)} |")
    return "\n".join(lines)
