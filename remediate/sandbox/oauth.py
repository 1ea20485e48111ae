"""The sandbox org's OAuth 2.0 endpoints: token, userinfo, identity URL and revoke.

The token endpoint decides every outcome from the org state: the app's metadata
(ConnectedApp or the External Client App family), the user, their profile and permission sets
(``access.py``) and the host the request came to. Each failure is one row of ``OUTCOMES``,
which holds the ``error`` / ``error_description`` pair Salesforce answers and the LoginHistory
``Status`` the sandbox writes. Where the reference leaves a value open, the choice is made in
that table and nowhere else (docs/sandbox.md lists them).

Sandbox-only switch: the request header ``X-Sandbox-Client-IP`` sets the source IP the org
sees, so a test can act as an integration calling from its own address. Without it the socket
peer (when served) or ``Org.default_client_ip`` is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from remediate.sandbox import access, objectaccess
from remediate.sandbox.ids import same_id
from remediate.sandbox.state import Org, Row, Session, now_iso
from remediate.sandbox.wire import API_VERSIONS, Context, Response

CLIENT_IP_HEADER = "X-Sandbox-Client-IP"

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True)
class Outcome:
    """One way a token request ends: the HTTP answer and the LoginHistory Status it leaves."""

    status: int
    error: str
    description: str
    login_status: str | None  # None: the attempt leaves no LoginHistory row


# Every failure of the token endpoint. [Q]/[C] rows follow reference 1.5; rows marked CHOICE
# settle something the reference leaves open (docs/sandbox.md, assumptions table).
# LoginHistory Status texts come from reference 4.7; which text goes with which failure is a
# CHOICE throughout (Salesforce does not document the mapping).
OUTCOMES: dict[str, Outcome] = {
    "wrong_host": Outcome(400, "invalid_grant", "request not supported on this domain",
                          "Restricted domain"),
    # C9: a consumer key the org does not know is a consumer whose package is not installed.
    "unknown_client": Outcome(400, "invalid_client_id", "client identifier invalid",
                              "Package for this consumer is not installed in your organization"),
    "eca_not_installed": Outcome(400, "app_not_found",
                                 "External client app is not installed in this org",
                                 "Package for this consumer is not installed in your organization"),
    "bad_secret": Outcome(400, "invalid_client", "invalid client credentials", "Invalid login"),
    # C13 [Q] (platform-truth.md A8, section 4); the LoginHistory Status is a CHOICE.
    "app_uninstalled": Outcome(400, "invalid_client", "app must be installed into org",
                               "Failed: Connected app not installed"),
    # C14 [Q] (platform-truth.md A7): client credentials without the api scope.
    "no_valid_scopes": Outcome(400, "invalid_grant", "no valid scopes defined",
                               "Failed: OAuth API access disabled"),
    # CHOICE (reference open question 1): invalid_grant rather than invalid_client.
    "flow_disabled": Outcome(400, "invalid_grant", "client credentials flow not enabled",
                             "Failed: OAuth API access disabled"),
    "no_run_as": Outcome(400, "invalid_grant", "no client credentials user enabled",
                         "Failed: OAuth API access disabled"),
    "inactive_user": Outcome(400, "invalid_grant", "inactive user", "User is inactive"),
    # JWT bearer and the user flows only: Permitted Users does not apply to the Run As user of
    # the client credentials flow (platform-truth.md A6).
    "not_admin_approved": Outcome(400, "invalid_app_access",
                                  "user is not admin approved to access this app",
                                  "Invalid login"),
    "not_approved": Outcome(400, "invalid_grant", "user hasn't approved this consumer",
                            "Invalid login"),
    "ip_restricted": Outcome(400, "invalid_grant", "ip restricted or invalid login hours",
                             "Restricted IP"),
    # CHOICE: an app whose session policy requires High Assurance blocks the flows without a
    # user step (client credentials, JWT, password, refresh); wording is the sandbox's own.
    "high_assurance": Outcome(400, "invalid_grant", "high assurance session required",
                              "Two-factor required"),
    # C16: the profile's login hours exclude now. The pair is the one reference 1.5 gives for
    # IP ranges and login hours alike; the Status is reference 4.7's "Restricted time".
    "login_hours": Outcome(400, "invalid_grant", "ip restricted or invalid login hours",
                           "Restricted time"),
    "bad_assertion": Outcome(400, "invalid_grant", "invalid assertion",
                             "Failed: Signature Invalid"),
    "bad_audience": Outcome(400, "invalid_grant", "audience is invalid", "Invalid login"),
    "expired_assertion": Outcome(400, "invalid_grant", "expired authorization code",
                                 "Failed: Invalid Token"),
    # CHOICE: a JWT whose subject is no user of the org is an invalid assertion.
    "unknown_user": Outcome(400, "invalid_grant", "invalid assertion", "Invalid login"),
    "bad_password": Outcome(400, "invalid_grant", "authentication failure", "Invalid password"),
    "bad_refresh": Outcome(400, "invalid_grant", "expired access/refresh token",
                           "Failed: Invalid Token"),
    # Malformed requests name no app or user: no LoginHistory row.
    "missing_grant": Outcome(400, "invalid_request", "grant type is missing", None),
    "unsupported_grant": Outcome(400, "unsupported_grant_type", "grant type not supported", None),
}

# LoginHistory LoginSubType per grant (reference 4.7). CHOICE: JWT bearer has no documented
# subtype, so its rows carry none.
LOGIN_SUB_TYPES: dict[str, str | None] = {
    "client_credentials": "OauthClientCredentials",
    "jwt_bearer": None,
    "password": "OauthUsernamePassword",
    "refresh_token": "OauthRefreshToken",
}

# Metadata scope enum -> the scope name in token responses. CHOICE: Basic -> id.
SCOPE_NAMES: dict[str, str] = {
    "Api": "api", "Basic": "id", "Web": "web", "Full": "full", "RefreshToken": "refresh_token",
    "OfflineAccess": "offline_access", "OpenID": "openid", "Profile": "profile",
    "Email": "email", "Address": "address", "Phone": "phone", "Chatter": "chatter_api",
    "CustomPermissions": "custom_permissions", "CustomApplications": "visualforce",
    "Wave": "wave_api", "Lightning": "lightning", "Content": "content", "Pardot": "pardot_api",
    "Eclair": "eclair_api", "CDPIngest": "cdp_ingest_api", "CDPProfile": "cdp_profile_api",
    "CDPQuery": "cdp_query_api", "Chatbot": "chatbot_api", "SFAP": "sfap_api",
}

# Scopes a grant never carries (reference 1.2: client credentials; 1.2/1.3: no refresh token
# from client credentials or JWT bearer).
WITHHELD_SCOPES: dict[str, frozenset[str]] = {
    "client_credentials": frozenset({"full", "web", "refresh_token", "offline_access"}),
    "jwt_bearer": frozenset({"refresh_token", "offline_access"}),
    "password": frozenset(),
    "refresh_token": frozenset(),
}

# JWT audiences accepted: Org.accepts_jwt_audience (state.py; reference 1.3).

# Hosts that accept each grant (reference 1.2/1.3). CHOICE: JWT and password are refused on an
# old instance host or a previous My Domain like client credentials are (Spring '26 stops
# redirecting instanced URLs).
GRANT_HOSTS: dict[str, frozenset[str]] = {
    "client_credentials": frozenset({"my_domain", "server"}),
    "jwt_bearer": frozenset({"my_domain", "server", "login"}),
    "password": frozenset({"my_domain", "server", "login"}),
    "refresh_token": frozenset({"my_domain", "server", "login"}),
}

LOGIN_TYPE = "Remote Access 2.0"


class Refused(Exception):
    """A token request that ends in one of ``OUTCOMES``."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


