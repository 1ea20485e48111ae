"""Cassettes of remediate's wire traffic, per step kind: recording, scrubbing and replay.

Each step kind has a case: a sandbox scenario in which that kind drifts. Its traffic is pinned
in three cassettes, ``cassettes/<case>/read.yaml``, ``apply.yaml`` and ``verify.yaml``:

* read: ``engine.assess`` (composite SOQL, readMetadata, Tooling, userinfo);
* apply: ``engine.apply`` of that assessment (collections, upsertMetadata, Tooling inserts);
  an empty cassette when every change is manual (nothing is written);
* verify: ``engine.verify`` (the re-read, then each integration's token request and API call).

Replay is the default: no server runs, the gateway points at ``REPLAY_URL``, and vcr answers
from the cassette in record mode "none" without playback repeats. A request the cassette does not
hold raises vcr's ``CannotOverwriteExistingCassetteException``; an interaction left unplayed
fails ``phase``. ``REMEDIATE_RECORD_CASSETTES=1`` records instead, through the sandbox's HTTPS
server (vcr records at the http.client level, so the in-process adapter is invisible to it).

Everything is scrubbed before it is written (``scrub_request``/``scrub_response``), and the same
scrubbing runs on live requests before matching, so session ids, bearer tokens, JWT assertions,
timestamps, org ids and the server's port never decide a match: requests match on method, path,
query and the scrubbed body.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import vcr
import yaml
from vcr.cassette import Cassette
from vcr.request import Request as VcrRequest

from remediate import builtin, orgs
from remediate.orgs import OrgHandle
from remediate.playbook import digest
from remediate.salesforce.gateway import Credentials, Gateway
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.state import Org
from remediate.settings import OrgConfig

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes"
SCENARIOS = ROOT / "remediate" / "sandbox" / "scenarios"
RECORD_ENV = "REMEDIATE_RECORD_CASSETTES"

#: What the org's own URLs become in a cassette, and what replay's gateway believes.
FAKE_HOST = "example.my.salesforce.com"
FAKE_URL = f"https://{FAKE_HOST}"
FAKE_INSTANCE_HOST = "example-instance.salesforce.com"
#: The instance URL the gateway gets in replay mode. It is deliberately not a My Domain host, so
#: the gateway asks userinfo for the org's My Domain exactly as it does against the HTTPS server.
REPLAY_URL = "https://replay.invalid"
FAKE_ORG_ID = "00D000000000001AAA"
REDACTED = "REDACTED"
PHASES = ("read", "apply", "verify")


def recording() -> bool:
    return os.environ.get(RECORD_ENV) == "1"


# ---- the cases: one per step kind ----------------------------------------------------------


def _relax_workato_ip(org: Org) -> None:
    """Someone relaxed the Workato app's IP policy (no shipped scenario drifts app.ip_relaxation)."""
    org.metadata["ConnectedApp"]["Workato"]["oauthPolicy"]["ipRelaxation"] = "BYPASS"


@dataclass(frozen=True)
class Case:
    name: str  # the cassette directory: the kind, or the kind and a variant
    kind: str  # "*": every bound step (the demo org's commands)
    scenario: str
    automatic: bool = True  # False: every change of this kind is manual, apply writes nothing
    mutate: Callable[[Org], None] | None = None

    @property
    def directory(self) -> Path:
        return CASSETTES / self.name

    def cassette(self, phase: str) -> Path:
        return self.directory / f"{phase}.yaml"


CASES = (
    Case("app.access", "app.access", "c3-app-not-granted"),
    Case("app.api_scope", "app.api_scope", "c14-api-scope-missing"),
    Case("app.client_credentials", "app.client_credentials", "c1-client-credentials-off"),
    Case("app.client_credentials-eca", "app.client_credentials", "eca-c1-client-credentials-off"),
    Case("app.installed", "app.installed", "c9-app-not-installed", automatic=False),
    Case("app.ip_relaxation", "app.ip_relaxation", "healthy", mutate=_relax_workato_ip),
    Case("app.run_as_user", "app.run_as_user", "c2-no-run-as-user"),
    Case("app.uninstalled_allowed", "app.uninstalled_allowed", "c13-uninstalled-app-blocked"),
    Case("org.login_url", "org.login_url", "c10-wrong-login-url", automatic=False),
    Case("org.stored_urls", "org.stored_urls", "c10-wrong-login-url"),
    Case("app.session_policy", "app.session_policy", "c16-session-policy-blocks"),
    Case("package.installed", "package.installed", "c9-app-not-installed"),
    Case("permission_set.object_access", "permission_set.object_access",
         "c15-object-access-missing"),
    Case("profile.login_hours", "profile.login_hours", "c16-session-policy-blocks"),
    Case("profile.login_ip_ranges", "profile.login_ip_ranges", "c11-ip-restricted"),
    Case("user.active", "user.active", "c8-inactive-user"),
    Case("user.api_enabled", "user.api_enabled", "c7-api-disabled"),
    Case("user.license", "user.license", "c6-missing-license"),
    Case("user.permission_set", "user.permission_set", "c5-missing-permission-set"),
    Case("user.profile", "user.profile", "c4-wrong-profile"),
)

