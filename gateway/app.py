"""The aiohttp application: its parts, their lifetimes, and its routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from gateway import workers
from gateway.appkeys import (
    ACCOUNTS,
    APPENDER,
    CHECKPOINTS,
    CLOCK,
    DB,
    GATE_RECONCILER,
    HOUSEKEEPER,
    HTTP,
    IDENTITY,
    LIVE,
    LOG_READER,
    MASTODON,
    METRICS,
    NOTIFIER,
    OAUTH,
    PEOPLE,
    PLATFORMS,
    POLICIES,
    POSTS,
    PUBLISHED,
    PUBLISHER,
    REGISTRY,
    REPLIES,
    SANDBOX,
    SETTINGS,
    SIGNER,
    STREAMS,
    TRANSPARENCY,
    XRPC_REPO,
    XRPC_SESSIONS,
)
from gateway.audit.appender import Appender
from gateway.clock import Clock, SystemClock
from gateway.errors import Failure
from gateway.http import cors, mastodon, native, nodeinfo, openapi, pages, sandbox, xrpc
from gateway.http import log as log_http
from gateway.http import metrics as metrics_http
from gateway.http.common import error_middleware, vary_by_host
from gateway.http.pages import audit as audit_page
from gateway.http.pages import home as home_page
from gateway.http.pages import public as public_page
from gateway.http.pages import queue as queue_pages
from gateway.http.pages import signin as signin_page
from gateway.http.proxies import forwarded_for
from gateway.loops import loop_name
from gateway.metrics import Metrics
from gateway.policy.loader import PolicyRegistry
from gateway.services.accounts import AccountService
from gateway.services.auditlog import LogReader
from gateway.services.checkpoints import CheckpointService, load_signer, signed_state_path
from gateway.services.devices import DeviceCookies
from gateway.services.gate_intents import GateIntents, GateReconciler
from gateway.services.housekeeping import Housekeeper
from gateway.services.identity import Identity
from gateway.services.keys import DEVICE_COOKIES, SIGNIN_FORMS, gateway_key
from gateway.services.keys import XRPC_SESSIONS as XRPC_SESSION_KEY
from gateway.services.live import ChangeWatcher
from gateway.services.mastodon import MastodonService
from gateway.services.notify import Notifier, smtp_from_settings
from gateway.services.oauth import OAuthService
from gateway.services.people import People
from gateway.services.platforms import Platforms
from gateway.services.policies import PolicyService
from gateway.services.posts import PostService
from gateway.services.profiles import ProfileKeeper
from gateway.services.published import PublishedPosts
from gateway.services.publisher import Publisher
from gateway.services.reply_targets import ReplyTargets
from gateway.services.sandbox import SandboxTimeline
from gateway.services.streaming import STREAMS_IN_ALL, STREAMS_PER_TOKEN, MastodonStreams
from gateway.services.throttle import Throttle
from gateway.services.transparency import Transparency
from gateway.services.wakeups import Wakeups
from gateway.services.xrpc_repo import XrpcRepo
from gateway.services.xrpc_sessions import XrpcSessions, service_host
from gateway.settings import Settings
from gateway.storage.db import open_database
from gateway.tasks import cancel_task, run_every

routes = web.RouteTableDef()
logger = structlog.get_logger("byline.gateway")
PROFILES = web.AppKey("profiles", ProfileKeeper)
WAKEUPS = web.AppKey("wakeups", Wakeups)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready to take posts: the database answers and policies are loaded."""
    problems: dict[str, object] = {}
    stranded: dict[str, int] = {}
    changes_stranded: dict[str, int] = {}
    try:
        async with request.app[DB].read() as txn:
            await txn.fetchone("SELECT 1 AS one")
        stranded = await request.app[GATE_RECONCILER].stranded()
        changes_stranded = await request.app[POSTS].stranded_change_counts()
    except Exception as exc:  # any database failure means not ready
        problems["database"] = exc.message if isinstance(exc, Failure) else type(exc).__name__
    if not request.app[REGISTRY].policies:
        problems["policies"] = "no policy loaded"
    if request.app[CHECKPOINTS].problem is not None:
        problems["log"] = request.app[CHECKPOINTS].problem
    unhealthy = request.app[PLATFORMS].unhealthy
    body = {
        "status": "ok" if not problems else "unavailable",
        "problems": problems,
        "accounts_unhealthy": sorted(unhealthy),
        # Why, in words naming what to do (never a credential); and what the credentials of
        # accounts whose posts go out cannot do (a Mastodon token without read:statuses).
        "account_problems": dict(sorted(unhealthy.items())),
        "account_warnings": dict(sorted(request.app[PLATFORMS].scope_warnings.items())),
        # Accounts whose profile byline a platform refused (their posts still go out).
        "profile_bylines_failing": sorted(request.app[PLATFORMS].profile_problems),
        "policy_errors": len(request.app[POLICIES].errors()),
        # Accounts whose file here is not the version in force (that version is enforced here):
        # a replica whose files have not arrived yet, or were given other files.
        "policy_drift": {account: d.to_json() for account, d in sorted(request.app[POLICIES].drift.items())},
        # Changes of posts' gates left on the PDS whose account cannot put them back here (its
        # policy removed, or its credential unreadable): how many, by account.
        "gate_changes_stranded": stranded,
        # Edits and deletions of published posts left unsettled whose account cannot settle
        # them here (its policy removed, moved to another platform, or its credential
        # unreadable): how many, by account.
        "post_changes_stranded": changes_stranded,
    }
    return web.json_response(body, status=200 if not problems else 503)


