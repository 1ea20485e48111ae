"""The session with one org: transport, signing in, the one retry policy, the round-trip count.

``Connection`` holds what every call to an org needs: the requests session (transport.py: a
total deadline per request, no redirects, bounded answers), the simple-salesforce connection
and its Metadata client, the negotiated API version, and ``_call``: one logical call under the
retry policy of retry.py (the only retry loop; ADR 0009, ADR 0030). It also signs in as an
integration does (``request_token``, for verify). It plans no reads and makes no writes:
planner.py and reads.py read, writes.py writes, gateway.py is the facade over all of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from remediate import hosts, progress
from remediate.errors import AuthenticationError, OutcomeUnknown, SalesforceError
from remediate.logging import get_logger
from remediate.salesforce import (
    audiences,
    shared_threads,
    signin,
    transport,
    versioncache,
    versions,
    waves,
)
from remediate.salesforce import retry as retries
from remediate.salesforce.errors import TruncatedAnswer, map_exception, rest_error_details
from remediate.salesforce.retry import Resend, RetryPolicy, call_with_retries, maybe_applied

#: The version an integration's verify sign-in checks the API at (a version every org in the
#: field serves, so a probe never fails for the version alone).
PROBE_VERSION = versions.FALLBACK
DEFAULT_TIMEOUT = transport.DEFAULT_TIMEOUT
T = TypeVar("T")
log = get_logger()


class TimeoutSession(transport.TimeoutSession):
    """A requests session that never waits forever (a total deadline per request), never
    follows a redirect and never reads an unbounded answer (transport.py); SOAP answers cut
    short are refused."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        response = super().request(method, url, *args, **kwargs)
        _check_complete(response)
        return response


def pooled(session: requests.Session, parallel: int) -> requests.Session:
    """``session`` with kept-alive connection pools big enough for a wave: REST, Tooling and SOAP
    calls of one gateway all go through this one session, so each host gets one pool. requests'
    default keeps at most 10 connections per host and drops the rest after use; a wave of more
    than 10 calls would then open new TLS connections every time (issue 17). The adapter is
    transport's watched one, so every request keeps its total deadline."""
    size = max(10, parallel)
    session.mount("https://", transport.WatchedAdapter(pool_connections=10, pool_maxsize=size))
    session.mount("http://", transport.WatchedAdapter(pool_connections=10, pool_maxsize=size))
    return session


def _check_complete(response: requests.Response) -> None:
    """Refuse a SOAP answer cut short. zeep parses leniently (simple-salesforce turns strict
    mode off), so half an envelope would read as a component with fields missing, and a
    read-modify-write would then erase them. Truncated JSON fails to parse by itself."""
    if "xml" not in response.headers.get("Content-Type", "").lower() or not response.content:
        return
    if not response.content.rstrip().endswith(b"Envelope>"):
        raise TruncatedAnswer(f"HTTP {response.status_code}: the SOAP answer ends before its "
                              "envelope does")


@dataclass
class Credentials:
    """How remediate itself signs in. Secret values are held only here, never logged."""

    auth: str  # client_credentials | jwt | access_token
    login_url: str
    client_id: str | None = None
    client_secret: str | None = None
    username: str | None = None
    private_key: str | None = None
    access_token: str | None = None
    instance_url: str | None = None

    def __repr__(self) -> str:  # never show secrets, even in a debugger or a traceback
        return f"Credentials(auth={self.auth!r}, login_url={self.login_url!r})"


@dataclass(frozen=True)
class TokenResult:
    ok: bool
    status: int
    error: str | None = None
    error_description: str | None = None
    instance_url: str | None = None
    api_status: int | None = None  # the follow-up REST call made with the token
    api_error: str | None = None
    audience: str | None = None  # JWT bearer: the ``aud`` the org accepted
    audiences_tried: tuple[str, ...] = ()  # JWT bearer: every ``aud`` sent, in order


@dataclass(frozen=True)
class IntegrationLogin:
    """An integration's own credentials, for ``verify``: what the external system sends."""

    name: str
    flow: str  # client_credentials | jwt_bearer
    client_id: str
    client_secret: str | None = None
    username: str | None = None
    private_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"IntegrationLogin(name={self.name!r}, flow={self.flow!r})"