#: The demo org with both playbooks: the traffic of audit/plan (read), apply and verify.
DEMO = Case("demo", "*", "demo")


# ---- the org handle: the HTTPS server when recording, nothing at all when replaying ---------


def _handle(case: Case, spec: Any, gateway: Gateway, my_domain_url: str) -> OrgHandle:
    bindings = builtin.builtin_bindings(spec, my_domain_url, {})
    every, _ = orgs.bind_playbooks(bindings, None)
    steps = [s for s in every if case.kind in ("*", s.kind.name)]
    playbooks = {s.playbook for s in steps}
    logins = builtin.sandbox_logins(spec, playbooks)
    config = OrgConfig(login_url=my_domain_url, auth="access_token", playbooks=bindings)
    return OrgHandle(f"cassette:{case.name}", config, gateway, steps,
                     digest(steps), logins)


def replay_gateway(version: str | None = None) -> Gateway:
    """A gateway per replayed case, so each case negotiates the API version (GET
    /services/data/) as a fresh run does; the Metadata WSDL is parsed once per process anyway
    (ADR 0010)."""
    return Gateway(Credentials("access_token", REPLAY_URL, access_token="replay-token",
                               instance_url=REPLAY_URL), org_label="cassette replay",
                   version=version,
                   parallel=1)  # vcr records and replays from one thread at a time only


def _self_urls_on(org: Org, url: str) -> None:
    """Served, the org's My Domain is the server: URLs that name the org itself follow it, as
    they would on a real org, so that only the drift a scenario seeds is drift."""
    for type_, field in (("NamedCredential", "endpoint"), ("RemoteSiteSetting", "url")):
        for component in org.metadata.get(type_, {}).values():
            value = str(component.get(field) or "")
            if value.startswith(org.my_domain_url):
                component[field] = url + value[len(org.my_domain_url):]


@contextmanager
def org_for(case: Case, *, version: str | None = None) -> Iterator[OrgHandle]:
    """An ``OrgHandle`` whose steps are the case's kind, bound as for the built-in orgs.
    ``version`` pins the replay gateway's API version, for a test that replays a later phase
    alone (the version list is in the read phase's cassette)."""
    spec = scenarios.load(case.scenario)
    if not recording():
        yield _handle(case, spec, replay_gateway(version), FAKE_URL)
        return
    from remediate.sandbox.app import Sandbox
    from remediate.sandbox.server import admin_user_id, serve_in_thread

    org = scenarios.build_org(spec)
    if case.mutate is not None:
        case.mutate(org)
    sandbox = Sandbox([org])
    with serve_in_thread(sandbox) as srv:
        _self_urls_on(org, srv.url)
        token = org.new_session(admin_user_id(sandbox), None, ("api", "refresh_token"),
                                "cassette").token
        gateway = Gateway(Credentials("access_token", srv.url, access_token=token,
                                      instance_url=srv.url), ca_bundle=str(srv.ca_bundle),
                          org_label=f"cassette {case.name}", parallel=1)
        yield _handle(case, spec, gateway, srv.url)


# ---- scrubbing --------------------------------------------------------------------------------


