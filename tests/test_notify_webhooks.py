"""Webhooks: each account's events reach its receivers once, signed per Standard Webhooks, retried
with backoff when the receiver fails, never redirected elsewhere, and not lost or doubled when the
gateway stops and starts again."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from gateway.appkeys import DB, NOTIFIER
from gateway.clock import ManualClock, now_micros
from gateway.policy.credentials import CredentialRules
from gateway.policy.loader import PolicyFileError, parse_policy
from gateway.services.notify import notification_type, retry_delay_seconds
from gateway.storage import notify as notify_sql
from tests.conftest import TEST_POLICIES, Gateway, make_policy_dir, started_gateway

ALL_EVENTS = ["post.held", "post.suggested", "post.approved", "post.published", "post.failed", "post.gates_changed",
              "policy.changed"]


def new_secret() -> str:
    """A Standard Webhooks secret, as an admin would make one."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class Receiver:
    """A webhook receiver on a real socket: it records each call and answers as ``plan`` says
    (an int: that status; a float: wait that long first; a str: redirect there), then 204."""

    server: TestServer
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    plan: list[int | float | str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The hook's address."""
        return str(self.server.make_url("/hook"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls.append((dict(request.headers), await request.read()))
        step = self.plan.pop(0) if self.plan else 204
        if isinstance(step, float):
            await asyncio.sleep(step)
            return web.Response(status=204)
        if isinstance(step, str):
            raise web.HTTPTemporaryRedirect(step)
        return web.Response(status=step)

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every call's payload, each signature checked with the secret (Webhook.verify raises)."""
        return [Webhook(secret).verify(body, headers) for headers, body in self.calls]

    def ids(self) -> list[str]:
        """The webhook-id of every call, in order."""
        return [headers["webhook-id"] for headers, _ in self.calls]


async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    server = TestServer(app, host="127.0.0.1")
    found = Receiver(server=server)
    app.router.add_post("/hook", found.handle)
    app.router.add_post("/hook/{tail}", found.handle)
    await server.start_server()
    try:
        yield found
    finally:
        await server.close()


hook = pytest.fixture(receiver)
other = pytest.fixture(receiver)


def hooked_policies(tmp_path: Path, url: str, secret: str, events: dict[str, list[str]]) -> Path:
    """The test policies, each account in ``events`` with a webhook to ``url`` for those events;
    the secret in a file in the secrets directory."""
    fragile = """
        account: fragile
        platform: sandbox
        tier: direct
        owner: alice
        max_length: 1000
    """
    policies = {}
    for name, text in {**TEST_POLICIES, "fragile": fragile}.items():
        text = textwrap.dedent(text)
        if name in events:
            text += textwrap.dedent(f"""\
                notify:
                  - url: {url}
                    secret: file:secrets/hook.key
                    events: [{", ".join(events[name])}]
                """)
        policies[name] = text
    directory = make_policy_dir(tmp_path, policies)
    (directory / "secrets").mkdir()
    (directory / "secrets" / "hook.key").write_text(secret + "\n")
    return directory


def started(db_url: str, policy_dir: Path, clock: ManualClock, *, timeout: float = 1.0) -> started_gateway:
    """A gateway whose notifier runs only when the test says (``run_once``), waiting ``timeout``
    seconds for a receiver's answer."""
    return started_gateway(db_url, policy_dir, clock, notify_interval_seconds=3600, notify_timeout_seconds=timeout,
                           public_url="https://byline.example")


async def notify(gw: Gateway) -> int:
    """One pass of the notifier, as its background loop would run it."""
    return await gw.app[NOTIFIER].run_once()


async def deliveries(gw: Gateway) -> list[notify_sql.Delivery]:
    """The delivery log."""
    return await gw.app[NOTIFIER].deliveries()


def test_log_entries_map_to_the_seven_events() -> None:
    """Which log entries notify: held and suggested posts by their state, approvals, publications,
    failures, changes of who may reply to or quote a post out, and every policy change; nothing else."""
    cases = [
        ({"type": "post.submitted", "data": {"state": "held"}}, "post.held"),
        ({"type": "post.submitted", "data": {"state": "scheduled"}}, None),
        ({"type": "post.submitted", "data": {"state": "suggested"}}, "post.suggested"),
        ({"type": "post.edited", "data": {"state": "held"}}, "post.held"),
        ({"type": "post.edited", "data": {"state": "scheduled"}}, None),
        ({"type": "post.redecided", "data": {"state": "held", "approvers": ["bob"]}}, "post.held"),
        ({"type": "post.redecided", "data": {"state": "held"}}, None),
        ({"type": "post.approved", "data": {"state": "held"}}, "post.approved"),
        ({"type": "post.published", "data": {}}, "post.published"),
        ({"type": "post.failed", "data": {}}, "post.failed"),
        ({"type": "post.deferred", "data": {}}, None),
        ({"type": "post.gates_changed", "data": {"state": "published"}}, "post.gates_changed"),
        ({"type": "post.deleted", "data": {"state": "deleted"}}, None),
        ({"type": "policy.loaded", "data": {}}, "policy.changed"),
        ({"type": "policy.removed", "data": {}}, "policy.changed"),
        ({"type": "client.revoked", "data": {}}, None),
    ]
    assert [notification_type(entry) for entry, _ in cases] == [want for _, want in cases]


def test_backoff_grows_and_is_bounded() -> None:
    """Retries wait 5 s, then four times longer each time, never more than ten hours."""
    assert [retry_delay_seconds(n) for n in range(1, 9)] == [5, 20, 80, 320, 1280, 5120, 20480, 36000]


async def test_each_event_arrives_once_signed(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """Every event but a change of who may reply or quote (a Bluesky post's, see
    tests/clients/test_atproto_gates.py) reaches the receiver once, signed with the account's secret,
    with the words of held posts and suggestions and no token."""
    secret = new_secret()
    policy_dir = hooked_policies(tmp_path, hook.url, secret, {
        "cosigned": ALL_EVENTS, "managed": ["post.suggested"], "fragile": ["post.failed"],
    })
    async with started(db_url, policy_dir, clock) as gw:
        held = await gw.submit("alice", "cosigned", "Launch on Monday")
        for approver in ("bob", "carol"):
            status, body = await gw.act(approver, held["id"], "approve")
            assert status == 200, body
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        suggestion = await gw.submit("dave", "managed", "What about a thread on the launch?")
        doomed = await gw.submit("alice", "fragile", "x" * 600)  # longer than the sandbox takes
        await gw.tick()
        assert (await gw.get("alice", doomed["id"]))["state"] == "failed"
        assert await notify(gw) == 2 * 7
        assert await notify(gw) == 0
        payloads = hook.verified(secret)
        tokens = list(gw.tokens.values())
        [out] = await gw.timeline("cosigned")
    kinds = sorted((p["data"]["account"], p["type"]) for p in payloads)
    assert kinds == [
        ("cosigned", "policy.changed"), ("cosigned", "post.approved"), ("cosigned", "post.approved"),
        ("cosigned", "post.held"), ("cosigned", "post.published"), ("fragile", "post.failed"),
        ("managed", "post.suggested"),
    ]
    assert len(set(hook.ids())) == len(hook.ids())
    by_type = {p["type"]: p["data"] for p in payloads}
    assert by_type["post.held"]["text"] == "Launch on Monday"
    assert by_type["post.held"]["post"] == held["id"]
    assert by_type["post.held"]["approvers"] == ["bob", "carol", "dave"]
    assert by_type["post.held"]["queue"] == "https://byline.example/queue"
    assert by_type["post.suggested"]["text"] == "What about a thread on the launch?"
    assert by_type["post.suggested"]["post"] == suggestion["id"]
    assert by_type["post.published"]["text"] == out["text"]
    assert by_type["post.published"]["page"] == f"https://byline.example/posts/{held['id']}"
    assert "longer than" in by_type["post.failed"]["error"]
    assert by_type["policy.changed"]["change"] == "loaded"
    approvals = sorted((p["data"]["count"], p["data"]["complete"]) for p in payloads if p["type"] == "post.approved")
    assert approvals == [(1, False), (2, True)]
    everything = b"".join(body for _, body in hook.calls).decode()
    assert not [t for t in tokens if t in everything]
    assert secret not in everything and secret.removeprefix("whsec_") not in everything


async def test_a_failing_receiver_gets_retries_with_backoff(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """A 500, then no answer in time: the call is tried again after 5 s, then 20 s, with the same
    webhook-id, and delivered once the receiver answers."""
    secret = new_secret()
    policy_dir = hooked_policies(tmp_path, hook.url, secret, {"cosigned": ["post.held"]})
    hook.plan = [500, 2.5]
    async with started(db_url, policy_dir, clock) as gw:
        await gw.submit("alice", "cosigned", "Careful with this one")
        assert await notify(gw) == 2  # stored, then tried: 500
        [failed] = await deliveries(gw)
        assert (failed.state, failed.attempts, failed.last_status) == ("pending", 1, 500)
        assert failed.last_error == "answered 500"
        clock.advance(timedelta(seconds=4))
        assert await notify(gw) == 0  # not due yet
        clock.advance(timedelta(seconds=1))
        assert await notify(gw) == 1  # tried: no answer within the timeout
        [slow] = await deliveries(gw)
        assert (slow.state, slow.attempts, slow.last_status) == ("pending", 2, None)
        assert slow.last_error == "no answer within 1 s"
        assert slow.next_at == failed.next_at + 20_000_000
        clock.advance(timedelta(seconds=19))
        assert await notify(gw) == 0
        clock.advance(timedelta(seconds=1))
        assert await notify(gw) == 1
        [done] = await deliveries(gw)
        assert (done.state, done.attempts, done.last_status, done.last_error) == ("delivered", 3, 204, None)
        clock.advance(timedelta(days=1))
        assert await notify(gw) == 0
    assert len(hook.calls) == 3
    assert len(set(hook.ids())) == 1
    assert [p["type"] for p in hook.verified(secret)] == ["post.held"] * 3


async def test_a_receiver_that_never_answers_well_is_given_up(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """After the last attempt the delivery is marked failed, with the receiver's last answer."""
    secret = new_secret()
    policy_dir = hooked_policies(tmp_path, hook.url, secret, {"cosigned": ["post.held"]})
    hook.plan = [503] * 100
    # Each 503 comes at once; a second's wait on a busy machine could end an attempt before the
    # receiver has taken the call, and the count of calls would then miss one.
    async with started(db_url, policy_dir, clock, timeout=30.0) as gw:
        await gw.submit("alice", "cosigned", "Nobody home")
        attempts = gw.app[NOTIFIER].max_attempts
        for _ in range(attempts + 3):
            await notify(gw)
            clock.advance(timedelta(hours=11))
        [given_up] = await deliveries(gw)
    assert (given_up.state, given_up.attempts, given_up.last_status) == ("failed", attempts, 503)
    assert len(hook.calls) == attempts


async def test_a_redirect_to_another_address_is_not_followed(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver, other: Receiver
) -> None:
    """A receiver answering 307 to another server is a failed attempt: nothing goes there."""
    secret = new_secret()
    policy_dir = hooked_policies(tmp_path, hook.url, secret, {"cosigned": ["post.held"]})
    hook.plan = [other.url]
    async with started(db_url, policy_dir, clock) as gw:
        await gw.submit("alice", "cosigned", "Where does this go")
        await notify(gw)
        [redirected] = await deliveries(gw)
    assert (redirected.state, redirected.last_status) == ("pending", 307)
    assert "redirect" in (redirected.last_error or "")
    assert len(hook.calls) == 1
    assert other.calls == []


@pytest.mark.parametrize(("url", "secret", "allow", "key", "message"), [
    ("http://hooks.example.org/byline", "file:secrets/hook.key", True, "url",
     "must be https:// (plain http:// only on loopback, for development)"),
    ("http://127.0.0.1:9/hook", "file:secrets/hook.key", False, "url",
     "must be https:// (plain http:// on loopback needs BYLINE_ALLOW_INSECURE_PLATFORMS)"),
    ("https://user:pw@hooks.example.org/", "file:secrets/hook.key", True, "url",
     "must not carry a user or password: the secret signs each call"),
    ("https://hooks.example.org/", "file:../outside.key", True, "secret",
     "file:../outside.key is outside the secrets directory (BYLINE_SECRETS_DIR)"),
    ("https://hooks.example.org/", "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAA", True, "secret",
     "String should match pattern '^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$'"),
])
def test_the_policy_loader_refuses_unsafe_webhooks(
    tmp_path: Path, url: str, secret: str, allow: bool, key: str, message: str
) -> None:
    """Plain http to another host, http to loopback unless allowed, credentials in the address, a
    secret file outside the secrets directory or a secret written into the file: refused, saying why."""
    text = textwrap.dedent(f"""\
        account: brand
        platform: sandbox
        tier: direct
        owner: alice
        notify:
          - url: "{url}"
            secret: "{secret}"
        """)
    rules = CredentialRules(policy_dir=tmp_path, allow_insecure=allow)
    with pytest.raises(PolicyFileError) as refused:
        parse_policy(text, name="brand.yaml", expected_account="brand", rules=rules)
    [issue] = refused.value.issues
    assert (issue.key, issue.line, issue.message) == (f"notify.0.{key}", 6 if key == "url" else 7, message)


def test_the_policy_loader_takes_a_good_webhook(tmp_path: Path) -> None:
    """An https address with a secret in the secrets directory loads, for all events by default;
    an unknown event name is refused."""
    base = "account: brand\nplatform: sandbox\ntier: direct\nowner: alice\nnotify:\n" \
           "  - url: https://hooks.example.org/byline\n    secret: env:BRAND_HOOK\n"
    rules = CredentialRules(policy_dir=tmp_path)
    policy = parse_policy(base, name="brand.yaml", expected_account="brand", rules=rules)
    assert [(w.url, w.events) for w in policy.notify] == [("https://hooks.example.org/byline", tuple(ALL_EVENTS))]
    with pytest.raises(PolicyFileError) as refused:
        parse_policy(base + "    events: [post.held, post.sent]\n", name="brand.yaml", expected_account="brand",
                     rules=rules)
    assert [i.key for i in refused.value.issues] == ["notify.0.events.1"]


async def test_a_restart_delivers_everything_exactly_once(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """Events delivered, stored but not sent, not yet read, or claimed by a sender that died:
    after a restart on the same database each reaches the receiver exactly once."""
    secret = new_secret()
    policy_dir = hooked_policies(tmp_path, hook.url, secret, {"cosigned": ALL_EVENTS})
    async with started(db_url, policy_dir, clock) as first:
        sent = await first.submit("alice", "cosigned", "Sent before the stop")
        await notify(first)
        stored = await first.submit("alice", "cosigned", "Stored, not sent")
        assert await first.app[NOTIFIER].enqueue() == 1
        dying = await first.submit("alice", "cosigned", "Claimed by a sender that died")
        assert await first.app[NOTIFIER].enqueue() == 1
        now = now_micros(clock)
        async with first.app[DB].write() as txn:  # a sender claims it, and the gateway dies
            [owed] = [d for d in await notify_sql.due(txn, now=now, limit=10) if dying["id"] in d.payload]
            assert await notify_sql.claim(txn, owed, now=now, lease_until=now + 60_000_000)
        unread = await first.submit("alice", "cosigned", "Never read before the stop")
    assert len(hook.calls) == 2  # policy.loaded and the first post
    async with started(db_url, policy_dir, clock) as second:
        assert await notify(second) == 3  # the unread one stored; it and the stored one sent
        clock.advance(timedelta(minutes=2))
        assert await notify(second) == 1  # the dead sender's lease ran out
        assert await notify(second) == 0
        log = await deliveries(second)
    async with started(db_url, policy_dir, clock) as third:
        clock.advance(timedelta(days=1))
        assert await notify(third) == 0
    payloads = hook.verified(secret)
    held = sorted(p["data"]["post"] for p in payloads if p["type"] == "post.held")
    assert held == sorted([sent["id"], stored["id"], dying["id"], unread["id"]])
    assert len(set(hook.ids())) == len(hook.ids()) == 5
    assert {d.state for d in log} == {"delivered"}


async def test_secrets_stay_out_of_logs_and_the_delivery_log(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """A failing receiver and an unreadable secret are logged and recorded by the webhook's host
    and the secret's reference, never the secret or the address's path; the policy as shown to
    the account's people names neither."""
    secret = new_secret()
    policy_dir = hooked_policies(tmp_path, hook.url + "/tok-in-path-XYZ", secret, {"cosigned": ["post.held"]})
    hook.plan = [500]
    async with started(db_url, policy_dir, clock) as gw:
        with structlog.testing.capture_logs() as logs:
            await gw.submit("alice", "cosigned", "First")
            await notify(gw)
            (policy_dir / "secrets" / "hook.key").unlink()  # the admin removes the secret
            clock.advance(timedelta(seconds=5))
            await notify(gw)
        [missing] = await deliveries(gw)
        status, shown = await gw.call("bob", "GET", "/v1/accounts/cosigned/policy")
    assert status == 200
    assert shown["policy"]["notify"] == [
        {"url": f"http://127.0.0.1:{hook.server.port}/…", "secret": "(set)", "events": ["post.held"]}
    ]
    assert missing.last_error == "webhook secret: credential file:secrets/hook.key cannot be read: " \
                                 "No such file or directory"
    said = json.dumps(logs, default=str)
    assert [e["event"] for e in logs if e["event"].startswith("notification")] == ["notification_failed"] * 2
    assert "127.0.0.1" in said
    for hidden in (secret, secret.removeprefix("whsec_"), "tok-in-path-XYZ"):
        assert hidden not in said
        assert hidden not in (missing.last_error or "")
    assert secret not in repr(missing)
    assert len(hook.calls) == 1



async def test_two_replicas_store_and_send_each_event_once(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """Two gateways on one database follow the log at the same time: each event is stored once and
    reaches the receiver once."""
    secret = new_secret()
    policy_dir = hooked_policies(tmp_path, hook.url, secret, {"cosigned": ["post.held"]})
    async with started(db_url, policy_dir, clock) as one, started(db_url, policy_dir, clock) as two:
        posts = [await one.submit("alice", "cosigned", f"From one, {n}") for n in range(4)]
        posts += [await two.submit("carol", "cosigned", f"From two, {n}") for n in range(4)]
        made = await asyncio.gather(one.app[NOTIFIER].enqueue(), two.app[NOTIFIER].enqueue())
        assert sum(made) == 8
        sent = await asyncio.gather(one.app[NOTIFIER].deliver(), two.app[NOTIFIER].deliver())
        assert sum(sent) == 8
        assert await notify(one) + await notify(two) == 0
    held = sorted(p["data"]["post"] for p in hook.verified(secret))
    assert held == sorted(p["id"] for p in posts)
    assert len(set(hook.ids())) == len(hook.ids()) == 8


async def test_a_removed_policy_tells_its_webhooks(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """When an account's policy file goes, the webhooks it named hear of it, once."""
    secret = new_secret()
    policy_dir = hooked_policies(tmp_path, hook.url, secret, {"delayed": ["policy.changed"]})
    async with started(db_url, policy_dir, clock) as gw:
        assert await notify(gw) == 2
        (policy_dir / "delayed.yaml").unlink()
        assert await gw.sync_policies() == ["delayed"]
        assert await notify(gw) == 2
        assert await notify(gw) == 0
    changes = [(p["type"], p["data"]["account"], p["data"]["change"]) for p in hook.verified(secret)]
    assert changes == [("policy.changed", "delayed", "loaded"), ("policy.changed", "delayed", "removed")]


async def test_an_upgraded_gateway_does_not_announce_its_history(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """A database from before notifications existed starts its cursor at the end of its log: the
    posts held back then are not announced when the upgraded gateway starts, the next ones are."""
    secret = new_secret()
    policy_dir = hooked_policies(tmp_path, hook.url, secret, {"cosigned": ["post.held"]})
    async with started(db_url, policy_dir, clock) as before:
        await before.submit("alice", "cosigned", "Held before the upgrade")
        async with before.app[DB].write() as txn:  # as the database was before version 7
            await txn.execute("DROP TABLE notify_deliveries")
            await txn.execute("DROP TABLE notify_cursor")
            await txn.execute("DELETE FROM schema_migrations WHERE version = 7")
    async with started(db_url, policy_dir, clock) as after:
        assert await notify(after) == 0
        later = await after.submit("alice", "cosigned", "Held after the upgrade")
        assert await notify(after) == 2
    assert [p["data"]["post"] for p in hook.verified(secret)] == [later["id"]]


async def test_entries_before_any_webhook_are_passed_over_not_told_later(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """With no webhook anywhere, the notifier moves past the log without reading it; a webhook
    added later hears what happens from then on, never the history before it."""
    secret = new_secret()
    policy_dir = make_policy_dir(tmp_path, TEST_POLICIES)
    async with started(db_url, policy_dir, clock) as gw:
        await gw.submit("alice", "direct", "Before anyone listened")
        await gw.tick()
        assert await notify(gw) == 0
        (policy_dir / "secrets").mkdir()
        (policy_dir / "secrets" / "hook.key").write_text(secret + "\n")
        (policy_dir / "direct.yaml").write_text(textwrap.dedent(TEST_POLICIES["direct"]) + textwrap.dedent(f"""\
            notify:
              - url: {hook.url}
                secret: file:secrets/hook.key
                events: [post.published]
            """))
        await gw.sync_policies()
        after = await gw.submit("alice", "direct", "Once someone listened")
        await gw.tick()
        await notify(gw)
    assert [(p["type"], p["data"]["post"]) for p in hook.verified(secret)] == [("post.published", after["id"])]


async def test_a_replica_that_has_not_reread_a_change_tells_the_webhook_it_added(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """Replica two records a policy that adds a webhook; replica one has not reread its directory
    when it reads the next events (on SQLite, where nothing wakes it; on PostgreSQL it may have
    been woken to reread it). It tells the webhook the policy in force names (as the database
    records it), not the one in its memory: the event is not passed over."""
    secret = new_secret()
    plain = make_policy_dir(tmp_path, TEST_POLICIES, name="plain")
    hooked = hooked_policies(tmp_path, hook.url, secret, {"cosigned": ["post.held"]})
    async with started(db_url, plain, clock) as one, started(db_url, hooked, clock) as two:
        post = await two.submit("alice", "cosigned", "Held while one lagged")
        assert await one.app[NOTIFIER].enqueue() == 1
        assert await two.app[NOTIFIER].deliver() == 1
    assert [(p["type"], p["data"]["post"]) for p in hook.verified(secret)] == [("post.held", post["id"])]


async def test_a_policy_removed_while_the_gateway_was_down_tells_its_webhooks(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """The file goes while the gateway is stopped: the removal, recorded as it starts, reaches the
    webhooks the removed policy named, though no policy this gateway read since names them."""
    secret = new_secret()
    policy_dir = hooked_policies(tmp_path, hook.url, secret, {"delayed": ["policy.changed"]})
    async with started(db_url, policy_dir, clock) as gw:
        assert await notify(gw) == 2
    (policy_dir / "delayed.yaml").unlink()
    async with started(db_url, policy_dir, clock) as gw:
        assert await notify(gw) == 2
        assert await notify(gw) == 0
    changes = [(p["type"], p["data"]["account"], p["data"]["change"]) for p in hook.verified(secret)]
    assert changes == [("policy.changed", "delayed", "loaded"), ("policy.changed", "delayed", "removed")]


async def test_a_receiver_that_holds_its_calls_delays_no_other(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver, other: Receiver
) -> None:
    """Cosigned's receiver takes four seconds to answer; meanwhile direct's posts go out and its
    receiver hears of them at the notifier's next passes, not after the slow call ends."""
    secret = new_secret()
    policy_dir = hooked_policies(tmp_path, hook.url, secret, {"cosigned": ["post.held"]})
    text = (policy_dir / "direct.yaml").read_text()
    (policy_dir / "direct.yaml").write_text(text + textwrap.dedent(f"""\
        notify:
          - url: {other.url}
            secret: file:secrets/hook.key
            events: [post.published]
        """))
    hook.plan = [4.0]
    async with started_gateway(db_url, policy_dir, clock, notify_interval_seconds=0.05,
                               notify_timeout_seconds=10.0, public_url="https://byline.example") as gw:
        await gw.submit("alice", "cosigned", "For slow ears")
        await _heard(hook, within=3)  # its call is under way, and will be for four seconds
        post = await gw.submit("alice", "direct", "For quick ears")
        await gw.tick()
        await _heard(other, within=2)
        assert [p["data"]["post"] for p in other.verified(secret)] == [post["id"]]
        async with asyncio.timeout(8):
            while True:  # the slow call ends, delivered, before the gateway stops
                if all(d.state == notify_sql.DELIVERED for d in await gw.app[NOTIFIER].deliveries()):
                    break
                await asyncio.sleep(0.05)
    assert len(hook.calls) == 1


async def _heard(receiver: Receiver, *, within: float) -> None:
    """Wait until ``receiver`` has been called (``within`` seconds at most)."""
    async with asyncio.timeout(within):
        while True:
            if receiver.calls:
                return
            await asyncio.sleep(0.02)
