"""The aiohttp application: its parts, their lifetimes, and its routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web

from gateway.appkeys import (
    APPENDER,
    CHECKPOINTS,
    DB,
    HOUSEKEEPER,
    IDENTITY,
    LOG_READER,
    MASTODON,
    OAUTH,
    PLATFORMS,
    POLICIES,
    POSTS,
    PUBLISHER,
    REGISTRY,
    SANDBOX,
    SETTINGS,
    XRPC_REPO,
    XRPC_SESSIONS,
)
from gateway.audit.appender import Appender
from gateway.clock import Clock, SystemClock
from gateway.http import log as log_http
from gateway.http import mastodon, native, openapi, sandbox, xrpc
from gateway.http.common import error_middleware
from gateway.loops import loop_name
from gateway.policy.loader import PolicyRegistry
from gateway.services.auditlog import LogReader
from gateway.services.checkpoints import CheckpointService, load_signer, signed_state_path
from gateway.services.housekeeping import Housekeeper
from gateway.services.identity import Identity
from gateway.services.keys import SIGNIN_FORMS, gateway_key
from gateway.services.keys import XRPC_SESSIONS as XRPC_SESSION_KEY
from gateway.services.mastodon import MastodonService
from gateway.services.oauth import OAuthService
from gateway.services.platforms import Platforms
from gateway.services.policies import PolicyService
from gateway.services.posts import PostService
from gateway.services.publisher import Publisher
from gateway.services.sandbox import SandboxTimeline
from gateway.services.throttle import Throttle
from gateway.services.xrpc_repo import XrpcRepo
from gateway.services.xrpc_sessions import XrpcSessions, service_host
from gateway.settings import Settings
from gateway.storage.db import open_database

routes = web.RouteTableDef()
logger = structlog.get_logger("byline.gateway")


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready to take posts: the database answers and policies are loaded."""
    problems: dict[str, object] = {}
    try:
        async with request.app[DB].read() as txn:
            await txn.fetchone("SELECT 1 AS one")
    except Exception as exc:  # any database failure means not ready
        problems["database"] = type(exc).__name__
    if not request.app[REGISTRY].policies:
        problems["policies"] = "no policy loaded"
    if request.app[CHECKPOINTS].problem is not None:
        problems["log"] = request.app[CHECKPOINTS].problem
    unhealthy = request.app[PLATFORMS].unhealthy
    body = {
        "status": "ok" if not problems else "unavailable",
        "problems": problems,
        "accounts_unhealthy": sorted(unhealthy),
        "policy_errors": len(request.app[POLICIES].errors()),
    }
    return web.json_response(body, status=200 if not problems else 503)


async def _no_store_unless_said(request: web.Request, response: web.StreamResponse) -> None:
    """Answers hold tokens, posts and who may do what: no cache keeps them, unless a handler
    said otherwise (the log's public tiles and checkpoints say how long they keep)."""
    response.headers.setdefault("Cache-Control", "no-store")


def make_app(settings: Settings, *, clock: Clock | None = None, run_publisher: bool = True) -> web.Application:
    """Build the gateway; every long-lived resource opens and closes in ``cleanup_ctx``."""
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    the_clock = clock or SystemClock()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        # A missing or wrong signing key stops the start before anything else opens.
        signer = load_signer(
            settings.log_key_file, origin=settings.log_origin, create=settings.log_key_autocreate
        )
        db = await open_database(settings.database_url)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        appender = Appender(db, the_clock)
        await appender.start()
        registry = PolicyRegistry(settings.policy_dir, rules=settings.credential_rules)
        timeline = SandboxTimeline(db, the_clock)
        public_url = settings.public_url or f"http://{settings.host}:{settings.port}"
        platforms = Platforms(
            sandbox=timeline, public_url=public_url, rules=settings.credential_rules, session=session
        )
        publisher = Publisher(
            db=db, appender=appender, policies=registry, platforms=platforms, clock=the_clock,
            interval=settings.scheduler_interval_seconds, lease_seconds=settings.publish_lease_seconds,
        )
        policies = PolicyService(
            registry=registry, appender=appender, db=db, interval=settings.policy_reload_seconds
        )
        app[DB] = db
        app[APPENDER] = appender
        app[REGISTRY] = registry
        app[POLICIES] = policies
        app[IDENTITY] = Identity(db, the_clock)
        app[SANDBOX] = timeline
        app[PLATFORMS] = platforms
        app[PUBLISHER] = publisher
        app[POSTS] = PostService(
            db=db, appender=appender, policies=registry, clock=the_clock, platforms=platforms,
            wake_publisher=publisher.wake, auditors=settings.auditor_names,
        )
        checkpoints = CheckpointService(
            db=db, signer=signer, clock=the_clock, interval=settings.checkpoint_interval_seconds,
            state_file=signed_state_path(settings.log_key_file),
        )
        app[CHECKPOINTS] = checkpoints
        app[LOG_READER] = LogReader(db=db, checkpoints=checkpoints, posts=app[POSTS])
        # One count of failed sign-ins per address, on the sign-in page and createSession alike.
        signins = Throttle(settings.signin_attempts, what="sign-in")
        app[OAUTH] = OAuthService(db=db, appender=appender, identity=app[IDENTITY], policies=registry,
                                  clock=the_clock, form_key=await gateway_key(db, SIGNIN_FORMS),
                                  throttle=signins)
        app[MASTODON] = MastodonService(
            db=db, posts=app[POSTS], identity=app[IDENTITY], oauth=app[OAUTH], policies=registry,
            platforms=platforms, clock=the_clock,
        )
        app[XRPC_SESSIONS] = XrpcSessions(
            db=db, clock=the_clock, identity=app[IDENTITY], policies=registry, platforms=platforms,
            secret=await gateway_key(db, XRPC_SESSION_KEY),
            host=service_host(settings.log_origin), throttle=signins,
        )
        app[XRPC_REPO] = XrpcRepo(
            db=db, posts=app[POSTS], platforms=platforms, sessions=app[XRPC_SESSIONS], clock=the_clock
        )
        housekeeper = Housekeeper(db=db, clock=the_clock, interval=settings.housekeeping_interval_seconds)
        app[HOUSEKEEPER] = housekeeper
        try:
            await policies.start()
            await checkpoints.start()
            await housekeeper.start()
            if run_publisher:
                await publisher.start()
            logger.info("gateway_started", database=db.dialect, port=settings.port,
                        event_loop=loop_name(asyncio.get_running_loop()))
            yield
        finally:
            await publisher.stop()
            await housekeeper.stop()
            await checkpoints.stop()
            await policies.stop()
            await appender.stop()
            await session.close()
            await db.close()

    app.cleanup_ctx.append(resources)
    app.on_response_prepare.append(_no_store_unless_said)
    app.add_routes(routes)
    app.add_routes(log_http.routes)
    app.add_routes(native.routes)
    app.add_routes(openapi.routes)
    app.add_routes(sandbox.routes)
    app.add_routes(mastodon.routes)
    app.add_routes(xrpc.routes)
    return app
