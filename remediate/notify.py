"""Webhook notifications from ``enforce``: on drift, on a fix, on a refusal or a failure.

Two payloads: ``slack`` (Slack's incoming-webhook shape: ``text`` plus ``blocks``; Mattermost
and Discord's ``/slack`` webhook endpoints take it too) and ``json`` (a plain document for
anything else). Each carries the org, the outcome, the diff and the run id. What
goes in comes from the plan (no credential ever reaches a plan) and error messages (scrubbed at
the gateway), and is passed through the log redactor once more before it leaves.

A POST is retried with exponential backoff on connection errors, 429 and 5xx. A notification
that still fails is logged and counted in the run's summary; it never fails the run, and never
passes silently. A webhook URL can be a secret (Slack's is), so only its host is ever logged.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from remediate.logging import get_logger, redact_text
from remediate.plan import Change
from remediate.settings import Webhook

if TYPE_CHECKING:
    from remediate.enforce import OrgReport

log = get_logger()
EVENTS = {"fixed": "fixed", "pending approval": "drift", "refused": "refused",
          "failed": "failed"}
ICONS = {"fixed": ":white_check_mark:", "drift": ":warning:", "refused": ":no_entry:",
         "failed": ":x:"}
MAX_LINES = 40  # Slack shows a section of up to 3000 characters


class _Retry(Exception):
    """A webhook answer worth another try (connection error, 429, 5xx)."""


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def diff_lines(report: OrgReport) -> list[str]:
    """The diff as text, one line per change: ``+`` applied, ``?`` waiting for a person."""
    lines = [f"+ {c.label()}: {_value(c.before)} -> {_value(c.after)} ({c.playbook}/{c.step})"
             for c in report.applied]
    lines += [f"? {c.label()}: {_value(c.before)} -> {_value(c.after)} ({c.playbook}/{c.step}, "
              f"{'pending approval' if c.automatic else 'manual'})" for c in report.pending]
    return lines


def _change(c: Change) -> dict[str, Any]:
    return {"playbook": c.playbook, "step": c.step, "kind": c.kind, "cause": c.cause,
            "target": c.target, "field": c.field, "before": c.before, "after": c.after,
            "automatic": c.automatic}


def json_payload(report: OrgReport, fleet_run: str | None = None) -> dict[str, Any]:
    return _redacted_dict({
        "source": "remediate", "event": EVENTS.get(report.outcome, report.outcome),
        "org": report.org, "outcome": report.outcome, "run_id": report.run_id,
        "fleet_run_id": fleet_run, "message": report.message,
        "applied": [_change(c) for c in report.applied],
        "pending_approval": [_change(c) for c in report.pending if c.automatic],
        "manual": [_change(c) for c in report.pending if not c.automatic],
        "diff": diff_lines(report),
    })


def slack_payload(report: OrgReport, fleet_run: str | None = None) -> dict[str, Any]:
    event = EVENTS.get(report.outcome, report.outcome)
    head = (f"{ICONS.get(event, '')} remediate enforce: org *{report.org}* is "
            f"*{report.outcome}* (run `{report.run_id}`)").strip()
    counts = f"{len(report.applied)} applied, {len(report.pending)} pending approval or manual"
    lines = diff_lines(report)
    shown = lines[:MAX_LINES] + ([f"... and {len(lines) - MAX_LINES} more"]
                                 if len(lines) > MAX_LINES else [])
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{head}\n{counts}"}}]
    if report.message:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": report.message}})
    if shown:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": "```" + "\n".join(shown) + "```"}})
    context = f"run {report.run_id}" + (f" · fleet run {fleet_run}" if fleet_run else "")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return _redacted_dict({"text": f"remediate: {report.org} {report.outcome} (run {report.run_id})",
                      "blocks": blocks})


def _redacted_dict(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _redacted(v) for k, v in value.items()}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


@dataclass
class Notifier:
    """Posts reports to webhooks; counts what was sent and what failed (thread-safe)."""

    session: requests.Session = field(default_factory=requests.Session)
    attempts: int = 4
    wait_initial: float = 0.5
    wait_max: float = 8.0
    timeout: float = 10.0
    sent: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def notify(self, report: OrgReport, webhooks: Sequence[Webhook],
               fleet_run: str | None = None) -> tuple[int, int]:
        """Post to each webhook; returns (sent, failed) for this report."""
        sent = failed = 0
        for hook in webhooks:
            if self.post(hook, slack_payload(report, fleet_run) if hook.kind == "slack"
                         else json_payload(report, fleet_run), org=report.org):
                sent += 1
            else:
                failed += 1
        with self._lock:
            self.sent += sent
            self.failed += failed
        return sent, failed

    def _post(self, hook: Webhook, url: str, payload: dict[str, Any]) -> requests.Response:
        """One POST, never following a redirect, except one hop to a host the webhook's
        configuration allows (a redirect re-sends the payload where it points)."""
        from urllib.parse import urljoin

        from remediate.untrusted import url_problem

        response = self.session.post(url, json=payload, timeout=self.timeout,
                                     allow_redirects=False)
        if response.status_code in (307, 308):
            target = urljoin(url, response.headers.get("Location") or "")
            allowed = {h.lower() for h in hook.allow_redirect_hosts}
            if (urlsplit(target).hostname or "").lower() in allowed and not url_problem(target):
                response = self.session.post(target, json=payload, timeout=self.timeout,
                                             allow_redirects=False)
        return response

    def post(self, hook: Webhook, payload: dict[str, Any], *, org: str) -> bool:
        url = hook.url or os.environ.get(hook.url_env or "", "")
        if not url:
            log.warning("notify.failed", org=org, kind=hook.kind,
                        reason=f"environment variable {hook.url_env} is not set")
            return False
        host = urlsplit(url).hostname or "?"
        from remediate.untrusted import url_problem

        problem = url_problem(url)
        if problem:
            log.warning("notify.failed", org=org, kind=hook.kind, host=host,
                        reason=f"the webhook URL {problem}")
            return False

        @retry(retry=retry_if_exception_type(_Retry), stop=stop_after_attempt(self.attempts),
               wait=wait_exponential(multiplier=self.wait_initial, max=self.wait_max)
               + wait_random(0, self.wait_initial),
               reraise=True)
        def attempt() -> requests.Response:
            try:
                response = self._post(hook, url, payload)
            except requests.RequestException as exc:
                raise _Retry(type(exc).__name__) from None
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retry(f"HTTP {response.status_code}")
            return response

        try:
            response = attempt()
        except _Retry as exc:
            log.warning("notify.failed", org=org, kind=hook.kind, host=host,
                        reason=f"{exc} after {self.attempts} attempts")
            return False
        if 300 <= response.status_code < 400:
            target = urlsplit(response.headers.get("Location") or "").hostname or "?"
            log.warning("notify.failed", org=org, kind=hook.kind, host=host,
                        reason=f"HTTP {response.status_code} redirect to {target} refused "
                               "(not in the webhook's allow_redirect_hosts)")
            return False
        if response.status_code >= 300:
            log.warning("notify.failed", org=org, kind=hook.kind, host=host,
                        reason=f"HTTP {response.status_code}")
            return False
        log.info("notify.sent", org=org, kind=hook.kind, host=host)
        return True
