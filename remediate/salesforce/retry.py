"""The gateway's retry policy: which failures are tried again, how long to wait, when to stop.

One place decides, for every call the gateway makes (ADR 0009):

* **transient** failures are tried again with exponential backoff and jitter: HTTP 5xx,
  connection errors and timeouts, ``UNABLE_TO_LOCK_ROW``, and ``REQUEST_LIMIT_EXCEEDED`` (with a
  longer wait), until ``attempts`` calls or the ``deadline_s`` would be passed;
* an **expired session** (``INVALID_SESSION_ID``, REST 401 or SOAP fault) signs in again once
  and repeats the call at once;
* **everything else** (a refused write, a malformed query, bad credentials...) is raised at
  once: trying again cannot change the answer.

Every write says how it may be sent again (``Resend``) after a failure that may have happened
*after* Salesforce committed it (a dropped connection, a read timeout, a 5xx other than 503, an
answer that cannot be read): an idempotent write is sent again; an insert of rows is sent again
only after reading which rows now exist (writes.py); any other write is never sent again and
ends "outcome unknown" (ADR 0030). Waits go through ``RetryPolicy.sleep`` so tests can make them
zero. This is the only retry loop of the gateway.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from tenacity import RetryCallState, Retrying, stop_after_attempt, stop_before_delay

from remediate.errors import ConnectionFailure, OutcomeUnknown, SalesforceError

T = TypeVar("T")


class Resend(Enum):
    """Whether a write may be sent again when a failure leaves its outcome open (it may have
    been committed). A failure that certainly committed nothing (not sent, 503, a row lock, a
    request limit, an expired session) is sent again whatever the kind (ADR 0030)."""

    #: Sent again: a second send leaves the org, and answers, as one send would (setting fields
    #: of rows by id, a metadata upsert of whole components).
    IDEMPOTENT = "idempotent"
    #: Sent again only after reading what the first send committed: each attempt after an open
    #: outcome first looks, then sends only what is missing (inserting rows, whose second send
    #: would make duplicates or fail DUPLICATE_VALUE).
    AFTER_READ_BACK = "after_read_back"
    #: Never sent again after an open outcome; the caller learns the outcome is unknown. A
    #: delete by id (its effect repeats harmlessly, but the second answer is ENTITY_IS_DELETED,
    #: which would report a committed delete as refused) and a Tooling insert (a second
    #: PackageInstallRequest starts a second install).
    NEVER = "never"

#: Salesforce's own codes for "try again": row locks, API limits, an unavailable server, and the
#: token endpoint's ``unknown_error`` ("retry your request").
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE",
                             "unknown_error"})
SESSION_EXPIRED = "INVALID_SESSION_ID"
#: Connection failures that happened before the request left: never applied, safe to repeat.
NOT_SENT_CODES = frozenset({"CONNECT_FAILED", "CONNECT_TIMEOUT"})
#: Failures after which a write may or may not have been committed.
UNCERTAIN_CODES = frozenset({"CONNECTION", "TIMEOUT", "BAD_ANSWER", "ERROR_PAGE"})
_HTTP_5XX = re.compile(r"\bHTTP 5\d\d\b")


def _no_sleep(_: float) -> None:
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the gateway tries. The defaults suit an unattended run against a real org."""

    attempts: int = 5
    initial_s: float = 0.5
    max_wait_s: float = 8.0
    jitter_s: float = 0.5
    limit_factor: float = 4.0  # REQUEST_LIMIT_EXCEEDED waits this many times longer
    deadline_s: float = 60.0  # no wait may end later than this after the first attempt
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    @classmethod
    def no_wait(cls, attempts: int = 5) -> RetryPolicy:
        """The same decisions without the waiting (tests, benchmarks)."""
        return cls(attempts=attempts, initial_s=0.0, max_wait_s=0.0, jitter_s=0.0,
                   sleep=_no_sleep)

    def wait_s(self, attempt: int, err: SalesforceError) -> float:
        if err.code == SESSION_EXPIRED:
            return 0.0
        base = min(self.max_wait_s, self.initial_s * 2.0 ** max(0, attempt - 1))
        wait = base + random.uniform(0, self.jitter_s)  # jitter, not security
        if err.code == "REQUEST_LIMIT_EXCEEDED":
            wait *= self.limit_factor
        return wait


DEFAULT_POLICY = RetryPolicy()


def is_transient(err: SalesforceError) -> bool:
    """A failure that may go away if the same call is made again a little later."""
    if isinstance(err, ConnectionFailure):
        return err.code in NOT_SENT_CODES | {"CONNECTION", "TIMEOUT"}
    if err.code in TRANSIENT_CODES or err.code == "ERROR_PAGE":
        return True
    return bool(_HTTP_5XX.search(err.message))


def maybe_applied(err: SalesforceError) -> bool:
    """Whether a write that failed this way may nevertheless have been committed."""
    if err.code in NOT_SENT_CODES or err.code in TRANSIENT_CODES or err.code == SESSION_EXPIRED:
        return False
    if err.code in UNCERTAIN_CODES:
        return True
    return bool(_HTTP_5XX.search(err.message))


def call_with_retries(policy: RetryPolicy, fn: Callable[[], T], *,
                      reauthenticate: Callable[[], bool] | None = None,
                      write: Resend | None = None,
                      on_retry: Callable[[SalesforceError, int, float], None] | None = None) -> T:
    """Call ``fn`` (which raises only ``SalesforceError``) under ``policy``.

    ``reauthenticate`` drops the expired session so the next call signs in again; it returns
    False when this gateway cannot sign in again (a bare access token). ``write`` is the
    write's ``Resend`` kind: ``NEVER`` stops at the first failure after which the write may
    have been committed; ``AFTER_READ_BACK`` goes on after such a failure too (its next attempt
    looks before it sends); an ``OutcomeUnknown`` always stops.
    """
    reauthenticated = False

    def should_retry(state: RetryCallState) -> bool:
        nonlocal reauthenticated
        err = state.outcome.exception() if state.outcome else None
        if not isinstance(err, SalesforceError):
            return False
        if err.code == SESSION_EXPIRED:
            if reauthenticated or reauthenticate is None:
                return False
            reauthenticated = True
            return reauthenticate()
        if isinstance(err, OutcomeUnknown):
            return False
        if write is Resend.AFTER_READ_BACK and maybe_applied(err):
            return True
        if not is_transient(err):
            return False
        return not (write is Resend.NEVER and maybe_applied(err))

    def wait(state: RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome else None
        assert isinstance(err, SalesforceError)
        return policy.wait_s(state.attempt_number, err)

    def before_sleep(state: RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        if on_retry is not None and isinstance(err, SalesforceError):
            on_retry(err, state.attempt_number,
                     state.next_action.sleep if state.next_action else 0.0)

    from remediate.salesforce.transport import overall_deadline

    retrying = Retrying(retry=should_retry, wait=wait, sleep=policy.sleep,
                        stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.deadline_s),
                        before_sleep=before_sleep, reraise=True)
    with overall_deadline(policy.deadline_s):  # every attempt's requests end by the deadline
        return retrying(fn)
