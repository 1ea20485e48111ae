"""The gateway: the one door to Salesforce, a facade over the modules that do the work.

Nothing else in remediate talks to Salesforce. Which module owns what (ADR 0030):

* ``session.py``: transport (the requests session), signing in (remediate's own and an
  integration's, ``request_token``), API version negotiation, the one retry policy
  (``_call``, retry.py), waves and the round-trip count;
* ``planner.py``: read requests in, SOQL, composite batches, ``readMetadata`` calls and the
  profile and package reads out; pure, no I/O;
* ``reads.py``: executing a plan: one wave after signing in, paging, profiles by API name,
  the inventory filled;
* ``writes.py``: rows, Tooling inserts, package installs, metadata upserts, each with its
  ``retry.Resend`` kind.

Reads arrive as a set of read requests from every step of every playbook and are answered in
as few round trips as the APIs allow: all SOQL in ``composite`` requests (at most 5 queries
each), queries on one object merged into one with an IN list; metadata in one ``readMetadata``
per type per 10 names; Tooling in one query; a profile's login IP ranges from ``readMetadata``
under the API name ``listMetadata`` gives (ADR 0021: a second wave). After signing in, all of
those calls go in one *wave* (``waves.py``): sent together, at most ``parallel`` at a time.
``round_trips`` counts requests sent; ``rounds`` counts the round trips of latency they cost.

``Gateway`` keeps every public method the engine, the steps, doctor and the tests call; each
delegates to the module that owns the job.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from remediate.salesforce import apps as _apps
from remediate.salesforce import reads as _reads
from remediate.salesforce import writes as _writes
from remediate.salesforce.planner import IN_LIST_CHARS, METADATA_PER_CALL, QUERIES_PER_COMPOSITE
from remediate.salesforce.session import (
    DEFAULT_TIMEOUT,
    PROBE_VERSION,
    Connection,
    Credentials,
    IntegrationLogin,
    TimeoutSession,
    TokenResult,
    pooled,
)
from remediate.salesforce.writes import ROWS_PER_CALL
from remediate.steps.base import Inventory, Read

__all__ = [
    "DEFAULT_TIMEOUT", "IN_LIST_CHARS", "METADATA_PER_CALL", "PROBE_VERSION",
    "QUERIES_PER_COMPOSITE", "ROWS_PER_CALL", "Credentials", "Gateway", "IntegrationLogin",
    "TimeoutSession", "TokenResult", "pooled",
]


class Gateway(Connection):
    """A session with one org (session.py) and the reads and writes made through it."""

    # ---- reads (planner.py plans, reads.py executes) -----------------------------------

    def fetch(self, reads: Iterable[Read]) -> Inventory:
        """Answer every read: sign in, then one wave of composite, Tooling, listMetadata and
        readMetadata calls (reads.fetch)."""
        return _reads.fetch(self, reads)

    def read_metadata(self, type_: str, names: list[str]) -> list[dict[str, Any] | None]:
        return _reads.read_metadata(self, type_, names)

    def query(self, soql: str) -> list[dict[str, Any]]:
        return _reads.query(self, soql)

    def list_metadata(self, types: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each of ``types``' components' fullName, id, namespacePrefix and manageableState
        (``listMetadata``, three queries per call; an answer of another shape is refused)."""
        return _apps.list_metadata(self, types)

    def validate_deploy(self, zip_bytes: bytes, *, polls: int,
                        wait_s: float) -> dict[str, Any]:
        """A checkOnly deploy, polled: validation only, nothing saved (reads.validate_deploy)."""
        return _reads.validate_deploy(self, zip_bytes, polls=polls, wait_s=wait_s)

    def daily_api_requests(self) -> tuple[int, int]:
        """(Remaining, Max) of the org's rolling 24-hour API allowance (reads.py)."""
        return _reads.daily_api_requests(self)

    # ---- writes (writes.py) ------------------------------------------------------------

    def insert_rows(self, sobject: str, rows: list[dict[str, Any]]) -> list[str]:
        """Insert rows all-or-none; returns the new ids. Sent again after an open outcome only
        for the rows a read shows missing (writes.insert_rows, ADR 0009)."""
        return _writes.insert_rows(self, sobject, rows)

    def insert_together(self, licences: list[dict[str, Any]],
                        assignments: list[dict[str, Any]]) -> _writes.Together:
        """A licence and the permission set assignments that need it in one composite, sent
        apart when the org refuses that (writes.insert_together, ADR 0044)."""
        return _writes.insert_together(self, licences, assignments)

    def send_composite(self, what: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """One REST composite sent once; its subrequests' answers (doctor's probe)."""
        return _writes.send_composite(self, what, body)

    def update_rows(self, sobject: str, rows: list[dict[str, Any]]) -> None:
        _writes.update_rows(self, sobject, rows)

    def delete_rows(self, sobject: str, ids: list[str]) -> None:
        _writes.delete_rows(self, sobject, ids)

    def tooling_insert(self, sobject: str, row: dict[str, Any]) -> str:
        return _writes.tooling_insert(self, sobject, row)

    def install_package(self, fields: dict[str, Any], *, key_env: str | None = None) -> str:
        """Install a package and poll it to SUCCESS or ERROR (writes.install_package, P2)."""
        return _writes.install_package(self, fields, key_env=key_env)

    def upsert_metadata(self, type_: str, components: list[dict[str, Any]]) -> None:
        _writes.upsert_metadata(self, type_, components)