# ---- the app, whichever metadata family holds it -----------------------------------------


@dataclass(frozen=True)
class AppView:
    """What the token endpoint needs to know about a connected app or an external client app."""

    name: str
    label: str
    consumer_key: str
    consumer_secret: str | None
    installed: bool
    client_credentials: bool
    run_as: str | None
    admin_approved: bool
    ip_relaxation: str  # normalised to the ConnectedApp enum (ENFORCE, BYPASS, ...)
    scopes: tuple[str, ...]  # metadata enum names
    certificate: str | None
    high_assurance: bool
    family: str = "connected_app"  # or "external_client_app"


def find_app(org: Org, consumer_key: str) -> AppView | None:
    installed = [(n, a, True) for n, a in org.metadata.get("ConnectedApp", {}).items()]
    foreign = [(n, a, False) for n, a in org.uninstalled_apps.items()]
    for name, app, is_installed in installed + foreign:
        config = app.get("oauthConfig") or {}
        if config.get("consumerKey") != consumer_key:
            continue
        policy = app.get("oauthPolicy") or {}
        session = app.get("sessionPolicy") or {}
        return AppView(
            name=name, label=str(app.get("label") or name), consumer_key=consumer_key,
            consumer_secret=config.get("consumerSecret"), installed=is_installed,
            client_credentials=bool(config.get("isClientCredentialEnabled")),
            run_as=config.get("oauthClientCredentialUser") or None,
            # an app not installed has no policies in this org (A1, A8)
            admin_approved=bool(config.get("isAdminApproved")) and is_installed,
            ip_relaxation=str(policy.get("ipRelaxation") or "ENFORCE"),
            scopes=tuple(config.get("scopes") or ()),
            certificate=config.get("certificate") or None,
            high_assurance=session.get("sessionLevel") == "HIGH_ASSURANCE",
        )
    for settings in org.metadata.get("ExtlClntAppGlobalOauthSettings", {}).values():
        if settings.get("consumerKey") != consumer_key:
            continue
        name = str(settings.get("externalClientApplication") or "")
        header = org.metadata.get("ExternalClientApplication", {}).get(name)
        policy = access.eca_oauth_policy(org, name) or {}
        oauth = next((s for s in org.metadata.get("ExtlClntAppOauthSettings", {}).values()
                      if s.get("externalClientApplication") == name), {})
        scopes = tuple(s.strip() for s in str(oauth.get("commaSeparatedOauthScopes") or "")
                       .split(",") if s.strip())
        return AppView(
            name=name, label=str((header or {}).get("label") or name),
            consumer_key=consumer_key, consumer_secret=settings.get("consumerSecret"),
            installed=header is not None,
            client_credentials=bool(settings.get("isClientCredentialsFlowEnabled"))
            and bool(policy.get("isClientCredentialsFlowEnabled")),
            run_as=policy.get("clientCredentialsFlowUser") or None,
            admin_approved=policy.get("permittedUsersPolicyType") == "AdminApprovedPreAuthorized",
            ip_relaxation=str(policy.get("ipRelaxationPolicyType") or "Enforce").upper(),
            scopes=scopes,
            certificate=settings.get("certificate") or None,
            high_assurance=policy.get("requiredSessionLevel") == "HIGH_ASSURANCE",
            family="external_client_app",
        )
    return None


