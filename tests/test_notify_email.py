"""Email: with BYLINE_SMTP_URL set, the people a post concerns get a plain-text mail with a link
to its page, through a real SMTP server; one that is down gets the mail once it is back."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiosmtpd.controller import Controller
from pydantic import ValidationError

from gateway.appkeys import DB, NOTIFIER
from gateway.clock import ManualClock
from gateway.settings import Settings, describe_error
from gateway.storage import people as people_sql
from tests.conftest import Gateway, started_gateway

PUBLIC = "https://byline.example"


@dataclass
class Mailbox:
    """What a real SMTP server (aiosmtpd, on 127.0.0.1) received: one message per recipient."""

    port: int
    messages: list[tuple[str, Message]] = field(default_factory=list)
    controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            self.messages.append((rcpt, message_from_bytes(envelope.original_content)))
        return "250 Message accepted"

    async def start(self) -> None:
        """Listen (again) on the mailbox's port."""
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        await asyncio.to_thread(self.controller.start)

    async def stop(self) -> None:
        """Stop listening: the server is down."""
        if self.controller is not None:
            await asyncio.to_thread(self.controller.stop)
            self.controller = None

    def received(self) -> list[tuple[str, str]]:
        """(recipient, subject) of every message, sorted."""
        return sorted((rcpt, str(msg["Subject"])) for rcpt, msg in self.messages)

    def body(self, rcpt: str, subject_part: str) -> str:
        """The plain text of the one message to ``rcpt`` whose subject has ``subject_part``."""
        [found] = [m for r, m in self.messages if r == rcpt and subject_part in str(m["Subject"])]
        payload = found.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    """An SMTP server on a free port of 127.0.0.1, not started yet."""
    box = Mailbox(port=free_port())
    try:
        yield box
    finally:
        await box.stop()


def address(name: str) -> str:
    """The email address a test person gave."""
    return f"{name}@people.example"


async def with_emails(gw: Gateway, *names: str) -> None:
    """People who gave an email address (erin gave none). Stored as ``byline user add`` stores
    them, but for the password's hash, which these tests never check (hashing takes a while)."""
    async with gw.app[DB].write() as txn:
        for name in (*names, "erin"):
            email = address(name) if name in names else None
            assert await people_sql.insert_person(txn, name=name, password_hash="unused", email=email, at=0)


def started(db_url: str, policy_dir: Path, clock: ManualClock, port: int) -> started_gateway:
    """A gateway mailing through the server on ``port``; its notifier runs when the test says."""
    return started_gateway(db_url, policy_dir, clock, notify_interval_seconds=3600, notify_timeout_seconds=2,
                           public_url=PUBLIC, smtp_url=f"smtp://127.0.0.1:{port}", smtp_from="byline@byline.example")


async def test_held_suggested_approved_published_reach_the_people_concerned(
    db_url: str, policy_dir: Path, clock: ManualClock, mailbox: Mailbox
) -> None:
    """A held post mails the approvers who have not decided, a suggestion the writers, the approval
    that completes the count and the publication the author; each with the page's link."""
    await mailbox.start()
    async with started(db_url, policy_dir, clock, mailbox.port) as gw:
        await with_emails(gw, "alice", "bob", "carol", "dave")
        held = await gw.submit("alice", "cosigned", "Launch on Monday")
        await gw.app[NOTIFIER].run_once()
        suggestion = await gw.submit("dave", "managed", "A thread about the launch?")
        for approver in ("bob", "carol"):
            status, body = await gw.act(approver, held["id"], "approve")
            assert status == 200, body
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        await gw.app[NOTIFIER].run_once()
        assert await gw.app[NOTIFIER].run_once() == 0
    assert mailbox.received() == sorted([
        (address("bob"), "Byline: A post for cosigned waits for your approval"),
        (address("carol"), "Byline: A post for cosigned waits for your approval"),
        (address("dave"), "Byline: A post for cosigned waits for your approval"),
        (address("bob"), "Byline: dave suggested a post for managed"),
        (address("carol"), "Byline: dave suggested a post for managed"),
        (address("alice"), "Byline: Your post for cosigned is approved"),
        (address("alice"), "Byline: Your post for cosigned is out"),
    ])
    waiting = mailbox.body(address("bob"), "waits for your approval")
    assert f"Read it and decide: {PUBLIC}/queue" in waiting
    assert f"{PUBLIC}/posts/{held['id']}" in waiting
    assert "2 approvals" in waiting
    assert "Launch on Monday" not in waiting  # the words stay on the page, behind sign-in
    assert f"{PUBLIC}/queue" in mailbox.body(address("carol"), "suggested")
    assert f"{PUBLIC}/posts/{suggestion['id']}" in mailbox.body(address("carol"), "suggested")
    out = mailbox.body(address("alice"), "is out")
    assert f"See it: {PUBLIC}/posts/{held['id']}" in out
    assert f"On the platform: {PUBLIC}/sandbox/cosigned#post-" in out
    [first] = [m for r, m in mailbox.messages if r == address("dave")]
    assert (first["From"], first["To"]) == ("byline@byline.example", address("dave"))
    assert str(first["Message-ID"]).startswith("<msg_")


