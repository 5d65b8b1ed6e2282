"""OAuth 2 for Mastodon client apps: app registration, the sign-in, codes and tokens.

It follows Mastodon (Doorkeeper) as clients meet it: ``POST /api/v1/apps`` registers an app and
answers its ``client_id`` and ``client_secret``; ``/oauth/authorize`` signs a person in and
hands the app a code; ``POST /oauth/token`` exchanges the code, once, for an access token;
``POST /oauth/revoke`` ends it. The differences:

* A person signs in as on the pages: already signed in (a live page session), or with their
  name and password (which opens a page session), or with a gateway token (for people who have
  no password); then they pick which managed account the app acts as. The access token is an
  ordinary gateway token bound to (person, account): ``Identity`` checks it like any other, and
  the rest of the gateway cannot tell them apart. Signed in with a token, the app's token ends
  with that token; signed in with a password or a session, it lives, as Mastodon's do, until it
  is revoked (``byline token revoke``, ``/oauth/revoke``) or the person's password changes
  (``byline user set-password``: whoever knew the old one may have signed the app in).
* PKCE: ``S256`` only, as Mastodon has it (``plain`` sends the secret it should prove).
  A client that does not authenticate with its secret at the token endpoint (a public client)
  must have used PKCE; a verifier for a code issued without a challenge is refused
  (OAuth 2.1 §4.1.3), so PKCE cannot be stripped off on the way.
* A code used twice is refused, and the token first issued for it is revoked (RFC 6749 §4.1.2).
* Two grants, as Mastodon has them but for ``password``: ``authorization_code``, and
  ``client_credentials``, which gives an app that proves itself with its secret a token of
  its own, for calls about the app (``GET /api/v1/apps/verify_credentials``). That token
  stands for no person and no account: it is not a gateway token at all (``app_token``), so
  nothing that posts or reads for an account can take it. It lives until the app revokes it.

Client secrets, codes and tokens are stored as SHA-256 only. Issuing and revoking a client's
access is a change of who speaks for an account, so both are written to the log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from gateway.audit.appender import Appender, LogTxn
from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.policy.engine import Role, roles
from gateway.policy.loader import PolicyRegistry
from gateway.services.identity import TOKEN_PREFIX, Identity, hash_token
from gateway.services.people import People, Session
from gateway.services.posts import Caller
from gateway.services.scopes import SCOPES
from gateway.services.throttle import Throttle, client_key
from gateway.storage import oauth as sql
from gateway.storage import tokens as tokens_sql
from gateway.storage.db import Database
from gateway.types import duration_micros

OOB = "urn:ietf:wg:oauth:2.0:oob"
"""The redirect URI that asks for the code to be shown instead of sent."""

CODE_TTL = timedelta(minutes=10)
"""How long an authorization code stays usable (Doorkeeper's default)."""

# Schemes that run or read something in the person's own browser instead of reaching the app.
_FORBIDDEN_SCHEMES = frozenset({"data", "javascript", "vbscript", "file", "blob", "filesystem", "about"})
_MAX_REDIRECT_URIS = 20
_CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_MAX_NAME = 60
_MAX_URI = 2000

# Doorkeeper's words for each OAuth error, which clients show as they are.
DESCRIPTIONS = {
    "invalid_request": "The request is missing a required parameter, includes an unsupported "
                       "parameter value, or is otherwise malformed.",
    "invalid_client": "Client authentication failed due to unknown client, no client "
                      "authentication included, or unsupported authentication method.",
    "invalid_grant": "The provided authorization grant is invalid, expired, revoked, does not "
                     "match the redirection URI used in the authorization request, or was "
                     "issued to another client.",
    "unsupported_grant_type": "The authorization grant type is not supported by the "
                              "authorization server.",
    "invalid_scope": "The requested scope is invalid, unknown, or malformed.",
    "unsupported_response_type": "The authorization server does not support this response type.",
    "invalid_redirect_uri": "The requested redirect uri is malformed or doesn't match client "
                            "redirect URI.",
    "access_denied": "The resource owner or authorization server denied the request.",
}

_STATUS_CODE = {"invalid_client": Code.UNAUTHENTICATED}


def oauth_error(
    error: str, description: str | None = None, *, redirect: bool = False, app: str | None = None,
) -> BylineError:
    """An OAuth error: ``details["oauth"]`` is its code; ``redirect`` says whether the sign-in
    may offer to take it back to the app's redirect URI (only once that URI is known to be the
    app's), and ``app`` names the app for that offer."""
    return BylineError(
        _STATUS_CODE.get(error, Code.BAD_REQUEST), description or DESCRIPTIONS[error],
        oauth=error, redirect=redirect, app=app,
    )


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_scopes(raw: str | None, *, default: str = "read") -> tuple[str, ...]:
    """Space- (or plus-) separated scopes, in order, without repeats; an unknown one is None."""
    text = (raw or "").replace("+", " ").strip() or default
    out: list[str] = []
    for scope in text.split():
        if scope not in out:
            out.append(scope)
    return tuple(out)


def _redirect_uris(raw: Any) -> list[str]:
    values = raw if isinstance(raw, list) else str(raw or "").split()
    uris = [str(v).strip() for v in values if str(v).strip()]
    if not uris:
        raise BylineError(Code.VALIDATION, "Validation failed: Redirect URI can't be blank")
    if len(uris) > _MAX_REDIRECT_URIS:
        raise BylineError(
            Code.VALIDATION, f"Validation failed: Redirect URI: at most {_MAX_REDIRECT_URIS} may be registered"
        )
    for uri in uris:
        if uri == OOB:
            continue
        parts = urlsplit(uri)
        if len(uri) > _MAX_URI:
            raise BylineError(Code.VALIDATION, "Validation failed: Redirect URI is too long")
        if not parts.scheme or (not parts.netloc and not parts.path):
            raise BylineError(Code.VALIDATION, "Validation failed: Redirect URI must be an absolute URI.")
        if parts.fragment or "#" in uri:
            raise BylineError(Code.VALIDATION, "Validation failed: Redirect URI cannot contain a fragment.")
        if parts.scheme.lower() in _FORBIDDEN_SCHEMES:
            raise BylineError(Code.VALIDATION, "Validation failed: Redirect URI is forbidden by the server.")
    return uris


@dataclass(frozen=True, kw_only=True)
class App:
    """A registered client app, as shown to it once (with its secret)."""

    client_id: str
    client_secret: str
    name: str
    website: str | None
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class AuthRequest:
    """A checked authorization request: the app, where the code goes, and what it may do."""

    client_id: str
    app_name: str
    app_website: str | None
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    challenge: str | None
    challenge_method: str | None

    @property
    def shows_code(self) -> bool:
        """The code is shown to the person rather than sent to a redirect URI."""
        return self.redirect_uri == OOB


@dataclass(frozen=True, kw_only=True)
class SignInForm:
    """What the sign-in page sent: a name and password or a token (step one), the ticket of a
    token's step two, or the page session the form was bound to; and the choice."""

    csrf: str
    token: str | None = field(default=None, repr=False)
    ticket: str | None = field(default=None, repr=False)
    name: str | None = None
    password: str | None = field(default=None, repr=False)
    session: Session | None = None
    """The browser's page session, when the form was bound to it (step two of a signed-in person)."""
    previous: tuple[str, ...] = field(default=(), repr=False)
    """The browser's page session cookies, ended when a name and password sign it in afresh."""
    device: str | None = field(default=None, repr=False)
    """The browser's device cookie, which a name and password are counted by when it is theirs."""
    decision: str | None = None
    account: str | None = None


@dataclass(frozen=True, kw_only=True)
class SignInStep:
    """What the sign-in page shows next: ask who it is, ask for the account, or finish.

    ``failure`` says why a step is asked again and ``failed`` which way in failed (the page
    marks that field); ``session`` is the page session step two is bound to, and ``cookie`` a
    new one's cookie for the browser (after a password)."""

    kind: Literal["token", "account", "code", "denied"]
    error: str | None = None
    failure: Code | None = None
    failed: Literal["password", "token"] | None = None
    user: str | None = None
    accounts: tuple[str, ...] = ()
    ticket: str | None = field(default=None, repr=False)
    code: str | None = field(default=None, repr=False)
    session: Session | None = None
    cookie: str | None = field(default=None, repr=False)
    device: str | None = field(default=None, repr=False)
    """A new device cookie for the browser (after a password)."""


@dataclass(frozen=True, kw_only=True)
class Grant:
    """What the sign-in lets an app do, for whom: the token's app and scopes."""

    client_id: str
    app_name: str | None
    scopes: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class TokenAnswer:
    """The answer of a successful token request."""

    access_token: str
    scope: str
    created_at: int

    def to_json(self) -> dict[str, Any]:
        """The Token entity."""
        return {"access_token": self.access_token, "token_type": "Bearer", "scope": self.scope,
                "created_at": self.created_at}


class OAuthService:
    """Registers apps, signs people in for them, and exchanges and revokes their tokens."""

    def __init__(
        self, *, db: Database, appender: Appender, identity: Identity, policies: PolicyRegistry,
        clock: Clock, form_key: bytes, throttle: Throttle, people: People,
    ) -> None:
        self._people = people
        self._form_key = form_key
        self._throttle = throttle
        self._db = db
        self._appender = appender
        self._identity = identity
        self._policies = policies
        self._clock = clock

    # -- apps ------------------------------------------------------------------------------

    async def register(self, params: dict[str, Any]) -> App:
        """``POST /api/v1/apps``: a new app, with its secret shown this once."""
        name = params.get("client_name")
        if not isinstance(name, str) or not name.strip():
            raise BylineError(Code.VALIDATION, "Validation failed: Application name can't be blank")
        name = name.strip()
        if len(name) > _MAX_NAME:
            raise BylineError(
                Code.VALIDATION, f"Validation failed: Application name is too long (maximum is {_MAX_NAME} characters)"
            )
        uris = _redirect_uris(params.get("redirect_uris"))
        raw_scopes = params.get("scopes")
        if isinstance(raw_scopes, list) and not all(isinstance(s, str) for s in raw_scopes):
            # A JSON body's list may hold anything; only names of scopes are scopes.
            raise BylineError(Code.VALIDATION, "Validation failed: Scopes doesn't match configured on the server.")
        scopes = parse_scopes(" ".join(raw_scopes) if isinstance(raw_scopes, list) else
                              raw_scopes if isinstance(raw_scopes, str) else None)
        if not set(scopes) <= SCOPES:
            raise BylineError(Code.VALIDATION, "Validation failed: Scopes doesn't match configured on the server.")
        website = params.get("website")
        website = website.strip() if isinstance(website, str) and website.strip() else None
        if website is not None and (urlsplit(website).scheme not in ("http", "https") or len(website) > _MAX_URI):
            raise BylineError(Code.VALIDATION, "Validation failed: Website is invalid")
        client_id = secrets.token_urlsafe(32)
        client_secret = secrets.token_urlsafe(32)
        async with self._db.write() as txn:
            await sql.insert_app(
                txn, client_id=client_id, secret_hash=_sha256(client_secret), name=name,
                website=website, redirect_uris=json.dumps(uris), scopes=" ".join(scopes),
                at=now_micros(self._clock),
            )
        return App(client_id=client_id, client_secret=client_secret, name=name, website=website,
                   redirect_uris=tuple(uris), scopes=scopes)

    # -- the sign-in -----------------------------------------------------------------------

    async def check_request(self, query: dict[str, str]) -> AuthRequest:
        """Check an authorization request before anyone is asked to sign in.

        An unknown client or a redirect URI it did not register is shown on the page; every
        later problem goes back to the app's redirect URI (``redirect=True``), as RFC 6749
        §4.1.2.1 has it.
        """
        client_id = query.get("client_id") or ""
        async with self._db.read() as txn:
            app = await sql.get_app(txn, client_id) if client_id else None
        if app is None:
            raise oauth_error("invalid_client")
        registered = json.loads(app["redirect_uris"])
        redirect_uri = query.get("redirect_uri") or ""
        if not redirect_uri and len(registered) == 1:
            redirect_uri = registered[0]
        if redirect_uri not in registered:
            raise oauth_error("invalid_redirect_uri")
        base = dict(client_id=client_id, app_name=app["name"], app_website=app["website"],
                    redirect_uri=redirect_uri, state=query.get("state") or None)
        if query.get("response_type") != "code":
            raise oauth_error("unsupported_response_type", redirect=True, app=app["name"])
        scopes = parse_scopes(query.get("scope"))
        if not set(scopes) <= set(app["scopes"].split()):
            raise oauth_error("invalid_scope", redirect=True, app=app["name"])
        challenge = query.get("code_challenge") or None
        method = query.get("code_challenge_method") or None
        if challenge is None and method is not None:
            raise oauth_error("invalid_request", "code_challenge_method was sent without a code_challenge.",
                              redirect=True, app=app["name"])
        if challenge is not None:
            method = method or "plain"
            if method != "S256":
                raise oauth_error("invalid_request", "The code challenge method must be S256.",
                                  redirect=True, app=app["name"])
            if not _CHALLENGE.match(challenge):
                raise oauth_error("invalid_request", "The code_challenge is malformed.",
                                  redirect=True, app=app["name"])
        return AuthRequest(scopes=scopes, challenge=challenge, challenge_method=method, **base)

    def form_value(self, request: AuthRequest, nonce: str) -> str:
        """The sign-in form's CSRF value: the cookie's random ``nonce`` bound (HMAC with the
        gateway's own sign-in key) to the app, redirect URI, scopes, state and PKCE challenge
        the page was shown for, so a form cannot be replayed for another request."""
        bound = "\x00".join((
            nonce, request.client_id, request.redirect_uri, " ".join(request.scopes),
            request.state or "", request.challenge or "", request.challenge_method or "",
        ))
        digest = hmac.new(self._form_key, bound.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def signed_in(self, session: Session) -> SignInStep:
        """Step two for a person already signed in to the pages: which account, if any."""
        return SignInStep(kind="account", user=session.person, session=session,
                          accounts=tuple(self.choices(Caller(user=session.person))))

    async def step(self, request: AuthRequest, form: SignInForm, *, client: str) -> SignInStep:
        """One submit of the sign-in page (its CSRF value already checked by the page); a wrong
        password or token counts against the client's address (a password also against the
        name), and too many of them are refused (429)."""
        if form.decision == "deny":
            if form.ticket:
                await self.end(form.ticket)
            return SignInStep(kind="denied")
        if form.password is not None:
            return await self._password(form, client=client)
        if form.session is not None and form.ticket is None and form.token is None:
            return await self._decide(request, form, Caller(user=form.session.person), ticket=None,
                                      session=form.session)
        try:
            if form.ticket:
                ticket = form.ticket
                caller = await self.resume(ticket, csrf=form.csrf)
            else:
                address = client_key(client)
                with self._throttle.attempt(address):
                    try:
                        caller, ticket = await self.sign_in(form.token, csrf=form.csrf)
                    except BylineError:  # the database not answering (no BylineError) counts no failure
                        self._throttle.failed(address)
                        raise
        except BylineError as exc:
            if exc.code is Code.TOO_MANY_REQUESTS:
                raise
            return SignInStep(kind="token", failure=Code.UNAUTHENTICATED, failed="token",
                              error=exc.message if form.ticket else
                              "That token was not accepted. Check it and try again.")
        return await self._decide(request, form, caller, ticket=ticket, session=None)

    async def _password(self, form: SignInForm, *, client: str) -> SignInStep:
        """Step one with a name and password: a new page session (the browser's old one ends),
        then step two bound to it."""
        name = (form.name or "").strip()
        if not name or not form.password:
            return SignInStep(kind="token", failure=Code.VALIDATION, failed="password",
                              error="Enter your name and your password.")
        try:
            signed = await self._people.sign_in(name, form.password, client=client, ending=form.previous,
                                                device=form.device)
        except BylineError as exc:
            if exc.code is not Code.UNAUTHENTICATED:
                raise
            return SignInStep(kind="token", failure=Code.UNAUTHENTICATED, failed="password", error=exc.message)
        return SignInStep(kind="account", user=signed.session.person, session=signed.session, cookie=signed.cookie,
                          device=signed.device, accounts=tuple(self.choices(Caller(user=signed.session.person))))

    async def _decide(self, request: AuthRequest, form: SignInForm, caller: Caller, *, ticket: str | None,
                      session: Session | None) -> SignInStep:
        """Step two: show the accounts, or, on Authorize, the code."""
        accounts = tuple(self.choices(caller))
        if form.decision != "allow":
            return SignInStep(kind="account", user=caller.user, accounts=accounts, ticket=ticket, session=session)
        try:
            code = await self.authorize(request, caller, account=form.account or "", ticket=ticket)
        except BylineError as exc:
            if exc.code is Code.UNAUTHENTICATED:
                return SignInStep(kind="token", failure=exc.code, failed="token", error=exc.message)
            return SignInStep(kind="account", user=caller.user, accounts=accounts, ticket=ticket, session=session,
                              failure=exc.code, error=exc.message)
        return SignInStep(kind="code", code=code)

    async def sign_in(self, token: str | None, *, csrf: str) -> tuple[Caller, str]:
        """Step one of the sign-in page: who the token belongs to, and a ticket for step two.

        The ticket, not the token, travels in the next form, so the page never shows the token
        again; it is tied to the form's CSRF value and lasts as long as a code would.
        """
        caller = await self._identity.person(token)
        assert token is not None
        ticket = secrets.token_urlsafe(32)
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            await sql.insert_signin(txn, ticket_hash=_sha256(ticket), token_hash=hash_token(token),
                                    csrf_hash=_sha256(csrf), at=now,
                                    expires_at=now + duration_micros(CODE_TTL))
        return caller, ticket

    async def resume(self, ticket: str, *, csrf: str) -> Caller:
        """Who a sign-in in progress belongs to; 401 once it ended or expired, or its token did."""
        now = now_micros(self._clock)
        async with self._db.read() as txn:
            row = await sql.get_signin(txn, _sha256(ticket))
            live = await tokens_sql.find_token(txn, row["token_hash"]) if row is not None else None
        if (
            row is None or live is None or row["used_at"] is not None or row["expires_at"] <= now
            or not hmac.compare_digest(row["csrf_hash"], _sha256(csrf))
            or (live["expires_at"] is not None and live["expires_at"] <= now)
        ):
            raise BylineError(Code.UNAUTHENTICATED, "This sign-in has ended: enter your token again.")
        return Caller(user=live["user_name"], account=live["account"])

    async def end(self, ticket: str) -> None:
        """The person denied the app: the sign-in is over."""
        async with self._db.write() as txn:
            await sql.end_signin(txn, _sha256(ticket), at=now_micros(self._clock))

    def choices(self, caller: Caller) -> list[str]:
        """The accounts a person can let an app act as: where they write or suggest."""
        out = []
        for name, loaded in sorted(self._policies.policies.items()):
            held = roles(loaded.policy, caller.user)
            if (Role.WRITER in held or Role.SUGGESTER in held) and caller.account in (None, name):
                out.append(name)
        return out

    async def authorize(self, request: AuthRequest, caller: Caller, *, account: str, ticket: str | None) -> str:
        """A single-use code letting the app act as ``account`` for this person; ends a token's
        sign-in (``ticket``). Without a ticket (a person signed in with a password), the app's
        token has no parent: it lives until it is revoked."""
        if account not in self.choices(caller):
            raise BylineError(Code.FORBIDDEN, f"{caller.user} cannot let an app act as {account!r}")
        code = secrets.token_urlsafe(32)
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            parent_hash = None
            if ticket is not None:
                signin = await sql.get_signin(txn, _sha256(ticket))
                if signin is None or not await sql.end_signin(txn, _sha256(ticket), at=now):
                    raise BylineError(Code.UNAUTHENTICATED, "This sign-in has ended: enter your token again.")
                # The app's token will live no longer than the person's, and end when it is revoked.
                parent_hash = signin["token_hash"]
            await sql.insert_code(
                txn, code_hash=_sha256(code), client_id=request.client_id, user=caller.user,
                account=account, redirect_uri=request.redirect_uri, scopes=" ".join(request.scopes),
                challenge=request.challenge, challenge_method=request.challenge_method, at=now,
                expires_at=now + duration_micros(CODE_TTL), parent_hash=parent_hash,
            )
        return code

    # -- tokens ----------------------------------------------------------------------------

    async def _client(self, client_id: str, secret: str | None) -> Any:
        async with self._db.read() as txn:
            app = await sql.get_app(txn, client_id) if client_id else None
        if app is None:
            raise oauth_error("invalid_client")
        if secret is not None and not hmac.compare_digest(_sha256(secret), app["secret_hash"]):
            raise oauth_error("invalid_client")
        return app

    async def exchange(self, params: dict[str, str], *, basic: tuple[str, str] | None) -> TokenAnswer:
        """``POST /oauth/token``: a code, once, for an access token bound to (person, account)."""
        grant_type = params.get("grant_type")
        if not grant_type:
            raise oauth_error("invalid_request", "Missing required parameter: grant_type.")
        if grant_type == "client_credentials":
            return await self._app_only(params, basic=basic)
        if grant_type != "authorization_code":
            raise oauth_error("unsupported_grant_type")
        client_id, secret = basic if basic else (params.get("client_id") or "", params.get("client_secret"))
        app = await self._client(client_id, secret or None)
        code = params.get("code")
        if not code:
            raise oauth_error("invalid_request", "Missing required parameter: code.")
        verifier = params.get("code_verifier") or None
        redirect_uri = params.get("redirect_uri") or ""
        code_hash = _sha256(code)
        identity = self._identity
        public = not secret

        async def work(ltx: LogTxn) -> TokenAnswer | str:
            row = await sql.get_code(ltx.txn, code_hash)
            if row is None or row["client_id"] != app["client_id"]:
                return "invalid_grant"
            if row["used_at"] is not None:
                # A replayed code may be a stolen one: the token issued for it ends too.
                if row["token_hash"] and await tokens_sql.revoke_token(ltx.txn, row["token_hash"], at=ltx.now):
                    await ltx.append("client.revoked", actor="system", account=row["account"],
                                     data={"client": app["name"], "reason": "authorization code used twice"})
                return "invalid_grant"
            if row["expires_at"] <= ltx.now:
                return "invalid_grant"
            if redirect_uri != row["redirect_uri"]:
                return "invalid_grant"
            if row["challenge"] is None:
                if public:
                    return "invalid_client"
                if verifier is not None:
                    return "invalid_grant"
            elif verifier is None or not _CHALLENGE.match(verifier) or not hmac.compare_digest(
                pkce_challenge(verifier), row["challenge"]
            ):
                return "invalid_grant"
            if row["parent_hash"]:  # signed in with a token: it must still be live
                parent = await tokens_sql.find_token(ltx.txn, row["parent_hash"])
                if parent is None or (parent["expires_at"] is not None and parent["expires_at"] <= ltx.now):
                    return "invalid_grant"  # the person's token ended since they signed in
            token = await identity.issue(
                ltx.txn, user=row["user_name"], account=row["account"],
                label=f"oauth: {app['name']}", at=ltx.now, parent_hash=row["parent_hash"],
            )
            token_hash = hash_token(token)
            if not await sql.use_code(ltx.txn, code_hash, at=ltx.now, token_hash=token_hash):
                return "invalid_grant"
            await sql.insert_token_grant(ltx.txn, token_hash=token_hash, client_id=app["client_id"],
                                         scopes=row["scopes"], at=ltx.now)
            await ltx.append("client.authorized", actor=row["user_name"], account=row["account"],
                             data={"client": app["name"], "scopes": row["scopes"].split()})
            return TokenAnswer(access_token=token, scope=row["scopes"], created_at=ltx.now // 1_000_000)

        outcome: TokenAnswer | str = await self._appender.submit(work)
        if isinstance(outcome, str):
            raise oauth_error(outcome)
        return outcome

    async def _app_only(self, params: dict[str, str], *, basic: tuple[str, str] | None) -> TokenAnswer:
        """The client_credentials grant: a token for the app itself, with scopes within its own
        (``read`` when none are asked, as Mastodon's default). Only a confidential client, one
        that sends its secret, may have one: without it anyone could, who knew the client id."""
        client_id, secret = basic if basic else (params.get("client_id") or "", params.get("client_secret"))
        if not secret:
            raise oauth_error("invalid_client")
        app = await self._client(client_id, secret)
        scopes = parse_scopes(params.get("scope"))
        if not set(scopes) <= set(app["scopes"].split()):
            raise oauth_error("invalid_scope")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            await sql.insert_app_token(txn, token_hash=hash_token(token), client_id=app["client_id"],
                                       scopes=" ".join(scopes), at=now)
        return TokenAnswer(access_token=token, scope=" ".join(scopes), created_at=now // 1_000_000)

    async def app_token(self, token: str | None) -> Grant | None:
        """The app a live app-only token (client_credentials) stands for; None for any other."""
        if not token:
            return None
        async with self._db.read() as txn:
            row = await sql.get_app_token(txn, hash_token(token))
        if row is None:
            return None
        return Grant(client_id=row["client_id"], app_name=row["name"], scopes=frozenset(row["scopes"].split()))

    async def revoke(self, params: dict[str, str], *, basic: tuple[str, str] | None) -> None:
        """``POST /oauth/revoke``: end one of this app's tokens. Any other token, live or dead,
        known or not, gets the same empty 200 and stays as it is (RFC 7009 §2.2): an answer
        that differed would tell whoever holds a client secret which guessed tokens are live."""
        client_id, secret = basic if basic else (params.get("client_id") or "", params.get("client_secret"))
        app = await self._client(client_id, secret or None)
        token = params.get("token")
        if not token:
            raise oauth_error("invalid_request", "Missing required parameter: token.")
        token_hash = hash_token(token)

        async def work(ltx: LogTxn) -> None:
            if await sql.revoke_app_token(ltx.txn, token_hash, client_id=app["client_id"], at=ltx.now):
                return  # the app's own token: nobody's voice changes
            grant = await sql.get_token_grant(ltx.txn, token_hash)
            if grant is None or grant["client_id"] != app["client_id"]:
                return
            owner = await tokens_sql.find_token(ltx.txn, token_hash)
            if await tokens_sql.revoke_token(ltx.txn, token_hash, at=ltx.now) and owner is not None:
                await ltx.append("client.revoked", actor=owner["user_name"], account=owner["account"],
                                 data={"client": app["name"], "reason": "revoked by the app"})

        await self._appender.submit(work)