def granted_scopes(app: AppView, grant: str) -> tuple[str, ...]:
    out: list[str] = []
    for scope in app.scopes:
        name = SCOPE_NAMES.get(scope, scope.lower())
        if name not in WITHHELD_SCOPES[grant] and name not in out:
            out.append(name)
    return tuple(out)


# ---- entry point ---------------------------------------------------------------------------


def handle(ctx: Context) -> Response:
    path = ctx.request.path.rstrip("/")
    method = ctx.request.method.upper()
    if path == "/services/oauth2/token":
        if method != "POST":
            return _error(Outcome(400, "invalid_request", "must use HTTP POST", None))
        return token(ctx)
    if path == "/services/oauth2/userinfo":
        return userinfo(ctx)
    if path == "/services/oauth2/revoke":
        return revoke(ctx)
    if path.startswith("/id/"):
        return identity(ctx)
    return Response.of_json(404, [{"errorCode": "NOT_FOUND",
                                   "message": "The requested resource does not exist"}])


# ---- token ---------------------------------------------------------------------------------


@dataclass
class Attempt:
    """What one token request has revealed so far, for its LoginHistory row."""

    grant: str
    org: Org | None = None
    app: AppView | None = None
    user_id: str | None = None
    client_ip: str = ""


def token(ctx: Context) -> Response:
    form = ctx.request.form()
    grant_type = form.get("grant_type", "")
    grant = {"client_credentials": "client_credentials", JWT_GRANT: "jwt_bearer",
             "password": "password", "refresh_token": "refresh_token"}.get(grant_type)
    if not grant_type:
        return _error(OUTCOMES["missing_grant"])
    if grant is None:
        return _error(OUTCOMES["unsupported_grant"])
    attempt = Attempt(grant=grant, org=ctx.org)
    grants = {"client_credentials": _client_credentials, "jwt_bearer": _jwt_bearer,
              "password": _password, "refresh_token": _refresh}
    try:
        session, refresh = grants[grant](ctx, form, attempt)
    except Refused as refused:
        outcome = OUTCOMES[refused.key]
        _log(ctx, attempt, outcome.login_status)
        return _error(outcome)
    _log(ctx, attempt, "Success")
    assert attempt.org is not None and attempt.app is not None
    objectaccess.record_oauth_use(attempt.org, session.user_id, attempt.app.label)
    body = _success_body(ctx, attempt.org, attempt.app, session)
    if refresh is not None:
        body["refresh_token"] = refresh
    return Response.of_json(200, body)


