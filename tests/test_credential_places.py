"""Where a policy's credential may come from and where it may go, over HTTP where the attack was:
a policy naming Byline's own log signing key (by a relative path, an absolute one or a symlink
in the secrets directory) as its credential, and a listener as its platform, is refused when it
loads; the listener never hears from Byline. A credential travels only over https, but for
loopback in development. alice administers these gateways: she sees every refused file."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.clock import ManualClock
from gateway.policy.credentials import CredentialRules
from gateway.policy.loader import PolicyFileError, PolicyIssue, PolicyRegistry, check_dir, load_file
from gateway.services import platforms
from tests.conftest import Gateway, started_gateway, write_policy
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app


@dataclass
class Listener:
    """A plain http server on 127.0.0.1 that records every request it gets."""

    server: TestServer
    heard: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    """The attacker's listener: answers 200 to anything and remembers what it was sent."""
    heard: list[tuple[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        heard.append((request.path, request.headers.get("Authorization", "")))
        return web.json_response({"id": "1", "username": "x", "acct": "x", "url": "http://x"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app)
    await server.start_server()
    try:
        yield Listener(server=server, heard=heard)
    finally:
        await server.close()


def _stealing_policy(policy_dir: Path, instance: str, reference: str) -> None:
    write_policy(policy_dir, "thief", f"""
        account: thief
        platform: mastodon
        instance: {instance}
        credentials: {reference}
        tier: direct
        owner: alice
    """)


async def _refused_over_http(gw: Gateway, listener: Listener, message: str) -> None:
    """The thief policy is refused at its credentials line, nothing reaches the listener, and
    the account has no policy in force."""
    await gw.sync_policies()
    post_status, post_body = await gw.call("alice", "POST", "/v1/posts", {"account": "thief", "text": "hi"})
    for _ in range(3):
        await gw.tick()
    assert listener.heard == []  # before the fix: the log key, as a Bearer token
    assert (post_status, post_body.get("error")) == (404, "unknown_account")
    status, body = await gw.call("alice", "GET", "/v1/policies/errors")
    assert status == 200
    thief = [e for e in body["errors"] if e["file"] == "thief.yaml"]
    assert [(e["line"], e["key"]) for e in thief] == [(4, "credentials")], body
    assert message in thief[0]["message"]


def _key_references(tmp_path: Path, policy_dir: Path) -> dict[str, str]:
    key = policy_dir.parent / "log.key"
    secrets = policy_dir / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "link").symlink_to(key)
    elsewhere = tmp_path / "other" / "elsewhere.txt"  # not beside the key: only "outside" applies
    elsewhere.parent.mkdir()
    elsewhere.write_text("not a credential\n", encoding="utf-8")
    (secrets / "out").symlink_to(elsewhere)
    return {
        "relative": "file:../log.key",
        "absolute": f"file:{key}",
        "dot-dot from secrets": "file:secrets/../../log.key",
        "symlink to the key": "file:secrets/link",
        "symlink out": "file:secrets/out",
        "absolute elsewhere": f"file:{elsewhere}",
    }


KEY = "one of Byline's own key files"
OUTSIDE = "outside the secrets directory"


@pytest.mark.parametrize(
    ("case", "message"),
    [("relative", KEY), ("absolute", KEY), ("dot-dot from secrets", KEY), ("symlink to the key", KEY),
     ("symlink out", OUTSIDE), ("absolute elsewhere", OUTSIDE)],
)
async def test_log_key_is_never_a_credential(
    case: str, message: str, tmp_path: Path, db_url: str, policy_dir: Path, clock: ManualClock,
    listener: Listener,
) -> None:
    """A file credential outside the secrets directory is refused at load; nothing is sent."""
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        _stealing_policy(policy_dir, listener.url, _key_references(tmp_path, policy_dir)[case])
        await _refused_over_http(gw, listener, message)


@pytest.mark.parametrize("reference", ["file:../log.key", "file:../log.key.checkpoint", "file:../log.key.new"])
async def test_key_directory_refused_even_inside_secrets(
    reference: str, db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener
) -> None:
    """With the secrets directory set around the log key, its key files are still refused."""
    async with started_gateway(db_url, policy_dir, clock, admins="alice", secrets_dir=policy_dir.parent) as gw:
        _stealing_policy(policy_dir, listener.url, reference)
        await _refused_over_http(gw, listener, KEY)


ENV_RESERVED = "one of Byline's own settings or its database's"


@pytest.mark.parametrize("name", ["PGPASSWORD", "BYLINE_DATABASE_URL", "pgpassfile"])
async def test_an_env_credential_is_never_the_gateways_own_secret(
    name: str, db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A policy that names the database's password (``PGPASSWORD``, or a ``BYLINE_`` setting that
    holds one in its URL) as its credential, and a listener as its instance, is refused when it
    loads; the listener never hears the password as a Bearer token."""
    monkeypatch.setenv(name, "db-password-s3cret")
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        _stealing_policy(policy_dir, listener.url, f"env:{name}")
        await _refused_over_http(gw, listener, ENV_RESERVED)


async def test_env_credentials_keep_to_the_names_the_operator_allows(
    db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With BYLINE_CREDENTIAL_ENV naming prefixes, a variable outside them (another service's
    key in the gateway's environment) is refused; one inside them is the account's credential."""
    monkeypatch.setenv("CLOUD_SECRET_KEY", "not-an-account-credential")
    monkeypatch.setenv("BRAND_TOKEN", "brand-token")
    async with started_gateway(db_url, policy_dir, clock, admins="alice", credential_env="BRAND_, TEAM_") as gw:
        _stealing_policy(policy_dir, listener.url, "env:CLOUD_SECRET_KEY")
        await _refused_over_http(gw, listener, "does not start with one of the names BYLINE_CREDENTIAL_ENV allows")
        _stealing_policy(policy_dir, listener.url, "env:BRAND_TOKEN")
        assert await gw.sync_policies() == ["thief"]
        status, body = await gw.call("alice", "POST", "/v1/posts", {"account": "thief", "text": "hi"})
        assert status == 201, body
        await gw.tick()
    assert ("/api/v1/statuses", "Bearer brand-token") in listener.heard


def test_an_env_credential_is_checked_again_when_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule holds where the secret is read, not only where the policy loads."""
    monkeypatch.setenv("PGPASSWORD", "db-password-s3cret")
    with pytest.raises(platforms.CredentialError) as info:
        platforms.resolve_credential("env:PGPASSWORD", rules=CredentialRules(policy_dir=tmp_path))
    assert "db-password-s3cret" not in str(info.value) and ENV_RESERVED in str(info.value)


async def test_policy_in_force_stays(
    db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener
) -> None:
    """A good policy changed to steal the key keeps the good one in force, and it is not sent."""
    (policy_dir / "secrets").mkdir()
    (policy_dir / "secrets" / "token").write_text("good-token\n", encoding="utf-8")
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        _stealing_policy(policy_dir, listener.url, "file:secrets/token")
        assert await gw.sync_policies() == ["thief"]
        _stealing_policy(policy_dir, listener.url, "file:../log.key")
        assert await gw.sync_policies() == []
        status, body = await gw.call("alice", "GET", "/v1/policies/errors")
        assert [(e["file"], e["line"], e["key"]) for e in body["errors"]] == [("thief.yaml", 4, "credentials")]
        status, body = await gw.call("alice", "GET", "/v1/accounts/thief/policy")
        assert status == 200 and body["refused"][0]["key"] == "credentials"
        await gw.submit("alice", "thief", "still the good token")
        await gw.tick()
        tokens = {auth for _, auth in listener.heard}
        assert tokens == {"Bearer good-token"}


async def test_a_secrets_link_out_of_the_policy_directory_names_no_credential(
    tmp_path: Path, db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener
) -> None:
    """Someone who may write in the policy directory links ``secrets`` (the default secrets
    directory) out of it, to the root of the file system, say: a policy naming any file there
    is refused when it loads, at its credentials line, and nothing is sent (before: loaded, and
    the file sent to the policy's instance as its token). A link that stays inside is kept."""
    elsewhere = tmp_path / "other-tenant"
    elsewhere.mkdir()
    (elsewhere / "token").write_text("another-tenants-token\n", encoding="utf-8")
    (policy_dir / "secrets").symlink_to(elsewhere)
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        _stealing_policy(policy_dir, listener.url, "file:secrets/token")
        await _refused_over_http(gw, listener, "the secrets directory, secrets in the policy directory, leads out")
    (policy_dir / "secrets").unlink()
    (policy_dir / "..data").mkdir()
    (policy_dir / "..data" / "token").write_text("good-token\n", encoding="utf-8")
    (policy_dir / "secrets").symlink_to("..data")
    rules = CredentialRules(policy_dir=policy_dir, allow_insecure=True)
    assert check_dir(policy_dir, rules=rules)[1] == []


async def test_credential_in_secrets_dir_is_used(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """``file:secrets/token`` is read from the secrets directory and the post goes out with it."""
    fake = FakeMastodon()
    account = fake.add_account("brand", "tok-from-secrets")
    server = TestServer(mastodon_app(fake))
    await server.start_server()
    (policy_dir / "secrets").mkdir()
    (policy_dir / "secrets" / "token").write_text("tok-from-secrets\n", encoding="utf-8")
    try:
        async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
            _stealing_policy(policy_dir, str(server.make_url("")).rstrip("/"), "file:secrets/token")
            assert await gw.sync_policies() == ["thief"]
            post = await gw.submit("alice", "thief", "from the secrets directory")
            await gw.tick()
            assert (await gw.get("alice", post["id"]))["state"] == "published"
            assert [s.text for s in fake.statuses(account)] == ["from the secrets directory"]
    finally:
        await server.close()


async def test_a_credential_the_platform_echoes_is_redacted_before_its_answer_is_cut(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """A platform that refuses a post and echoes the token it was sent, far enough into its
    answer that the cut to an error's length falls inside the token: no part of the token is
    in the post's last error, its log entries or the answer (before, its first characters were)."""
    token = "tok_SUPERSECRET_0123456789abcdef"

    async def echo(request: web.Request) -> web.Response:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return web.json_response({"error": "Validation failed: " + "x" * 260 + " you sent " + sent}, status=422)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app)
    await server.start_server()
    (policy_dir / "secrets").mkdir()
    (policy_dir / "secrets" / "token").write_text(token + "\n", encoding="utf-8")
    try:
        async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
            _stealing_policy(policy_dir, str(server.make_url("")).rstrip("/"), "file:secrets/token")
            assert await gw.sync_policies() == ["thief"]
            post = await gw.submit("alice", "thief", "hi")
            await gw.tick()
            status, body = await gw.call("alice", "GET", f"/v1/posts/{post['id']}")
    finally:
        await server.close()
    assert status == 200 and body["state"] == "failed", body
    assert "you sent" in body["last_error"]
    shown = json.dumps(body)
    assert [token[:n] for n in range(5, len(token) + 1) if token[:n] in shown] == []


async def test_a_credential_that_is_no_regular_file_never_blocks_the_gateway(
    db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener
) -> None:
    """A FIFO in the secrets directory, named as a credential, is refused when the policy loads;
    one put in place of the token file after it loaded fails that account's publication at once,
    with the reason, and the gateway goes on answering (before, reading it blocked the event
    loop for ever)."""
    secrets = policy_dir / "secrets"
    secrets.mkdir()
    os.mkfifo(secrets / "pipe")
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        _stealing_policy(policy_dir, listener.url, "file:secrets/pipe")
        await _refused_over_http(gw, listener, "is not a regular file")

        (secrets / "token").write_text("good-token\n", encoding="utf-8")
        _stealing_policy(policy_dir, listener.url, "file:secrets/token")
        assert await gw.sync_policies() == ["thief"]
        (secrets / "token").unlink()
        os.mkfifo(secrets / "token")
        post = await gw.submit("alice", "thief", "hi")
        await asyncio.wait_for(gw.tick(), timeout=10)
        got = await gw.get("alice", post["id"])
        assert "is not a regular file" in (got["last_error"] or ""), got
        assert (await gw.call("alice", "GET", "/v1/accounts"))[0] == 200
    assert listener.heard == []


def test_a_credential_file_is_read_whole_only_when_small(tmp_path: Path) -> None:
    """Over 64 KiB is no credential (a log or an image put there by mistake): refused, not read."""
    (tmp_path / "secrets").mkdir()
    rules = CredentialRules(policy_dir=tmp_path)
    (tmp_path / "secrets" / "token").write_bytes(b"x" * 65_536)
    assert platforms.resolve_credential("file:secrets/token", rules=rules) == "x" * 65_536
    (tmp_path / "secrets" / "token").write_bytes(b"x" * 65_537)
    with pytest.raises(platforms.CredentialError, match="is larger than 65536 bytes"):
        platforms.resolve_credential("file:secrets/token", rules=rules)


def _linked_token(policy_dir: Path) -> Path:
    """The secrets directory, its token ``secrets/token`` a symlink to ``secrets/real``
    (``good-token``)."""
    secrets = policy_dir / "secrets"
    secrets.mkdir()
    (secrets / "real").write_text("good-token\n", encoding="utf-8")
    (secrets / "token").symlink_to(secrets / "real")
    return secrets


def _point(link: Path, target: Path) -> None:
    """Point a symlink elsewhere, as someone with the secrets directory could."""
    link.unlink()
    link.symlink_to(target)


async def test_credential_link_repointed_after_load(
    tmp_path: Path, db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener
) -> None:
    """A symlink in the secrets directory pointed at the log key after the policy loaded is
    refused when the credential is read: the key is never sent."""
    secrets = _linked_token(policy_dir)
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        _stealing_policy(policy_dir, listener.url, "file:secrets/token")
        assert await gw.sync_policies() == ["thief"]
        _point(secrets / "token", policy_dir.parent / "log.key")
        post = await gw.submit("alice", "thief", "hi")
        for _ in range(3):
            await gw.tick()
        assert listener.heard == []
        assert KEY in ((await gw.get("alice", post["id"]))["last_error"] or "")


async def test_a_directory_swapped_for_a_link_between_the_check_and_the_open_is_not_followed(
    tmp_path: Path, db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``secrets/team/token`` is checked (inside the secrets directory), then, before it is
    opened, someone with the secrets directory swaps ``team`` for a link to another tenant's
    tokens: the file opened is not followed there, and that tenant's token never reaches the
    platform the policy names (before: opened along the link, sent as the Bearer token)."""
    team = policy_dir / "secrets" / "team"
    team.mkdir(parents=True)
    (team / "token").write_text("good-token\n", encoding="utf-8")
    tenant = tmp_path / "tenant"
    tenant.mkdir()
    (tenant / "token").write_text("stolen-token\n", encoding="utf-8")
    checked = CredentialRules.credential_path
    swap = False

    def then_swapped(self: CredentialRules, target: str) -> Path:
        nonlocal swap
        path = checked(self, target)
        if swap:
            swap = False
            team.rename(team.with_name("team-old"))
            team.symlink_to(tenant, target_is_directory=True)
        return path

    monkeypatch.setattr(CredentialRules, "credential_path", then_swapped)
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        _stealing_policy(policy_dir, listener.url, "file:secrets/team/token")
        assert await gw.sync_policies() == ["thief"]
        swap = True
        post = await gw.submit("alice", "thief", "hi")
        await gw.tick()
        assert team.is_symlink()
        assert all("stolen-token" not in auth for _, auth in listener.heard), listener.heard
        assert "its path became a link after it was checked" in ((await gw.get("alice", post["id"]))["last_error"]
                                                                 or "")


async def test_a_credential_kept_between_reads_is_checked_again_when_its_file_moves(
    db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credential file's contents are kept between publications while its path stats the same
    (here from the first read on, as for a file untouched for a while): a symlink then pointed at
    the log key is refused at the next read, never sent, and a token rewritten in place, same
    length, goes out at once."""
    monkeypatch.setattr(platforms, "_SETTLED_NS", -1)
    secrets = _linked_token(policy_dir)
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        _stealing_policy(policy_dir, listener.url, "file:secrets/token")
        assert await gw.sync_policies() == ["thief"]
        for n in range(2):  # the second from what was kept
            await gw.submit("alice", "thief", f"kept {n}")
            await gw.tick()
        # Who the token is for, asked once (``Platforms.cleared``), then the two posts.
        assert [token for _, token in listener.heard] == ["Bearer good-token"] * 3
        _point(secrets / "token", policy_dir.parent / "log.key")
        post = await gw.submit("alice", "thief", "after the link moved")
        for _ in range(3):
            await gw.tick()
        assert len(listener.heard) == 3
        assert KEY in ((await gw.get("alice", post["id"]))["last_error"] or "")
        _point(secrets / "token", secrets / "real")
        (secrets / "real").write_text("next-token\n", encoding="utf-8")  # rotated, same length
        await gw.submit("alice", "thief", "rotated")
        await gw.tick()
        # The post that failed goes out too, now that its credential works.
        assert [token for _, token in listener.heard][3:] == ["Bearer next-token"] * 2  # asked who, then a post


async def test_a_token_file_caught_mid_rewrite_is_no_broken_credential(
    db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin rotates a token with ``echo TOKEN > file``: the file is truncated, then written.
    A publication that reads it in between finds it empty. That is a file being written, not a
    broken credential: the token read before goes out, the account stays healthy and the post
    is not put off. A file left empty (changed longer ago than a write takes) is refused, and
    nothing reaches the platform."""
    secrets = policy_dir / "secrets"
    secrets.mkdir()
    token = secrets / "token"
    token.write_text("good-token\n", encoding="utf-8")
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        _stealing_policy(policy_dir, listener.url, "file:secrets/token")
        assert await gw.sync_policies() == ["thief"]
        await gw.submit("alice", "thief", "before")
        await gw.tick()
        token.write_text("", encoding="utf-8")  # truncated: the new token not in yet
        post = await gw.submit("alice", "thief", "while it is written")
        await gw.tick()
        # Who the token is for, asked once (``Platforms.cleared``), then the two posts.
        assert [t for _, t in listener.heard] == ["Bearer good-token"] * 3
        assert (await gw.get("alice", post["id"]))["state"] == "published"
        status, ready = await gw.call(None, "GET", "/readyz")
        assert status == 200 and "thief" not in str(ready), ready
        token.write_text("next-token\n", encoding="utf-8")
        await gw.submit("alice", "thief", "rotated")
        await gw.tick()
        assert [t for _, t in listener.heard][3:] == ["Bearer next-token"] * 2  # asked who, then the post
        token.write_text("", encoding="utf-8")
        monkeypatch.setattr(platforms, "_SETTLED_NS", -1)  # left empty longer than a write takes
        post = await gw.submit("alice", "thief", "after it was cleared")
        await gw.tick()
        assert len(listener.heard) == 5
        assert "is empty" in ((await gw.get("alice", post["id"]))["last_error"] or "")


@pytest.mark.parametrize("read_before", [True, False])
def test_a_rewrite_begun_between_the_stat_and_the_read_is_a_file_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_before: bool,
) -> None:
    """A token file last changed long ago is stat'ed, then truncated by an ``echo TOKEN > file``
    before it is read: found empty, it is a file being written (the token read before stands,
    or, with none read before, it is read again in a moment), not one its admin left empty.
    (Before: the stat of the file as it was said "settled", the account was taken for one whose
    credential broke and its posts put off until the next minute's probe; seen in the crash
    scenarios under load, whose policy change rewrites the token files in place.)"""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    token = secrets / "token"
    rules = CredentialRules(policy_dir=tmp_path)
    files = platforms.SecretFiles()
    monkeypatch.setattr(platforms, "_SETTLED_NS", 200_000_000)  # a write takes 0.2 s here

    def aged(text: str) -> None:
        """Written, then left alone for longer than a write takes (its change time too)."""
        token.write_text(text, encoding="utf-8")
        time.sleep(0.3)

    aged("good-token\n")
    if read_before:
        assert files.read("file:secrets/token", rules) == "good-token"
        aged("next-token, longer\n")  # another file now: read again, through the rewrite below
    real = platforms.resolve_credential

    def truncated_first(reference: str, *, rules: CredentialRules) -> str:
        token.write_text("", encoding="utf-8")  # the rewrite's truncation lands here
        return real(reference, rules=rules)

    monkeypatch.setattr(platforms, "resolve_credential", truncated_first)
    if read_before:
        assert files.read("file:secrets/token", rules) == "good-token"
    else:
        with pytest.raises(platforms.CredentialBeingWritten):
            files.read("file:secrets/token", rules)
    monkeypatch.setattr(platforms, "resolve_credential", real)
    aged("")  # left empty: an empty credential
    with pytest.raises(platforms.CredentialEmpty) as left:
        files.read("file:secrets/token", rules)
    assert not isinstance(left.value, platforms.CredentialBeingWritten)


async def test_a_token_file_caught_mid_rewrite_before_any_read_puts_the_post_off_a_moment(
    db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener
) -> None:
    """A gateway that has read nothing from a token file yet (just started) finds it empty, a
    moment after it changed: an ``echo TOKEN > file`` caught between its truncation and its
    write. The post is put off for the moment a write takes, not taken for a credential its admin
    cleared (before: the account marked unhealthy and its post put off five minutes); once the
    token is in, it goes out at that moment."""
    secrets = policy_dir / "secrets"
    secrets.mkdir()
    token = secrets / "token"
    token.write_text("", encoding="utf-8")
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        _stealing_policy(policy_dir, listener.url, "file:secrets/token")
        assert await gw.sync_policies() == ["thief"]
        post = await gw.submit("alice", "thief", "while it is written")
        # Truncated again just before the publisher looks (the token not in yet): "a moment
        # ago" is wall-clock time, which a gateway starting on a busy machine could outlast.
        token.write_text("", encoding="utf-8")
        await gw.tick()
        assert listener.heard == []
        put_off = await gw.get("alice", post["id"])
        assert put_off["state"] == "scheduled" and "changed moments ago" in (put_off["last_error"] or "")
        status, ready = await gw.call(None, "GET", "/readyz")
        assert status == 200 and "thief" not in str(ready), ready
        token.write_text("good-token\n", encoding="utf-8")
        clock.advance(timedelta(seconds=platforms.SETTLE_SECONDS + 1))
        await gw.tick()
        assert [t for _, t in listener.heard] == ["Bearer good-token"] * 2  # asked who, then the post
        assert (await gw.get("alice", post["id"]))["state"] == "published"


async def test_plain_http_needs_loopback_and_the_setting(
    db_url: str, policy_dir: Path, clock: ManualClock, listener: Listener
) -> None:
    """Plain http is refused to a non-loopback host even with the setting, and to loopback
    without it; the credential is never sent."""
    (policy_dir / "secrets").mkdir()
    (policy_dir / "secrets" / "token").write_text("tok\n", encoding="utf-8")
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        _stealing_policy(policy_dir, "http://192.0.2.1:9999", "file:secrets/token")
        assert await gw.sync_policies() == []
        status, body = await gw.call("alice", "GET", "/v1/policies/errors")
        assert [(e["file"], e["line"], e["key"]) for e in body["errors"]] == [("thief.yaml", 3, "instance")]
        assert "https://" in body["errors"][0]["message"]
    async with started_gateway(db_url, policy_dir, clock, admins="alice", allow_insecure_platforms=False) as gw:
        _stealing_policy(policy_dir, listener.url, "file:secrets/token")
        assert await gw.sync_policies() == []
        status, body = await gw.call("alice", "GET", "/v1/policies/errors")
        assert [(e["file"], e["line"], e["key"]) for e in body["errors"]] == [("thief.yaml", 3, "instance")]
        assert "BYLINE_ALLOW_INSECURE_PLATFORMS" in body["errors"][0]["message"]
        status, body = await gw.call("alice", "POST", "/v1/posts", {"account": "thief", "text": "hi"})
        assert (status, body["error"]) == (404, "unknown_account")
        await gw.tick()
    assert listener.heard == []


@pytest.mark.parametrize(
    ("url", "setting", "loads"),
    [
        ("https://mastodon.example", False, True),
        ("https://127.0.0.1:8443", False, True),
        ("http://127.0.0.1:9999", True, True),
        ("http://127.8.0.1", True, True),
        ("http://[::1]:9999", True, True),
        ("http://localhost:9999", True, True),
        ("http://127.0.0.1:9999", False, False),
        ("http://localhost", False, False),
        ("http://mastodon.example", True, False),
        ("http://10.0.0.1", True, False),
        ("http://127.0.0.1.example.com", True, False),
    ],
)
def test_address_rule(tmp_path: Path, url: str, setting: bool, loads: bool) -> None:
    """https always; plain http only to loopback and only with BYLINE_ALLOW_INSECURE_PLATFORMS."""
    rules = CredentialRules(policy_dir=tmp_path, allow_insecure=setting)
    path = write_policy(tmp_path, "m", f"""
        account: m
        platform: mastodon
        instance: {url}
        credentials: env:TOKEN
        tier: direct
        owner: alice
    """)
    if loads:
        assert load_file(path, rules=rules).policy.instance == url
    else:
        with pytest.raises(PolicyFileError) as info:
            load_file(path, rules=rules)
        assert [(i.line, i.key) for i in info.value.issues] == [(3, "instance")]


def test_defaults_refuse_outside_and_http(tmp_path: Path) -> None:
    """Without rules given, the loader keeps file credentials in ``<policy dir>/secrets`` and
    refuses plain http; ``byline policy check`` sees the same issues."""
    (tmp_path / "secrets").mkdir()
    write_policy(tmp_path, "a", """
        account: a
        platform: x
        api: http://127.0.0.1:1
        credentials: file:token
        tier: direct
        owner: alice
    """)
    _, issues = check_dir(tmp_path)
    assert [(i.file, i.line, i.key) for i in issues] == [("a.yaml", 4, "credentials"), ("a.yaml", 3, "api")]
    assert all(isinstance(i, PolicyIssue) for i in issues)
    assert os.fspath(tmp_path) not in " ".join(str(i) for i in issues)


def test_an_env_refusal_names_the_rule_and_the_names_allowed(tmp_path: Path) -> None:
    """What the admin reads for a refused ``env:`` credential: the reserved prefix it matched,
    or every prefix BYLINE_CREDENTIAL_ENV allows."""
    rules = CredentialRules(policy_dir=tmp_path, env_prefixes=("BRAND_", "TEAM_"))
    with pytest.raises(ValueError) as reserved:
        rules.env_name("PGPASSWORD")
    assert str(reserved.value) == (
        "env:PGPASSWORD is one of Byline's own settings or its database's (PG…), never a credential"
    )
    with pytest.raises(ValueError) as outside:
        rules.env_name("CLOUD_SECRET_KEY")
    assert str(outside.value) == (
        "env:CLOUD_SECRET_KEY does not start with one of the names BYLINE_CREDENTIAL_ENV allows (BRAND_, TEAM_)"
    )


def test_policy_check_keeps_to_the_secrets_directory_it_is_given(tmp_path: Path) -> None:
    """``check_dir`` judges each file under the rules it is handed (the operator's secrets
    directory), not those of the policy directory alone."""
    policy_dir, vault = tmp_path / "policies", tmp_path / "vault"
    policy_dir.mkdir()
    vault.mkdir()
    (vault / "token").write_text("t")
    (policy_dir / "a.yaml").write_text(
        f"account: a\nplatform: mastodon\ninstance: https://m.example\ncredentials: file:{vault / 'token'}\n"
        "tier: direct\nowner: alice\n")
    good, issues = check_dir(policy_dir, rules=CredentialRules(policy_dir=policy_dir, secrets_dir=vault))
    assert list(good) == ["a"] and issues == []
    _, issues = check_dir(policy_dir)
    assert [i.file for i in issues] == ["a.yaml"] and "outside the secrets directory" in issues[0].message


def test_a_file_reference_is_checked_whatever_colons_its_path_holds(tmp_path: Path) -> None:
    """``file:`` ends at the first colon: a path holding another is still checked, and refused
    outside the secrets directory."""
    with pytest.raises(ValueError, match="outside the secrets directory"):
        CredentialRules(policy_dir=tmp_path).check_reference(f"file:{tmp_path.parent}/token:2")


@pytest.mark.parametrize(("url", "message"), [
    ("http://platform.example", "must be https:// (plain http:// only on loopback, for development)"),
    ("http://127.0.0.1:8080", "must be https:// (plain http:// on loopback needs BYLINE_ALLOW_INSECURE_PLATFORMS)"),
])
def test_an_address_refusal_says_what_would_be_accepted(tmp_path: Path, url: str, message: str) -> None:
    """The whole message an admin reads for a plain http:// address, elsewhere and on loopback."""
    with pytest.raises(ValueError) as refused:
        CredentialRules(policy_dir=tmp_path).check_address(url)
    assert str(refused.value) == message


def test_a_recorded_policy_is_judged_by_its_directorys_rules_and_refused_alike_again(tmp_path: Path) -> None:
    """A policy another replica recorded is parsed under this directory's rules (its secrets
    directory); a text refused once is refused again with the same issues."""
    directory = tmp_path / "policies"
    (directory / "secrets").mkdir(parents=True)
    registry = PolicyRegistry(directory=directory)
    text = (f"account: a\nplatform: mastodon\ninstance: https://m.example\n"
            f"credentials: file:{directory / 'secrets' / 'token'}\ntier: direct\nowner: alice\n")
    loaded = registry.parse(text, account="a", file="a.yaml", sha256="s1")
    assert (loaded.policy.account, loaded.path, loaded.sha256, loaded.text) == ("a", directory / "a.yaml", "s1", text)
    bad = text.replace(str(directory / "secrets"), str(tmp_path))
    with pytest.raises(PolicyFileError) as first:
        registry.parse(bad, account="a", file="a.yaml", sha256="s2")
    with pytest.raises(PolicyFileError) as again:
        registry.parse(bad, account="a", file="a.yaml", sha256="s2")
    assert first.value.issues and again.value.issues == first.value.issues


def test_a_recorded_policy_for_another_account_is_refused_naming_its_file(tmp_path: Path) -> None:
    """A text recorded for account a that says it is account b is refused, the issue naming the
    file it was recorded from."""
    registry = PolicyRegistry(directory=tmp_path)
    text = "account: b\nplatform: sandbox\ntier: direct\nowner: alice\n"
    with pytest.raises(PolicyFileError) as refused:
        registry.parse(text, account="a", file="a.yaml", sha256="s1")
    assert [(i.file, i.key, i.message) for i in refused.value.issues] == [
        ("a.yaml", "account", "must equal the file name: a")
    ]
