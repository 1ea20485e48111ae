"""The error tree. Every error the CLI can meet is one of these, and each branch has an exit code.

    RemediateError                     exit 1   a failure: the run could not do its job
    ├── UsageError                     exit 64  the input is wrong: flags, playbook, config
    │   ├── PlaybookError                       a playbook that does not load or bind
    │   └── ConfigError                         remediate.toml / environment / unknown org
    ├── SafetyRefusal                  exit 3   remediate refused to change the org
    │   ├── StalePlan                           the org or playbooks changed since the plan
    │   ├── NotApproved                         the diff was shown and not approved
    │   ├── TooManyChanges                      the plan exceeds the org's change threshold
    │   └── ProductionGuard                     a production org not marked as allowed
    ├── SalesforceError                exit 1   the org answered with an error
    │   ├── AuthenticationError                 remediate's own login failed
    │   ├── ConnectionFailure                   the org could not be reached
    │   ├── OutcomeUnknown                      a write failed after it may have been committed
    │   └── NotFound                            a user, permission set, app... named by a playbook
    ├── ApplyFailed                    exit 1   apply stopped part-way (the journal says where)
    ├── OrgBusy                        exit 75  another run holds the org's lock
    └── VerificationFailed             exit 4   after apply, drift remains or a token request fails

Drift found by ``audit``/``plan`` is not an error: those commands exit 2, like
``terraform plan -detailed-exitcode``. Messages name what is wrong and where, and never carry a
secret.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_DRIFT = 2
EXIT_REFUSED = 3
EXIT_VERIFY_FAILED = 4
EXIT_USAGE = 64
EXIT_LOCKED = 75  # sysexits' EX_TEMPFAIL
EXIT_INTERRUPTED = 130


class RemediateError(Exception):
    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(RemediateError):
    exit_code = EXIT_USAGE


class PlaybookError(UsageError):
    pass


class ConfigError(UsageError):
    pass


class SafetyRefusal(RemediateError):
    exit_code = EXIT_REFUSED


class StalePlan(SafetyRefusal):
    pass


class NotApproved(SafetyRefusal):
    pass


class TooManyChanges(SafetyRefusal):
    pass


class ProductionGuard(SafetyRefusal):
    pass


class SalesforceError(RemediateError):
    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class AuthenticationError(SalesforceError):
    pass


class ConnectionFailure(SalesforceError):
    pass


class OutcomeUnknown(SalesforceError):
    """A write failed in a way that leaves open whether Salesforce committed it (the connection
    dropped after sending, an unreadable answer). The journal records it as ``unknown``."""


class NotFound(SalesforceError):
    pass


class ApplyFailed(RemediateError):
    def __init__(self, message: str, *, applied: list[str], not_applied: list[str],
                 unknown: list[str] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.applied = applied
        self.not_applied = not_applied
        self.unknown = unknown or []  # may or may not have been applied (OutcomeUnknown)


class OrgBusy(RemediateError):
    """Another run (an apply, a rollback, an enforce) holds the org's lock."""

    exit_code = EXIT_LOCKED


class VerificationFailed(RemediateError):
    exit_code = EXIT_VERIFY_FAILED