def _client_auth(ctx: Context, form: dict[str, str]) -> tuple[str | None, str | None]:
    """Client id and secret from the body, or from an ``Authorization: Basic`` header."""
    auth = ctx.request.headers.get("Authorization") or ""
    if auth.startswith("Basic "):
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        key, _, secret = decoded.partition(":")
        return key or None, secret
    return form.get("client_id") or None, form.get("client_secret")


def _locate(ctx: Context, attempt: Attempt, consumer_key: str | None,
            username: str | None = None) -> AppView | None:
    """Find the org (login hosts route by consumer key) and the app, refusing nothing yet."""
    org = ctx.org
    if org is None and ctx.host_kind == "login" and consumer_key:
        # Several orgs may share a consumer key (a fleet built from one scenario): prefer the
        # one that also knows the user named in the request.
        candidates = [o for o in ctx.sandbox.orgs.values() if find_app(o, consumer_key)]
        if username:
            known = [o for o in candidates if o.user_by_username(username) is not None]
            candidates = known or candidates
        org = candidates[0] if candidates else None
    attempt.org = org
    if org is None:
        return None
    attempt.client_ip = _client_ip(ctx, org)
    if username:
        user = org.user_by_username(username)
        attempt.user_id = user["Id"] if user else None
    attempt.app = find_app(org, consumer_key) if consumer_key else None
    return attempt.app


def _require_app(ctx: Context, attempt: Attempt, grant: str) -> tuple[Org, AppView]:
    """The checks before anything about the app: the host, then whether the app exists."""
    if ctx.host_kind not in GRANT_HOSTS[grant]:
        raise Refused("wrong_host")
    if attempt.org is None or attempt.app is None:
        raise Refused("unknown_client")
    if not attempt.app.installed and attempt.app.family == "external_client_app":
        raise Refused("eca_not_installed")
    return attempt.org, attempt.app


def _client_ip(ctx: Context, org: Org) -> str:
    return str(ctx.request.headers.get(CLIENT_IP_HEADER) or ctx.request.client_ip
               or org.default_client_ip)


def _check_user(org: Org, app: AppView, user: Row, client_ip: str, *,
                refresh: bool = False, run_as: bool = False) -> None:
    """The checks every grant shares once the user is known, in Salesforce's order.

    ``run_as``: the user is the client credentials Run As user, whom Permitted Users ("Admin
    approved users are pre-authorized") does not gate (platform-truth.md A6).
    """
    if not user.get("IsActive"):
        raise Refused("inactive_user")
    _check_installed(org, app, user)
    if app.admin_approved and not run_as and \
            not access.user_granted_app(org, user["Id"], app.name):
        raise Refused("not_admin_approved")
    enforce = app.ip_relaxation in ("ENFORCE", "ENFORCE_RELAXREFRESH")
    if refresh and app.ip_relaxation == "ENFORCE_RELAXREFRESH":
        enforce = False
    if enforce and not access.ip_allowed(org, user["Id"], client_ip):
        raise Refused("ip_restricted")
    if not objectaccess.within_login_hours(org, user["Id"]):
        raise Refused("login_hours")
    if app.high_assurance:
        raise Refused("high_assurance")


