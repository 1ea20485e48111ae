"""The one HTTP session every call to an org goes through (API, OAuth, Metadata SOAP, verify's
token requests), and what it guarantees whatever the library on top (simple-salesforce, zeep):

* **no redirects**: Salesforce's APIs do not redirect, and a redirect re-sends the request, with
  the session id in its header or SOAP body, to whatever host the answer names. A 3xx answer is
  refused (``RedirectRefused``), naming the host it pointed at; nothing is re-sent.
* **a total deadline per request**: connect, send and read together end within ``total_s``
  (and within the retry deadline of the call, ``overall_deadline``). A server that trickles one
  byte a second never trips a per-read socket timeout; a watchdog shuts the request's socket at
  the deadline and the request fails with ``DeadlineExceeded`` (a ``requests`` Timeout).
* **bounded answers**: a body larger than ``MAX_ANSWER_BYTES`` is refused (``AnswerTooLarge``).
* **one log line per request** at ``-v`` (info): method, host, path, status, milliseconds,
  bytes. Never a header, a body or a query string's values.
* **the environment read once per host**: requests looks at the environment on every request
  (``*_proxy`` and ``no_proxy`` by walking all of ``os.environ``, ``REQUESTS_CA_BUNDLE``, and a
  stat of ``~/.netrc``, parsed again if it exists), about 0.4 ms of CPU a request, the largest
  cost of the client stack after zeep in a fleet run (issue 17). A session here asks requests
  the same questions once per scheme and host and keeps the answers for its life (one
  command's connection to one org): the same proxies, CA bundle and netrc credentials as
  requests would use, read when the session first talks to the host.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies, get_netrc_auth
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from remediate.inputs import MAX_ANSWER_BYTES
from remediate.logging import get_logger
from remediate.salesforce import shared_threads

log = get_logger()
DEFAULT_TIMEOUT = 30.0
#: The absolute (monotonic) time by which the current call must be done: its retry deadline.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "remediate_call_deadline", default=None)


class RedirectRefused(requests.exceptions.RequestException):
    """A 3xx answer: remediate never follows it (see the module docstring)."""

    def __init__(self, status: int, target_host: str) -> None:
        super().__init__(f"HTTP {status} redirect to {target_host}")
        self.status = status
        self.target_host = target_host


class DeadlineExceeded(requests.exceptions.Timeout):
    """The request did not complete (connect, send, read) within its total deadline."""


class AnswerTooLarge(requests.exceptions.RequestException):
    """An answer body larger than ``MAX_ANSWER_BYTES``."""


@contextmanager
def overall_deadline(seconds: float) -> Iterator[None]:
    """Requests made in the block end by ``seconds`` from now (an outer deadline wins)."""
    end = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _deadline.reset(token)


# ---- the watchdog: which connections the current request uses ------------------------------


class _Watch:
    def __init__(self) -> None:
        self.conns: list[Any] = []
        self.fired = False
        self.lock = threading.Lock()

    def add(self, conn: Any) -> None:
        with self.lock:
            self.conns.append(conn)
            fired = self.fired
        if fired:
            _shut(conn)

    def fire(self) -> None:
        with self.lock:
            self.fired = True
            conns = list(self.conns)
        for conn in conns:
            _shut(conn)


def _shut(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # wakes a recv blocked in another thread
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_current = threading.local()


class _Watched:
    """Mixed into urllib3's connections: each registers with the request using it."""

    def connect(self) -> None:
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.add(self)
        super().connect()  # type: ignore[misc]
        if watch is not None and watch.fired:
            _shut(self)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.add(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]


_watched_classes: dict[type, type] = {}


def _watched(base: type) -> type:
    """``base`` with the watchdog mixed in. The base is looked up when a pool is made, not at
    import: a library that patches urllib3's connection class (vcr, in tests) keeps working."""
    if base not in _watched_classes:
        _watched_classes[base] = type(f"Watched{base.__name__}", (_Watched, base), {})
    return _watched_classes[base]


class _HTTPPool(HTTPConnectionPool):
    @property
    def ConnectionCls(self) -> type:  # type: ignore[override]  # read per new connection
        return _watched(HTTPConnectionPool.ConnectionCls)


class _HTTPSPool(HTTPSConnectionPool):
    @property
    def ConnectionCls(self) -> type:  # type: ignore[override]  # read per new connection
        return _watched(HTTPSConnectionPool.ConnectionCls)


class WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


# ---- the session ---------------------------------------------------------------------------