async def test_an_approver_who_decided_is_not_mailed_again(
    db_url: str, policy_dir: Path, clock: ManualClock, mailbox: Mailbox
) -> None:
    """An edit of a held post asks again only the approvers who have not decided on the new version;
    a person without an email address gets nothing, and nothing fails for them."""
    await mailbox.start()
    async with started(db_url, policy_dir, clock, mailbox.port) as gw:
        await with_emails(gw, "alice", "carol", "dave")  # bob gave no address
        held = await gw.submit("alice", "cosigned", "First words")
        await gw.app[NOTIFIER].run_once()
        status, body = await gw.call("alice", "PATCH", f"/v1/posts/{held['id']}", {"text": "Better words"})
        assert status == 200, body
        await gw.app[NOTIFIER].run_once()
        log = await gw.app[NOTIFIER].deliveries()
    assert mailbox.received() == sorted(
        [(address(n), "Byline: A post for cosigned waits for your approval") for n in ("carol", "dave")] * 2
    )
    assert {(d.channel, d.state) for d in log} == {("email", "delivered")}


async def test_smtp_down_then_up_mails_once(
    db_url: str, policy_dir: Path, clock: ManualClock, mailbox: Mailbox
) -> None:
    """With the SMTP server down the mails wait and are retried; once it is up they go, once each."""
    async with started(db_url, policy_dir, clock, mailbox.port) as gw:
        await with_emails(gw, "alice", "bob", "carol", "dave")
        await gw.submit("alice", "cosigned", "While the mail server sleeps")
        assert await gw.app[NOTIFIER].run_once() == 6  # three stored, three tried
        waiting = await gw.app[NOTIFIER].deliveries()
        assert {(d.state, d.attempts, d.last_error) for d in waiting} == {
            ("pending", 1, "cannot reach the SMTP server: SMTPConnectError")
        }
        clock.advance(timedelta(seconds=5))
        assert await gw.app[NOTIFIER].run_once() == 3  # still down
        await mailbox.start()
        assert await gw.app[NOTIFIER].run_once() == 0  # the next try is 20 s later
        clock.advance(timedelta(seconds=20))
        assert await gw.app[NOTIFIER].run_once() == 3
        clock.advance(timedelta(days=1))
        assert await gw.app[NOTIFIER].run_once() == 0
        done = await gw.app[NOTIFIER].deliveries()
    assert {(d.state, d.attempts) for d in done} == {("delivered", 3)}
    assert mailbox.received() == sorted(
        (address(n), "Byline: A post for cosigned waits for your approval") for n in ("bob", "carol", "dave")
    )


async def test_without_smtp_no_mail_is_owed(db_url: str, policy_dir: Path, clock: ManualClock) -> None:
    """Without BYLINE_SMTP_URL nobody is mailed and no delivery is stored."""
    async with started_gateway(db_url, policy_dir, clock, notify_interval_seconds=3600) as gw:
        await with_emails(gw, "alice", "bob", "carol", "dave")
        await gw.submit("alice", "cosigned", "Quietly")
        assert await gw.app[NOTIFIER].run_once() == 0
        assert await gw.app[NOTIFIER].deliveries() == []


@pytest.mark.parametrize("url", ["http://mail.example:25", "smtp://", "smtps://user:hunter2-secret@:465"])
def test_a_bad_smtp_url_is_refused_without_repeating_it(url: str) -> None:
    """A BYLINE_SMTP_URL that is not smtp:// or smtps:// with a host stops the start, and the error
    never repeats the value (it may hold a password); a good one is kept secret in the settings."""
    with pytest.raises(ValidationError) as refused:
        Settings(smtp_url=url, _env_file=None)  # type: ignore[arg-type,call-arg]
    said = describe_error(refused.value)
    assert said == "invalid settings: BYLINE_SMTP_URL: Value error, must be smtp://host:port or " \
                   "smtps://user:password@host:port"
    good = Settings(smtp_url="smtps://mailer:hunter2-secret@mail.example:465", _env_file=None)  # type: ignore[arg-type,call-arg]
    assert "hunter2-secret" not in repr(good)


async def test_a_password_is_never_sent_without_tls(
    db_url: str, policy_dir: Path, clock: ManualClock, mailbox: Mailbox
) -> None:
    """With a password in an smtp:// URL and a server that offers no STARTTLS, nothing is sent and
    the password shows nowhere: not in the delivery log, not in the logs."""
    await mailbox.start()
    password = "pw-" + "x7Kq2" * 4
    async with started_gateway(db_url, policy_dir, clock, notify_interval_seconds=3600, public_url=PUBLIC,
                               smtp_url=f"smtp://mailer:{password}@127.0.0.1:{mailbox.port}") as gw:
        await with_emails(gw, "alice", "bob", "carol", "dave")
        with structlog.testing.capture_logs() as logs:
            await gw.submit("alice", "cosigned", "Not over plain text")
            await gw.app[NOTIFIER].run_once()
        log = await gw.app[NOTIFIER].deliveries()
    assert {(d.state, d.last_error) for d in log} == {
        ("pending", "the SMTP server: SMTP STARTTLS extension not supported by server.")
    }
    assert mailbox.messages == []
    assert password not in json.dumps(logs, default=str)
    assert password not in repr(gw.app[NOTIFIER].__dict__)