def _check_installed(org: Org, app: AppView, user: Row) -> None:
    """C13 (A8): a connected app not installed in the org is blocked for users who lack
    "Approve Uninstalled Connected Apps"."""
    if not app.installed and not access.has_permission(org, user["Id"],
                                                       "ApproveUninstalledConnectedApps"):
        raise Refused("app_uninstalled")


Minted = tuple[Session, str | None]  # the session and, for refreshable grants, a refresh token


def _client_credentials(ctx: Context, form: dict[str, str], attempt: Attempt) -> Minted:
    key, secret = _client_auth(ctx, form)
    app = _locate(ctx, attempt, key)
    run_as = None
    if attempt.org is not None and app is not None and app.run_as:
        run_as = attempt.org.user_by_username(app.run_as)
        attempt.user_id = run_as["Id"] if run_as else None
    org, app = _require_app(ctx, attempt, "client_credentials")
    if not secret or not _same_secret(app, secret):
        raise Refused("bad_secret")
    if not app.client_credentials:
        raise Refused("flow_disabled")
    if run_as is None:
        # CHOICE: a Run As username that names no user counts as no Run As user.
        raise Refused("no_run_as")
    _check_user(org, app, run_as, attempt.client_ip, run_as=True)
    scopes = granted_scopes(app, "client_credentials")
    if "api" not in scopes:
        # C14 (A7): CHOICE (docs/sandbox.md): only the api scope counts as usable.
        raise Refused("no_valid_scopes")
    return org.new_session(run_as["Id"], app.name, scopes, "client_credentials"), None


def _same_secret(app: AppView, secret: str) -> bool:
    return app.consumer_secret is not None and hmac.compare_digest(
        app.consumer_secret.encode(), secret.encode())


def _jwt_bearer(ctx: Context, form: dict[str, str], attempt: Attempt) -> Minted:
    assertion = form.get("assertion", "")
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        claims = None
    if not isinstance(claims, dict):
        _locate(ctx, attempt, None)
        raise Refused("wrong_host" if ctx.host_kind not in GRANT_HOSTS["jwt_bearer"]
                      else "bad_assertion")
    subject = str(claims.get("sub") or "")
    _locate(ctx, attempt, str(claims.get("iss") or ""), subject)
    org, app = _require_app(ctx, attempt, "jwt_bearer")
    if not _signature_ok(assertion, app.certificate):
        raise Refused("bad_assertion")
    if not org.accepts_jwt_audience(app.name, str(claims.get("aud") or ""),
                                    _own_urls(ctx, org)):
        raise Refused("bad_audience")
    try:
        expires = float(claims["exp"])
    except (KeyError, TypeError, ValueError):
        raise Refused("bad_assertion") from None
    if expires < time.time():
        raise Refused("expired_assertion")
    user = org.user_by_username(subject) if subject else None
    if user is None:
        raise Refused("unknown_user")
    if not user.get("IsActive"):
        raise Refused("inactive_user")
    _check_installed(org, app, user)
    if not app.admin_approved:
        # CHOICE: the sandbox has no authorize flow, so nobody has ever self-approved an app.
        raise Refused("not_approved")
    _check_user(org, app, user, attempt.client_ip)
    scopes = granted_scopes(app, "jwt_bearer")
    return org.new_session(user["Id"], app.name, scopes, "jwt_bearer"), None


def _signature_ok(assertion: str, certificate: str | None) -> bool:
    if not certificate:
        return False
    try:
        public_key = x509.load_pem_x509_certificate(certificate.encode()).public_key()
    except ValueError:
        return False
    if not isinstance(public_key, RSAPublicKey):
        return False
    try:
        jwt.decode(assertion, public_key, algorithms=["RS256"],
                   options={"verify_aud": False, "verify_exp": False, "verify_iat": False,
                            "verify_nbf": False, "verify_iss": False, "verify_sub": False})
    except jwt.PyJWTError:
        return False
    return True


