"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from gateway.audit.appender import Appender
from gateway.audit.note import Signer
from gateway.clock import Clock
from gateway.metrics import Metrics
from gateway.policy.loader import PolicyRegistry
from gateway.services.accounts import AccountService
from gateway.services.auditlog import LogReader
from gateway.services.checkpoints import CheckpointService
from gateway.services.gate_intents import GateReconciler
from gateway.services.housekeeping import Housekeeper
from gateway.services.identity import Identity
from gateway.services.live import ChangeWatcher
from gateway.services.mastodon import MastodonService
from gateway.services.notify import Notifier
from gateway.services.oauth import OAuthService
from gateway.services.people import People
from gateway.services.platforms import Platforms
from gateway.services.policies import PolicyService
from gateway.services.posts import PostService
from gateway.services.published import PublishedPosts
from gateway.services.publisher import Publisher
from gateway.services.queue import QueueService
from gateway.services.sandbox import SandboxTimeline
from gateway.services.streaming import MastodonStreams
from gateway.services.transparency import Transparency
from gateway.services.xrpc_repo import XrpcRepo
from gateway.services.xrpc_sessions import XrpcSessions
from gateway.settings import Settings
from gateway.storage.db import Database

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
SIGNER = web.AppKey("signer", Signer)
HTTP = web.AppKey("http", aiohttp.ClientSession)
DB = web.AppKey("db", Database)
APPENDER = web.AppKey("appender", Appender)
REGISTRY = web.AppKey("registry", PolicyRegistry)
POLICIES = web.AppKey("policies", PolicyService)
IDENTITY = web.AppKey("identity", Identity)
POSTS = web.AppKey("posts", PostService)
PUBLISHED = web.AppKey("published", PublishedPosts)
ACCOUNTS = web.AppKey("accounts", AccountService)
PUBLISHER = web.AppKey("publisher", Publisher)
PLATFORMS = web.AppKey("platforms", Platforms)
SANDBOX = web.AppKey("sandbox", SandboxTimeline)
CHECKPOINTS = web.AppKey("checkpoints", CheckpointService)
HOUSEKEEPER = web.AppKey("housekeeper", Housekeeper)
GATE_RECONCILER = web.AppKey("gate_reconciler", GateReconciler)
LOG_READER = web.AppKey("log_reader", LogReader)
OAUTH = web.AppKey("oauth", OAuthService)
MASTODON = web.AppKey("mastodon", MastodonService)
XRPC_SESSIONS = web.AppKey("xrpc_sessions", XrpcSessions)
XRPC_REPO = web.AppKey("xrpc_repo", XrpcRepo)
PEOPLE = web.AppKey("people", People)
NOTIFIER = web.AppKey("notifier", Notifier)
QUEUE = web.AppKey("queue", QueueService)
LIVE = web.AppKey("live", ChangeWatcher)
STREAMS = web.AppKey("streams", MastodonStreams)
TRANSPARENCY = web.AppKey("transparency", Transparency)
METRICS = web.AppKey("metrics", Metrics)