@cache
def known_secrets() -> tuple[str, ...]:
    """Every secret the shipped scenarios hold: client/consumer secrets, passwords, keys."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and re.search(r"secret|password|private_key",
                                                        str(key)):
                    found.add(value.strip())
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted(SCENARIOS.glob("*.yaml")):
        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return tuple(sorted((s for s in found if len(s) >= 8), key=len, reverse=True))


_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM blocks (private keys, the JWT app's certificate)
    (re.compile(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", re.S), f"{REDACTED} PEM"),
    # session ids (org id, '!', token) anywhere: SOAP, JSON, URLs
    (re.compile(r"00D\w{12,15}![\w.\-~]+"), REDACTED),
    (re.compile(r"(<(?:\w+:)?sessionId\b[^>]*>)[^<]*(</(?:\w+:)?sessionId>)"), rf"\1{REDACTED}\2"),
    (re.compile(r"(<(?:\w+:)?consumerSecret\b[^>]*>)[^<]*(</(?:\w+:)?consumerSecret>)"),
     rf"\1{REDACTED}\2"),
    (re.compile(r"\b(?:Bearer|Basic) [\w.\-~+/=!]+"), f"{REDACTED}-AUTHORIZATION"),
    # JWTs (assertions, id tokens)
    (re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*"), REDACTED),
    # JSON secrets and per-request values
    (re.compile(r'"(access_token|refresh_token|signature|id_token|client_secret|'
                r'consumerSecret|password)"(\s*):(\s*)"[^"]*"'), rf'"\1"\2:\3"{REDACTED}"'),
    (re.compile(r'"issued_at"(\s*):(\s*)"\d+"'), r'"issued_at"\1:\2"0"'),
    (re.compile(r'"updated_at"(\s*):(\s*)"[^"]*"'), r'"updated_at"\1:\2"2000-01-01T00:00:00.000+0000"'),
    # form bodies
    (re.compile(r"\b(assertion|client_secret|password|refresh_token|token|code)=[^&\s]*"),
     rf"\1={REDACTED}"),
    # org ids (15 or 18 characters)
    (re.compile(r"\b00D[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?\b"), FAKE_ORG_ID),
    # the org's hosts: the HTTPS server (its My Domain when recording), replay's placeholder
    (re.compile(r"https://(?:127\.0\.0\.1|localhost)(?::\d+)?"), FAKE_URL),
    (re.compile(r"\b(?:127\.0\.0\.1|localhost):\d+"), FAKE_HOST),
    (re.compile(r"https://replay\.invalid"), FAKE_URL),
    (re.compile(r"\b[\w-]+\.my\.salesforce\.com"), FAKE_HOST),
    # an instance host stays an instance host (C10's stored URLs point at an old instance)
    (re.compile(r"\b[a-z]{2,4}\d+\.salesforce\.com", re.I), FAKE_INSTANCE_HOST),
)


def scrub_text(text: str) -> str:
    for pattern, replacement in _SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    for secret in known_secrets():
        text = text.replace(secret, REDACTED)
    return text


def _text(body: Any) -> str | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body.decode("utf-8")
    return str(body)


def _scrub_uri(uri: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(("https", FAKE_HOST, scrub_text(parts.path), scrub_text(parts.query), ""))


_KEEP_REQUEST_HEADERS = ("content-type", "soapaction", "accept")


def scrub_request(request: VcrRequest) -> VcrRequest:
    """What is stored (and matched) of a request: no credentials, no host, no port."""
    request.uri = _scrub_uri(request.uri)
    request.headers = {k: v for k, v in request.headers.items()
                       if k.lower() in _KEEP_REQUEST_HEADERS}
    text = _text(request.body)
    if text is not None:
        request.body = scrub_text(text).encode("utf-8")
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers") or {}
    response["headers"] = {k: v for k, v in headers.items() if k.lower() == "content-type"}
    body = response.get("body") or {}
    text = _text(body.get("string"))
    if text is not None:
        body["string"] = scrub_text(text).encode("utf-8")  # vcr plays bytes back
    response["body"] = body
    return response


# ---- matching -----------------------------------------------------------------------------


def _canonical(body: Any) -> str:
    text = _text(body) or ""
    try:
        return json.dumps(json.loads(text), sort_keys=True)
    except ValueError:
        return text


def body_matcher(r1: VcrRequest, r2: VcrRequest) -> None:
    if _canonical(r1.body) != _canonical(r2.body):
        raise AssertionError(f"bodies differ: {_canonical(r1.body)[:200]!r} != "
                             f"{_canonical(r2.body)[:200]!r}")


MATCH_ON = ("method", "path", "query", "scrubbed_body")


def make_vcr() -> vcr.VCR:
    v = vcr.VCR(
        serializer="yaml",
        match_on=MATCH_ON,
        before_record_request=scrub_request,
        before_record_response=scrub_response,
        decode_compressed_response=True,
    )
    v.register_matcher("scrubbed_body", body_matcher)
    return v


@contextmanager
def phase(case: Case, name: str) -> Iterator[Cassette]:
    """One phase's cassette: recorded afresh when recording, else replayed strictly.

    On leaving the block in replay mode, every recorded interaction must have been played.
    """
    path = case.cassette(name)
    if recording():
        path.unlink(missing_ok=True)
        with make_vcr().use_cassette(str(path), record_mode="all",
                                          allow_playback_repeats=False) as cassette:
            yield cassette
        if not path.exists():  # a phase without traffic still pins that it has none
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump({"interactions": [], "version": 1}),
                            encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(f"{path} is missing: record it with {RECORD_ENV}=1")
    with make_vcr().use_cassette(str(path), record_mode="none",
                                          allow_playback_repeats=False) as cassette:
        missed = _count_misses(cassette)
        yield cassette
    if missed:
        # vcr's refusal reaches remediate as a failed call, which a fallback or an optional
        # read (U5) may absorb: a request the cassette has no match for fails the test here
        raise AssertionError(f"{len(missed)} request(s) with no match in {path}: {missed}")
    unplayed(cassette)


def _count_misses(cassette: Cassette) -> list[str]:
    """Keep every request the cassette is asked to play and cannot."""
    missed: list[str] = []
    can_play = cassette.can_play_response_for

    def checked(request: VcrRequest) -> bool:
        found = bool(can_play(request))
        if not found:
            missed.append(f"{request.method} {request.path}")
        return found

    cassette.can_play_response_for = checked  # type: ignore[method-assign]
    return missed


def unplayed(cassette: Cassette) -> None:
    """Fail when the cassette holds an interaction the run did not make."""
    if cassette.all_played:
        return
    left = [f"{r.method} {r.path}" for i, r in enumerate(cassette.requests)
            if not cassette.play_counts[i]]
    raise AssertionError(f"{len(left)} unplayed interaction(s) in {cassette._path}: {left}")