def _own_urls(ctx: Context, org: Org) -> set[str]:
    out = {org.my_domain_url}
    if ctx.sandbox.server_host:
        out.add(f"https://{ctx.sandbox.server_host}")
    return out


def _password(ctx: Context, form: dict[str, str], attempt: Attempt) -> Minted:
    key, secret = _client_auth(ctx, form)
    username = form.get("username", "")
    _locate(ctx, attempt, key, username)
    org, app = _require_app(ctx, attempt, "password")
    if not secret or not _same_secret(app, secret):
        raise Refused("bad_secret")
    user = org.user_by_username(username) if username else None
    if user is None or not org.check_password(user["Id"], form.get("password", "")):
        raise Refused("bad_password")
    _check_user(org, app, user, attempt.client_ip)
    session = org.new_session(user["Id"], app.name, granted_scopes(app, "password"), "password")
    refresh = None
    if "refresh_token" in session.scopes:
        refresh = org.issue_refresh_token(user["Id"])
    return session, refresh


def _refresh(ctx: Context, form: dict[str, str], attempt: Attempt) -> Minted:
    key, secret = _client_auth(ctx, form)
    refresh = form.get("refresh_token", "")
    if ctx.org is None and ctx.host_kind == "login":
        owner = next((o for o in ctx.sandbox.orgs.values() if o.refresh_token_user(refresh)), None)
        if owner is not None:
            ctx = Context(ctx.sandbox, ctx.request, owner, ctx.host_kind)
    _locate(ctx, attempt, key)
    org, app = _require_app(ctx, attempt, "refresh_token")
    # CHOICE: isSecretRequiredForRefreshToken is not modelled; a secret, when sent, must match.
    if secret is not None and not _same_secret(app, secret):
        raise Refused("bad_secret")
    user_id = org.refresh_token_user(refresh)
    user = org.get("User", user_id) if user_id else None
    if user is None:
        raise Refused("bad_refresh")
    attempt.user_id = user["Id"]
    _check_user(org, app, user, attempt.client_ip, refresh=True)
    scopes = granted_scopes(app, "refresh_token")
    return org.new_session(user["Id"], app.name, scopes, "refresh_token"), None


def _success_body(ctx: Context, org: Org, app: AppView, session: Session) -> dict[str, Any]:
    identity_url = f"{_identity_host(org)}/id/{org.org_id}/{session.user_id}"
    issued_at = str(session.issued_at_ms)
    digest = hmac.new((app.consumer_secret or "").encode(),
                      (identity_url + issued_at).encode(), hashlib.sha256).digest()
    body: dict[str, Any] = {
        "access_token": session.token,
        "signature": base64.b64encode(digest).decode(),
        "scope": " ".join(session.scopes),
        "instance_url": _org_url(ctx, org),
        "id": identity_url,
        "token_type": "Bearer",
        "issued_at": issued_at,
    }
    return body


def _identity_host(org: Org) -> str:
    return "https://test.salesforce.com" if org.is_sandbox else "https://login.salesforce.com"


def _org_url(ctx: Context, org: Org) -> str:
    """The org's URL as the client should use it: the server's own address when served."""
    if ctx.host_kind == "server" and ctx.sandbox.server_host:
        return f"https://{ctx.sandbox.server_host}"
    return org.my_domain_url


def _log(ctx: Context, attempt: Attempt, status: str | None) -> None:
    """One LoginHistory row per attempt in the org it reached (not a configuration write)."""
    org = attempt.org
    if status is None or org is None:
        return
    org.record_login({
        "UserId": attempt.user_id,
        "LoginTime": now_iso(),
        "LoginType": LOGIN_TYPE,
        "LoginSubType": LOGIN_SUB_TYPES[attempt.grant],
        "Status": status,
        "SourceIp": attempt.client_ip or _client_ip(ctx, org),
        "ForwardedForIp": None,
        "LoginUrl": ctx.request.host,
        "Application": attempt.app.label if attempt.app else None,
        "ApiType": "N/A",
        "ApiVersion": "N/A",
        "Browser": "Unknown",
        "Platform": "Unknown",
        "ClientVersion": "N/A",
        "CountryIso": None,
        "CipherSuite": None,
        "TlsProtocol": None,
        "LoginGeoId": None,
        "NetworkId": None,
        "AuthenticationServiceId": None,
        "AuthMethodReference": None,
        "OptionsIsGet": False,
        "OptionsIsPost": True,
    })