def _origin(url: str | bytes) -> str:
    parts = urlsplit(url.decode() if isinstance(url, bytes) else url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _unchanged(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """The auth of a request to a host ``~/.netrc`` has no entry for: none."""
    return request


class TimeoutSession(requests.Session):
    """A requests session that never waits forever, never follows a redirect, and never reads
    an answer without bound (see the module docstring)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, total_s: float | None = None,
                 max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.total_s = total_s if total_s is not None else timeout
        self.max_answer_bytes = max_answer_bytes
        adapter = WatchedAdapter()
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        # what requests reads from the environment, per (scheme://host, no_proxy) and per
        # scheme://host (module docstring); a race fills an entry twice with the same answer
        self._env_proxies: dict[tuple[str, str | None], tuple[dict[str, str], str | None]] = {}
        self._netrc: dict[str, Any] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> Any:
        """requests' own merge (environment proxies unless given, then the CA bundle variables
        when ``verify`` is left at True, then the session's settings), with the environment
        read once per host (module docstring)."""
        if not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        no_proxy = proxies.get("no_proxy") if proxies is not None else None
        key = (_origin(url), no_proxy)
        known = self._env_proxies.get(key)
        if known is None:
            known = (get_environ_proxies(url, no_proxy=no_proxy),
                     os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"))
            self._env_proxies[key] = known
        env_proxies, ca_bundle = known
        if proxies is not None:
            for name, value in env_proxies.items():
                proxies.setdefault(name, value)
        if verify is True or verify is None:
            verify = ca_bundle or verify
        merge: Any = merge_setting  # untyped in requests' stubs
        return {"proxies": merge(proxies, self.proxies), "stream": merge(stream, self.stream),
                "verify": merge(verify, self.verify), "cert": merge(cert, self.cert)}

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """requests' own, with ``~/.netrc`` looked up once per host (module docstring): a host
        without an entry gets an auth that changes nothing, so requests does not look again."""
        origin = _origin(str(request.url))
        if self.trust_env and not request.auth and not self.auth and "@" not in origin:
            # (a URL with credentials in it gives requests its auth: not looked up here)
            if origin not in self._netrc:
                self._netrc[origin] = get_netrc_auth(request.url) or _unchanged
            request.auth = self._netrc[origin]
        return super().prepare_request(request)

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        total = self.total_s
        end = _deadline.get()
        if end is not None:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded("the call's retry deadline has passed")
            total = min(total, remaining)
        if kwargs.get("timeout") is None:  # zeep passes timeout=None explicitly
            kwargs["timeout"] = min(self.default_timeout, total)
        if isinstance(self.verify, str):
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's CA bundle;
            # an org's configured ca_bundle must win, so pass it per request.
            kwargs.setdefault("verify", self.verify)
        kwargs["allow_redirects"] = False  # every method: session.get's default is True
        streamed = bool(kwargs.pop("stream", False))
        kwargs["stream"] = True  # read here, bounded, under the watchdog
        watch = _Watch()
        outer = getattr(_current, "watch", None)
        _current.watch = watch
        started = time.monotonic()
        timer = shared_threads.deadlines.schedule(total, watch.fire)  # no thread per request
        try:
            response = super().request(method, url, *args, **kwargs)
            if not streamed:
                self._read_body(response)
        except DeadlineExceeded:
            raise
        except Exception as exc:
            if watch.fired:
                raise DeadlineExceeded(f"no complete answer within {total:g} s (connect, send "
                                       "and read together)") from None
            raise exc from None
        finally:
            timer.cancel()
            _current.watch = outer
        if watch.fired and not streamed:
            raise DeadlineExceeded(f"no complete answer within {total:g} s")
        self._log(method, url, response, started)
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location") or ""
            target = urlsplit(urljoin(str(url), location)).hostname or "an unnamed host"
            response.close()
            raise RedirectRefused(response.status_code, target)
        return response

    def _read_body(self, response: requests.Response) -> None:
        content: Any = response._content
        if content is not False:  # an adapter that answers in process set it
            if len(content or b"") > self.max_answer_bytes:
                raise AnswerTooLarge(f"the answer is more than the {self.max_answer_bytes} "
                                     "bytes remediate reads")
            return
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.max_answer_bytes:
            response.close()
            raise AnswerTooLarge(f"the answer is {length} bytes, more than the "
                                 f"{self.max_answer_bytes} remediate reads")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > self.max_answer_bytes:
                response.close()
                raise AnswerTooLarge(f"the answer is more than the {self.max_answer_bytes} "
                                     "bytes remediate reads")
            chunks.append(chunk)
        response._content = b"".join(chunks)
        response._content_consumed = True  # type: ignore[attr-defined]
        response.close()  # the body is read: the connection goes back to the pool

    @staticmethod
    def _log(method: str | bytes, url: str | bytes, response: requests.Response,
             started: float) -> None:
        parts = urlsplit(url.decode() if isinstance(url, bytes) else url)
        log.info("http.request", method=method.decode() if isinstance(method, bytes)
                 else method, host=parts.hostname, path=parts.path,
                 status=response.status_code, ms=round((time.monotonic() - started) * 1000, 1),
                 bytes=len(response._content) if isinstance(response._content, bytes) else None)