class Connection:
    """A signed-in (lazily) session with one org; the gateway's base (gateway.py)."""

    def __init__(self, credentials: Credentials, *, session: requests.Session | None = None,
                 ca_bundle: str | None = None, version: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, org_label: str = "org",
                 retry: RetryPolicy | None = None,
                 parallel: int = waves.DEFAULT_PARALLEL) -> None:
        self._creds = credentials
        self.retry = retry if retry is not None else retries.DEFAULT_POLICY
        self._session = session or pooled(TimeoutSession(timeout), parallel)
        if ca_bundle:
            self._session.verify = ca_bundle
        # None: negotiated from the org's /services/data/ list right after signing in.
        self.pinned_version = version
        self.version = version or versions.NEWEST
        self.version_how = "pinned by api_version" if version else "negotiated"
        self._negotiated = version is not None
        #: The URL whose kept version (versioncache.py) is in use and not yet confirmed by an
        #: answer; None once a call at it succeeded, or when the version was not kept.
        self._kept_from: str | None = None
        self.org_label = org_label
        self._sf: Any = None
        self._md: tuple[Any, Any] | None = None  # (the connection, its Metadata client)
        self._lock = threading.RLock()
        self._mine = threading.local()  # per thread: requests sent (``sequential``)
        self.parallel = max(1, parallel)
        self.install_poll_s = 5.0  # between polls of a package install (P2)
        self.install_deadline_s = 900.0
        self.progress: Callable[[str], None] = _progress_line
        self.round_trips = 0  # requests sent
        self.rounds = 0  # round trips of latency: a wave counts once per ``parallel`` calls

    def _count(self) -> None:
        """One request sent; outside a wave it is also one round trip of latency."""
        self._mine.n = getattr(self._mine, "n", 0) + 1  # this thread's requests (sequential)
        with self._lock:
            self.round_trips = self.round_trips + 1
            if not waves.inside():
                self.rounds += 1

    def sequential(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, whose requests go one after another after the one this wave call already
        made: inside a wave each of them is one more round trip (outside, ``_count`` counts
        them already)."""
        before = getattr(self._mine, "n", 0)
        try:
            return fn()
        finally:
            if waves.inside():
                with self._lock:
                    self.rounds += getattr(self._mine, "n", 0) - before

    def _wave(self, calls: list[Callable[[], Any]], *, hops: int = 1) -> list[Any]:
        """Run independent calls as one wave; ``hops`` is how many requests each call makes one
        after another (a token request then its API call is 2), for the round-trip count."""
        if not waves.inside():  # a wave inside a wave waits within the outer one's rounds
            with self._lock:
                self.rounds += waves.rounds_for(len(calls), self.parallel) * hops
        return waves.run_wave(calls, self.parallel)

    def together(self, calls: Sequence[Callable[[], Any]], *,
                 hops: int = 1) -> list[tuple[bool, Any]]:
        """Independent calls (writes of different metadata types, integration sign-ins) as one
        wave. Every call's own outcome comes back, (True, result) or (False, exception), so the
        caller can journal each one truthfully when some fail."""
        def capture(call: Callable[[], Any]) -> Callable[[], tuple[bool, Any]]:
            def run() -> tuple[bool, Any]:
                try:
                    return True, call()
                except Exception as exc:  # handed back to the caller, in call order
                    return False, exc
            return run

        if len(calls) == 1:
            return [capture(calls[0])()]
        return self._wave([capture(c) for c in calls], hops=hops)

    @property
    def sf(self) -> Any:
        with self._lock:
            if self._sf is None:
                self._sf = self._connect()
            return self._sf

    def _connect(self) -> Any:
        from simple_salesforce.api import Salesforce

        c = self._creds
        host = (urlsplit(c.login_url).hostname or "").lower()
        domain = host.removesuffix(".salesforce.com")
        what = f"{self.org_label}: signing in ({c.auth}) at {c.login_url}"
        listing: Future[str | None] | None = None
        if not self._negotiated and c.auth == "client_credentials":
            self._use_kept(c.login_url)  # the login URL is the org's My Domain
        if not self._negotiated and c.auth == "client_credentials":
            # The login URL is the org's My Domain: ask its versions while the token comes.
            with self._lock:
                self.round_trips += 1
            # on the process's shared pool: a module-level pool has no threads in a forked
            # child (remediate.fleet), and a sign-in there would wait for ever
            listing = shared_threads.pool().submit(self._list_versions, c.login_url)
        try:
            if c.auth == "access_token":
                sf = Salesforce(session_id=c.access_token, instance_url=c.instance_url or
                                c.login_url, session=self._session, version=self.version)
            elif c.auth == "client_credentials":
                if hosts.org_host_problem(c.login_url):
                    raise AuthenticationError(
                        f"{what}: the client credentials flow needs the org's My Domain URL "
                        "(https://<name>.my.salesforce.com, or the My Domain of another "
                        f"Salesforce partition): {hosts.org_host_problem(c.login_url)}")
                self._count()
                if not hosts.on_commercial_cloud(host):
                    sf = signin.connect_at(self._session, c, what=what, version=self.version)
                else:
                    sf = Salesforce(consumer_key=c.client_id, consumer_secret=c.client_secret,
                                    domain=domain, session=self._session, version=self.version)
            elif c.auth == "jwt" and not hosts.on_commercial_cloud(host):
                self._count()
                sf = signin.connect_at(self._session, c, what=what, version=self.version)
            elif c.auth == "jwt":
                self._count()
                sf = Salesforce(username=c.username, consumer_key=c.client_id,
                                privatekey=c.private_key, domain=domain, session=self._session,
                                version=self.version)
            else:
                raise AuthenticationError(f"{what}: unknown auth mode {c.auth!r}")
        except Exception as exc:
            if listing is not None:
                listing.result()
            raise map_exception(exc, what=what) from None
        if not self._negotiated and listing is None:
            self._use_kept(f"https://{sf.sf_instance}")
        if not self._negotiated:
            listed_at = c.login_url if listing is not None else f"https://{sf.sf_instance}"
            if listing is None:
                self._count()
                chosen = self._list_versions(listed_at)
            else:
                chosen = listing.result()
            self._negotiated = True
            if chosen is None:
                chosen = versions.FALLBACK
                self.version_how = ("assumed: the org's /services/data/ list could not be "
                                    "read")
                log.info("gateway.version_unknown", org=self.org_label, version=chosen)
            else:
                versioncache.put(listed_at, chosen)
            self.version = chosen
            if sf.sf_version != chosen:  # same session, talked to at the chosen version
                sf = Salesforce(session_id=sf.session_id, instance=sf.sf_instance,
                                session=self._session, version=chosen)
        # simple-salesforce signs in again by itself on a REST 401 (up to three times) but not
        # for SOAP; one policy for both lives in _call instead (ADR 0009).
        sf._salesforce_login_partial = None
        return sf

    def _use_kept(self, url: str) -> None:
        """Talk at the version negotiated with ``url`` in the last 24 hours, if one was kept
        (versioncache.py): no version list is asked for then."""
        kept = versioncache.get(url)
        if kept is None:
            return
        self.version, self._negotiated, self._kept_from = kept, True, url
        self.version_how = "negotiated (the org's version list of the last 24 hours)"

    def _version_gone(self, err: SalesforceError, tried_at: str) -> bool:
        """After a call at a kept version failed as a version the org does not serve fails (REST
        NOT_FOUND, SOAP UNSUPPORTED_API_VERSION): ask the org's version list again and, when it
        no longer lists the kept version, go on at the one it gives (True: send the call again).
        False when the list confirms the version (the failure is the call's own) or cannot be
        read: then the call's failure stands."""
        if err.code not in ("NOT_FOUND", "UNSUPPORTED_API_VERSION"):
            return False
        with self._lock:
            if self.version != tried_at:
                return True  # another call of the wave already re-negotiated
            url = self._kept_from
            if url is None:
                return False
            self._count()
            chosen = self._list_versions(url)
            self._kept_from = None
            if chosen is None or chosen == self.version:
                return False
            log.info("gateway.version_renegotiated", org=self.org_label, kept=self.version,
                     version=chosen)
            versioncache.put(url, chosen)
            self.version, self.version_how = chosen, "negotiated"
            if self._sf is not None:
                from simple_salesforce.api import Salesforce

                sf = Salesforce(session_id=self._sf.session_id, instance=self._sf.sf_instance,
                                session=self._session, version=chosen)
                sf._salesforce_login_partial = None
                self._sf = sf
            return True

    def _list_versions(self, base: str) -> str | None:
        """The version to talk at, from the org's ``GET /services/data/`` (no session needed),
        or None when the answer cannot be read."""
        root = base.rstrip("/")
        try:
            answer = self._session.get(f"{root}/services/data/",
                                       headers={"Accept": "application/json"})
            listed = answer.json() if answer.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None
        return versions.negotiate(listed) if isinstance(listed, list) else None

    def _session_expired(self, used: Any) -> bool:
        """Drop the expired connection ``used`` so the next call signs in again; False if we
        cannot. Calls of one wave that meet the same expiry sign in once: a connection another
        call has already replaced is kept."""
        if self._creds.auth == "access_token":
            return False
        with self._lock:
            if used is None or self._sf is used:
                self._sf = None
        return True

    @property
    def mdapi(self) -> Any:
        """simple-salesforce's Metadata client for the current connection, on this gateway's
        session (ADR 0007), built on the Metadata WSDL parsed once per process (ADR 0010)."""
        with self._lock:
            sf = self.sf
            if self._md is None or self._md[0] is not sf:
                from remediate.salesforce import mdclient

                self._md = (sf, mdclient.metadata_api(sf, self._session))
            return self._md[1]

    def _call(self, what: str, fn: Callable[[], T], *, write: Resend | None = None) -> T:
        """One logical call, under the retry policy (retry.py). ``write`` marks a write and
        says whether it may be sent again (``Resend``); after a write fails in a way that may
        have committed it, the error says its outcome is unknown."""
        label = f"{self.org_label}: {what}"
        used: list[Any] = [None]  # the connection the last attempt ran on
        tried_at = self.version
        try:
            answer = self._retrying(label, lambda: self._attempt(label, fn, used), used,
                                    write=write)
        except SalesforceError as err:
            if not self._version_gone(err, tried_at):
                raise
            # the kept version is no longer served (nothing was done at it): once more at the
            # version the org lists now
            answer = self._retrying(label, lambda: self._attempt(label, fn, used), used,
                                    write=write)
        self._kept_from = None  # an answer at this version: it is served
        return answer

    def _attempt(self, label: str, fn: Callable[[], T], used: list[Any]) -> T:
        """One request: counted, its connection kept in ``used`` (for signing in again), its
        failure mapped to a ``SalesforceError``."""
        self._count()
        used[0] = self._sf
        try:
            return fn()
        except Exception as exc:
            used[0] = used[0] or self._sf
            raise map_exception(exc, what=label) from None

    def _retrying(self, label: str, attempt: Callable[[], T], used: list[Any], *,
                  write: Resend | None = None) -> T:
        """``attempt`` under the retry policy. A write other than ``AFTER_READ_BACK`` (whose
        caller reads back what it committed) that ends in a failure that may have committed it
        raises ``OutcomeUnknown``."""
        def retrying(err: SalesforceError, attempt_number: int, wait_s: float) -> None:
            log.info("gateway.retry", call=label, code=err.code, attempt=attempt_number,
                     wait_s=round(wait_s, 3), error=err.message)
            self.progress(progress.retry_line(label, err.code, attempt_number, wait_s))

        try:
            return call_with_retries(self.retry, attempt,
                                     reauthenticate=lambda: self._session_expired(used[0]),
                                     write=write, on_retry=retrying)
        except SalesforceError as err:
            if write is not None and write is not Resend.AFTER_READ_BACK \
                    and not isinstance(err, OutcomeUnknown) and maybe_applied(err):
                raise OutcomeUnknown(f"{err.message}; the write may or may not have been "
                                     "applied", code=err.code) from None
            raise err from None

    def _sign_in(self) -> None:
        """Sign in now (if not yet), under the same retry policy as a call that signs in."""
        if self._sf is not None:
            return

        def retrying(err: SalesforceError, attempt_number: int, wait_s: float) -> None:
            log.info("gateway.retry", call=f"{self.org_label}: signing in", code=err.code,
                     attempt=attempt_number, wait_s=round(wait_s, 3), error=err.message)
            self.progress(progress.retry_line(f"{self.org_label}: signing in", err.code,
                                              attempt_number, wait_s))

        call_with_retries(self.retry, lambda: self.sf, on_retry=retrying)

    # ---- for ``remediate doctor`` (read-only checks outside the planned reads) ----------

    @property
    def auth_flow(self) -> str:
        """How remediate itself signs in (``client_credentials``, ``jwt``, ``access_token``)."""
        return self._creds.auth

    def sign_in(self) -> None:
        """Sign in now, if not yet, under the retry policy (doctor reports a failure apart)."""
        self._sign_in()

    def read_call(self, what: str, fn: Callable[[], T]) -> T:
        """One read-only call ``fn`` (on ``sf`` or ``mdapi``) under the retry policy, its
        failure a ``SalesforceError`` naming ``what``. Never for a write: a read is sent again
        freely, a write is not (``_call`` with ``write=``)."""
        return self._call(what, fn)

    def _sf_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``self.sf.<method>(...)``, looked up at call time: after an expired session the
        next attempt runs on the new connection."""
        return getattr(self.sf, name)(*args, **kwargs)

    @property
    def instance_url(self) -> str:
        return f"https://{self.sf.sf_instance}"

    def known_my_domain(self) -> str | None:
        """The org's My Domain URL when signing in told it (the instance URL is the My Domain),
        else None: then only a read (userinfo) can tell."""
        self._sign_in()
        return self.instance_url.rstrip("/") if self._instance_is_my_domain() else None

    def _instance_is_my_domain(self) -> bool:
        """For a My Domain org the token's instance URL is the My Domain URL (reference 4.9):
        then no call is needed to learn it."""
        return hosts.is_my_domain_host(urlsplit(self.instance_url).hostname or "")

    def request_token(self, login: IntegrationLogin, my_domain_url: str) -> TokenResult:
        """Sign in as the integration does, against the org's My Domain, then call the API. A
        JWT bearer sign-in tries each audience Salesforce's CLI tries (audiences.py, P3)."""
        if login.flow != "jwt_bearer":
            return self._request_token_at(login, my_domain_url)
        return audiences.first_accepted(
            my_domain_url, lambda aud: self._request_token_at(login, my_domain_url, aud))

    def _request_token_at(self, login: IntegrationLogin, my_domain_url: str,
                          audience: str | None = None) -> TokenResult:
        base = my_domain_url.rstrip("/")
        flow = "client_credentials" if login.flow == "client_credentials" else "jwt"
        extra, data = signin.grant(flow, client_id=login.client_id,
                                   client_secret=login.client_secret, username=login.username,
                                   private_key=login.private_key, audience=audience or base)
        what = f"{self.org_label}: token request for {login.name}"
        self._count()
        response, payload = signin.post_token(self._session, base, data,
                                              {**login.headers, **extra}, what=what)
        if payload is None:
            return TokenResult(False, response.status_code, "invalid_response",
                               f"HTTP {response.status_code}, not a JSON object")
        if response.status_code != 200:
            return TokenResult(False, response.status_code, payload.get("error"),
                               payload.get("error_description"))
        instance = str(payload.get("instance_url") or base)
        if not payload.get("access_token"):  # HTTP 200 is not a sign-in without a token
            return TokenResult(False, response.status_code, "no_access_token",
                               f"{base}/services/oauth2/token answered HTTP "
                               f"{response.status_code} without an access_token")
        token = str(payload.get("access_token"))
        try:
            self._count()
            api = self._session.get(f"{instance}/services/data/v{PROBE_VERSION}/limits/",
                                    headers={"Authorization": f"Bearer {token}"})
        except requests.RequestException as exc:
            raise map_exception(exc, what=f"{what}: API call") from None
        code = None
        if api.status_code >= 300:
            code, _ = rest_error_details(_json_or_none(api))
        return TokenResult(api.status_code < 300, 200, instance_url=instance,
                           api_status=api.status_code, api_error=code)


def _progress_line(line: str) -> None:
    progress.line(line)  # on a terminal only (issue 18.4)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