def _error(outcome: Outcome) -> Response:
    return Response.of_json(outcome.status, {"error": outcome.error,
                                             "error_description": outcome.description})


# ---- userinfo and identity -----------------------------------------------------------------

# CHOICE: an invalid or missing token on userinfo/identity answers 401 with this body (real
# orgs answer 401/403 with "Bad_OAuth_Token" in some form).
BAD_TOKEN = {"error": "invalid_token", "error_description": "Bad_OAuth_Token"}


def _bearer_session(ctx: Context) -> tuple[Org, Session] | None:
    token = ctx.request.bearer()
    if not token:
        return None
    org = ctx.org if ctx.org is not None else ctx.sandbox.org_for_token(token)
    if org is None:
        return None
    session = org.session_for(token)
    return (org, session) if session is not None else None


def userinfo(ctx: Context) -> Response:
    found = _bearer_session(ctx)
    if found is None:
        return Response.of_json(401, BAD_TOKEN)
    org, session = found
    user = org.get("User", session.user_id)
    if user is None:
        return Response.of_json(401, BAD_TOKEN)
    version = _version(ctx)
    body = {
        "sub": f"{_identity_host(org)}/id/{org.org_id}/{user['Id']}",
        "user_id": user["Id"],
        "organization_id": org.org_id,
        "preferred_username": user["Username"],
        "nickname": user.get("Alias"),
        "name": user.get("Name"),
        "email": user.get("Email"),
        "email_verified": True,
        "given_name": user.get("FirstName"),
        "family_name": user.get("LastName"),
        "zoneinfo": user.get("TimeZoneSidKey"),
        "photos": _photos(ctx, org, user),
        "profile": f"{_org_url(ctx, org)}/{user['Id']}",
        "picture": _photos(ctx, org, user)["picture"],
        "address": {},
        "urls": _urls(ctx, org, user, version),
        "active": bool(user.get("IsActive")),
        "user_type": str(user.get("UserType") or "Standard").upper(),
        "language": user.get("LanguageLocaleKey"),
        "locale": user.get("LocaleSidKey"),
        "utcOffset": _utc_offset_ms(user.get("TimeZoneSidKey")),
        "updated_at": _userinfo_date(user.get("LastModifiedDate")),
        "is_app_installed": session.app is not None,
    }
    return Response.of_json(200, body)


def identity(ctx: Context) -> Response:
    found = _bearer_session(ctx)
    if found is None:
        return Response.of_json(401, BAD_TOKEN)
    org, session = found
    parts = [p for p in ctx.request.path.split("/") if p]  # id, orgId, userId
    if len(parts) != 3 or not same_id(parts[1], org.org_id):
        return Response.of_json(404, {"error": "Bad_Id", "error_description": "Bad_Id"})
    user = org.get("User", parts[2])
    if user is None:
        return Response.of_json(404, {"error": "Bad_Id", "error_description": "Bad_Id"})
    version = _version(ctx)
    body = {
        "id": f"{_identity_host(org)}/id/{org.org_id}/{user['Id']}",
        "asserted_user": same_id(user["Id"], session.user_id),
        "user_id": user["Id"],
        "organization_id": org.org_id,
        "username": user["Username"],
        "nick_name": user.get("Alias"),
        "display_name": user.get("Name"),
        "email": user.get("Email"),
        "email_verified": True,
        "first_name": user.get("FirstName"),
        "last_name": user.get("LastName"),
        "timezone": user.get("TimeZoneSidKey"),
        "photos": _photos(ctx, org, user),
        "addr_street": None, "addr_city": None, "addr_state": None, "addr_country": None,
        "addr_zip": None,
        "mobile_phone": None,
        "mobile_phone_verified": False,
        "is_lightning_login_user": False,
        "status": {"created_date": None, "body": None},
        "urls": _urls(ctx, org, user, version),
        "active": bool(user.get("IsActive")),
        "user_type": str(user.get("UserType") or "Standard").upper(),
        "language": user.get("LanguageLocaleKey"),
        "locale": user.get("LocaleSidKey"),
        "utcOffset": _utc_offset_ms(user.get("TimeZoneSidKey")),
        "last_modified_date": user.get("LastModifiedDate"),
    }
    return Response.of_json(200, body)