async def _no_store_unless_said(request: web.Request, response: web.StreamResponse) -> None:
    """Answers hold tokens, posts and who may do what: no cache keeps them, unless a handler
    said otherwise (the log's public tiles and checkpoints say how long they keep); and none is
    sniffed for another type than it says."""
    response.headers.setdefault("Cache-Control", "no-store")
    # Every answer is what its Content-Type says: a browser never takes a JSON answer that
    # quotes a post's words, or an upload, for a page or a script of the gateway's origin.
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


async def _database(app: web.Application) -> AsyncIterator[None]:
    """The log's signing key, then the database. A missing or wrong key stops the start before
    anything opens."""
    settings = app[SETTINGS]
    app[SIGNER] = load_signer(settings.log_key_file, origin=settings.log_origin, create=settings.log_key_autocreate)
    app[DB] = await open_database(settings.database_url)
    yield
    await app[DB].close()


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    """The one HTTP client session the adapters share: it keeps no cookies, which it would keep
    for every account alike (what one account's answer set going out with the next account's
    requests to the same instance)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        app[HTTP] = session
        yield


async def _appender(app: web.Application) -> AsyncIterator[None]:
    """The log appender: every state change goes through it."""
    app[APPENDER] = Appender(app[DB], app[CLOCK])
    await app[APPENDER].start()
    yield
    await app[APPENDER].stop()


async def _services(app: web.Application) -> AsyncIterator[None]:
    """The services, wired to each other; none of them runs anything in the background."""
    settings, db, appender, clock = app[SETTINGS], app[DB], app[APPENDER], app[CLOCK]
    registry = PolicyRegistry(settings.policy_dir, rules=settings.credential_rules,
                              settle=settings.policy_settle_seconds)
    metrics = app[METRICS]
    metrics.watch(db=db, policies=registry, clock=clock)
    timeline = SandboxTimeline(db, clock)
    public_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    platforms = Platforms(
        sandbox=timeline, public_url=public_url, rules=settings.credential_rules, session=app[HTTP],
        policies=registry, clock=clock, db=db,
    )
    publisher = Publisher(
        db=db, appender=appender, policies=registry, platforms=platforms, clock=clock,
        interval=settings.scheduler_interval_seconds, lease_seconds=settings.publish_lease_seconds,
        probe_seconds=settings.account_check_seconds, metrics=metrics,
    )
    app[REGISTRY] = registry
    app[POLICIES] = PolicyService(
        registry=registry, appender=appender, db=db, interval=settings.policy_reload_seconds, metrics=metrics,
        public_url=public_url, state_dir=settings.log_key_file.parent,
    )
    app[IDENTITY] = identity = Identity(db, clock)
    app[SANDBOX] = timeline
    app[PLATFORMS] = platforms
    app[PUBLISHER] = publisher
    app[PROFILES] = ProfileKeeper(
        db=db, appender=appender, policies=registry, platforms=platforms, clock=clock,
        interval=settings.scheduler_interval_seconds * 10, lease_seconds=settings.publish_lease_seconds,
    )
    app[POSTS] = posts = PostService(
        db=db, appender=appender, policies=registry, clock=clock,
        wake_publisher=publisher.wake, at_once=publisher, auditors=settings.auditor_names, metrics=metrics,
    )
    posts.refresh_policies = publisher.refresh_policies = app[POLICIES].sync
    app[PUBLISHED] = published = PublishedPosts(
        posts=posts, platforms=platforms, lease=timedelta(seconds=settings.publish_lease_seconds),
    )
    publisher.settle = published.settle
    app[CHECKPOINTS] = checkpoints = CheckpointService(
        db=db, signer=app[SIGNER], clock=clock, interval=settings.checkpoint_interval_seconds,
        state_file=signed_state_path(settings.log_key_file),
    )
    app[ACCOUNTS] = AccountService(
        policies=registry, policy_files=app[POLICIES], platforms=platforms,
        admins=settings.admin_names, auditors=settings.auditor_names,
    )
    app[LOG_READER] = LogReader(db=db, checkpoints=checkpoints, posts=posts)
    app[TRANSPARENCY] = Transparency(db=db, checkpoints=checkpoints, policies=registry)
    # One count of failed sign-ins per address, on the sign-in page and createSession alike.
    signins = Throttle(settings.signin_attempts, what="sign-in", metrics=metrics, shares=settings.workers)
    app[PEOPLE] = People(db=db, clock=clock, throttle=signins, devices=DeviceCookies(
        key=await gateway_key(db, DEVICE_COOKIES), clock=clock))
    app[OAUTH] = OAuthService(
        db=db, appender=appender, identity=identity, policies=registry, clock=clock,
        form_key=await gateway_key(db, SIGNIN_FORMS), throttle=signins, people=app[PEOPLE],
    )
    app[REPLIES] = replies = ReplyTargets(db=db, posts=posts, platforms=platforms)
    app[MASTODON] = MastodonService(
        db=db, posts=posts, published=published, identity=identity, policies=registry, platforms=platforms,
        clock=clock, replies=replies,
    )
    app[XRPC_SESSIONS] = sessions = XrpcSessions(
        db=db, clock=clock, identity=identity, policies=registry, platforms=platforms,
        secret=await gateway_key(db, XRPC_SESSION_KEY), host=service_host(settings.log_origin),
        throttle=signins,
    )
    lease = timedelta(seconds=settings.publish_lease_seconds)
    app[XRPC_REPO] = XrpcRepo(
        db=db, posts=posts, published=published, platforms=platforms, sessions=sessions, clock=clock,
        intents=GateIntents(db=db, clock=clock, lease=lease),
    )
    app[GATE_RECONCILER] = GateReconciler(
        db=db, clock=clock, platforms=platforms, policies=registry, interval=settings.gate_reconcile_seconds,
        lease=lease,
    )
    app[HOUSEKEEPER] = Housekeeper(db=db, clock=clock, interval=settings.housekeeping_interval_seconds)
    smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
    app[NOTIFIER] = Notifier(
        db=db, policies=registry, rules=settings.credential_rules, clock=clock, public_url=public_url,
        smtp=smtp_from_settings(smtp_url, sender=settings.smtp_from),
        interval=settings.notify_interval_seconds, timeout=settings.notify_timeout_seconds, metrics=metrics,
    )
    # The Mastodon streaming API follows the log with a watcher of its own: its streams are
    # bounded apart from the live pages', per token rather than per person.
    app[STREAMS] = MastodonStreams(db=db, mastodon=app[MASTODON], watcher=ChangeWatcher(
        db, per_person=STREAMS_PER_TOKEN, in_all=STREAMS_IN_ALL,
        busy="Too many streams are open for this access token"), clock=clock)
    # A policy change can end a person's role (their streams check their tokens again), or
    # leave a connection to an account's instance made with a credential Byline no longer
    # speaks with, or for an account it no longer manages (it is made again).
    app[POLICIES].enforced.append(app[STREAMS].policies_changed)

    def log_grew() -> None:
        app[STREAMS].watcher.poke()
        if LIVE in app:  # the live pages' watcher is made later (gateway.http.pages.queue)
            app[LIVE].poke()

    # What another replica changed wakes the parts here that act on it (PostgreSQL).
    app[WAKEUPS] = Wakeups(db=db, due=publisher.wake, log=log_grew, policy=app[POLICIES].sync)
    yield
    await app[STREAMS].close()


def _running(key: web.AppKey[Any]) -> Callable[[web.Application], AsyncIterator[None]]:
    """The lifetime of a part that runs in the background (its ``start`` and ``stop``): started
    at start-up, stopped at clean-up, or when a part after it fails to start."""

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        await app[key].start()
        yield
        await app[key].stop()

    return lifetime


async def _started(app: web.Application) -> AsyncIterator[None]:
    logger.info("gateway_started", database=app[DB].dialect, port=app[SETTINGS].port,
                event_loop=loop_name(asyncio.get_running_loop()))
    yield


async def _sharing_metrics(app: web.Application) -> AsyncIterator[None]:
    """One of several workers: its metrics written for the others every second, and at its end."""
    metrics = app[METRICS]

    async def save() -> None:
        metrics.save()

    task = run_every(1.0, save, name="metrics-share", failed="metrics_share_failed")
    yield
    await cancel_task(task)
    metrics.save()


async def _end_streams(app: web.Application) -> None:
    """The Mastodon streams end before the server waits for its handlers to finish."""
    if STREAMS in app:
        await app[STREAMS].close()


def make_app(settings: Settings, *, clock: Clock | None = None, run_publisher: bool = True) -> web.Application:
    """Build the gateway: each long-lived resource opens and closes in its own ``cleanup_ctx``
    (in order at start, in reverse at stop; a part that fails to start closes those before it)."""
    metrics = Metrics()  # one registry per application: tests build many in one process
    counting = [metrics_http.counting(metrics)] if settings.metrics else []
    behind = [forwarded_for(settings.trusted_networks)] if settings.trusted_proxies.strip() else []
    app = web.Application(middlewares=[*behind, *counting, error_middleware, cors.preflight],
                          client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[CLOCK] = clock or SystemClock()
    app.cleanup_ctx.extend([
        _database, _http_client, _appender, _services,
        _running(POLICIES), _running(CHECKPOINTS), _running(HOUSEKEEPER), _running(NOTIFIER), _running(WAKEUPS),
        # On every gateway, publisher or not: a gate change left on a PDS unlogged is put back.
        _running(GATE_RECONCILER),
    ])
    if run_publisher:
        app.cleanup_ctx.append(_running(PUBLISHER))
        app.cleanup_ctx.append(_running(PROFILES))
    if workers.current is not None:
        metrics.share(workers.current.shared, workers.current.index)
        app.cleanup_ctx.append(_sharing_metrics)
    app.cleanup_ctx.append(_started)
    app.on_shutdown.append(_end_streams)
    app.on_response_prepare.append(_no_store_unless_said)
    app.on_response_prepare.append(cors.headers)
    if not settings.public_url:
        app.on_response_prepare.append(vary_by_host)
    app.add_routes(routes)
    if settings.metrics:
        app.add_routes(metrics_http.routes)
    app.add_routes(log_http.routes)
    app.add_routes(native.routes)
    app.add_routes(openapi.routes)
    app.add_routes(sandbox.routes)
    pages.setup(app)
    app.add_routes(home_page.routes)
    app.add_routes(signin_page.routes)
    queue_pages.setup(app)  # the queue, post and account pages, and their live updates
    app.add_routes(public_page.routes)
    app.add_routes(audit_page.routes)
    app.add_subapp("/api", mastodon.client_api())
    app.add_subapp("/media", mastodon.media_files())
    app.add_subapp("/oauth/authorize", mastodon.sign_in())
    app.add_subapp("/oauth", mastodon.oauth_endpoints())
    app.add_subapp("/.well-known/oauth-authorization-server", mastodon.oauth_metadata())
    app.add_subapp("/xrpc", xrpc.surface())
    app.add_routes(mastodon.pictures())
    app.add_routes(nodeinfo.routes)
    return app