def _userinfo_date(value: Any) -> Any:
    """userinfo's ``updated_at`` is ``yyyy-mm-ddThh:mm:ssZ`` (pasted real answers,
    tests/conformance workspace_one_userinfo), where the identity URL's
    ``last_modified_date`` keeps the API's ``.000+0000`` form."""
    try:
        moment = datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_offset_ms(zone: Any) -> int:
    """The time zone's standard offset from UTC in milliseconds: recorded traffic
    (tests/conformance) answers -28800000 for America/Los_Angeles in July, so no daylight
    saving. An unknown zone counts as UTC."""
    try:
        tz = ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    moment = datetime(2021, 1, 15, 12, tzinfo=tz)
    offset = (moment.utcoffset() or timedelta(0)) - (moment.dst() or timedelta(0))
    return int(offset.total_seconds() * 1000)


def _version(ctx: Context) -> str | None:
    """``version=`` replaces the literal ``{version}`` in returned URLs; ``latest`` allowed."""
    wanted = (ctx.request.query.get("version") or [""])[0]
    if not wanted:
        return None
    if wanted == "latest":
        return API_VERSIONS[-1]
    return wanted.lstrip("v")


def _photos(ctx: Context, org: Org, user: Row) -> dict[str, str]:
    base = f"{_org_url(ctx, org)}/profilephoto/005/"
    return {"picture": base + "F", "thumbnail": base + "T"}


def _urls(ctx: Context, org: Org, user: Row, version: str | None) -> dict[str, str]:
    base = _org_url(ctx, org)
    org15 = org.org_id[:15]
    v = version or "{version}"
    return {
        "enterprise": f"{base}/services/Soap/c/{v}/{org15}",
        "metadata": f"{base}/services/Soap/m/{v}/{org15}",
        "partner": f"{base}/services/Soap/u/{v}/{org15}",
        "rest": f"{base}/services/data/v{v}/",
        "sobjects": f"{base}/services/data/v{v}/sobjects/",
        "search": f"{base}/services/data/v{v}/search/",
        "query": f"{base}/services/data/v{v}/query/",
        "recent": f"{base}/services/data/v{v}/recent/",
        "tooling_soap": f"{base}/services/Soap/T/{v}/{org15}",
        "tooling_rest": f"{base}/services/data/v{v}/tooling/",
        "profile": f"{base}/{user['Id']}",
        "feeds": f"{base}/services/data/v{v}/chatter/feeds",
        "groups": f"{base}/services/data/v{v}/chatter/groups",
        "users": f"{base}/services/data/v{v}/chatter/users",
        "feed_items": f"{base}/services/data/v{v}/chatter/feed-items",
        "feed_elements": f"{base}/services/data/v{v}/chatter/feed-elements",
        "custom_domain": base,
    }


# ---- revoke --------------------------------------------------------------------------------


def revoke(ctx: Context) -> Response:
    """Revoke an access or refresh token (form ``token=`` or ``?token=``; reference 1.7).

    Revoking a refresh token also ends the sessions its user holds through refreshable grants
    (password, refresh_token) for the same org: the sandbox does not link a refresh token to
    the exact access tokens minted from it (CHOICE).
    """
    token = ctx.request.form().get("token") if ctx.request.method.upper() == "POST" else None
    token = token or (ctx.request.query.get("token") or [""])[0]
    orgs = [ctx.org] if ctx.org is not None else list(ctx.sandbox.orgs.values())
    for org in orgs:
        if org.revoke_token(token):
            return Response(200)
    return Response.of_json(400, {"error": "invalid_token",
                                  "error_description": "Token was invalid"})
