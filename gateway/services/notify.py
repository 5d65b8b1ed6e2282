"""Notifications: webhooks per account (Standard Webhooks) and emails to the people concerned.

The source of events is the signed log itself. The notifier follows it from a cursor kept in
the database: it reads the entries after the cursor, turns those that concern someone into
notifications, and in one transaction stores a delivery for each webhook and each email
recipient and moves the cursor on. A crash before the commit leaves the cursor where it was
(the entries are read again); after it, the deliveries are stored: nothing is lost or made
twice, and two replicas cannot both take one range (the cursor is locked, then moved with a
compare-and-set).

Deliveries are then claimed (a compare-and-set on their state and attempts, with a lease),
sent, and their outcome recorded: delivered, or due again later with an exponential backoff,
or failed after the last attempt. A sender that dies mid-way leaves its claim to run out, and
the delivery is sent again with the same ``webhook-id``: receivers see each event at least
once, and the id tells them when they saw it before.

A webhook call is a JSON body signed with the account's secret, never redirected to another
address (a 3xx answer is a failed attempt); its address is checked again before each call.
Held posts' and suggestions' words go in the payload (the webhook is the account admin's, and
the co-signers it serves need to read them); no token or credential ever does. An email says
what waits and links to the page (``/queue`` or ``/posts/{id}``), without the post's words.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import aiosmtplib
import structlog
from standardwebhooks import Webhook

from gateway.audit.gates import gate_words, gates_summed_up
from gateway.clock import Clock, SystemClock, now_micros
from gateway.metrics import NOT_SCRAPED, Metrics
from gateway.policy.credentials import CredentialRules
from gateway.policy.loader import LoadedPolicy, PolicyFileError, PolicyRegistry
from gateway.services import platforms as credentials
from gateway.storage import notify as sql
from gateway.storage import people as people_sql
from gateway.storage import policies as policy_sql
from gateway.storage import posts as posts_sql
from gateway.storage.db import Database, Row, Txn
from gateway.storage.posts import PostRecord
from gateway.tasks import cancel_task, run_every
from gateway.types import iso

logger = structlog.get_logger("byline.notify")

_SECOND = 1_000_000
_IN_FLIGHT = 400
"""The most calls a notifier has under way at once."""
_RECORDED_KEPT = 256
"""How many recorded policy versions a notifier keeps parsed."""

EMAILED = frozenset({"post.held", "post.suggested", "post.approved", "post.published", "post.failed"})
"""The events people are emailed about (a policy change goes to webhooks only)."""


def notification_type(entry: Mapping[str, Any]) -> str | None:
    """The notification a log entry makes, if any: a post that now waits for approvals (submitted,
    edited or decided again into ``held``), a suggestion (submitted or edited), an approval, a
    publication, a failure (and a reply or quote cancelled with the post it waited for, which
    will not go out either), a change of who may reply to or quote a post already out, or a
    policy loaded, changed or removed."""
    kind = entry.get("type")
    data = entry.get("data")
    state = data.get("state") if isinstance(data, dict) else None
    if kind in ("post.submitted", "post.edited"):
        return {"held": "post.held", "suggested": "post.suggested"}.get(str(state))
    if kind == "post.redecided":
        # Held for the approvers of a new policy (a post left with no policy waits for none).
        return "post.held" if state == "held" and isinstance(data, dict) and "approvers" in data else None
    if kind in ("post.approved", "post.published", "post.failed", "post.gates_changed"):
        return str(kind)
    if kind == "post.cancelled" and entry.get("actor") == "system" and isinstance(data, dict) and "reason" in data:
        # A reply or quote cancelled with the post it waited for: it will not go out, and its
        # author is told as of a failure (the event names the cancellation: ``log_event``).
        return "post.failed"
    if kind in ("policy.loaded", "policy.changed", "policy.removed"):
        return "policy.changed"
    return None


def retry_delay_seconds(attempt: int) -> float:
    """How long after attempt ``attempt`` the next one is due: 5 s, growing fourfold, at most 10 h
    (about the schedule the Standard Webhooks specification suggests)."""
    return float(min(5 * 4 ** max(attempt - 1, 0), 36_000))


def message_id(log_idx: int, channel: str, target: str) -> str:
    """The ``webhook-id`` of one event to one target: the same for every attempt, and for a
    replica that reads the same entry."""
    digest = hashlib.sha256(f"{log_idx}\n{channel}\n{target}".encode()).hexdigest()[:24]
    return f"msg_{log_idx}_{digest}"


@dataclass(frozen=True, kw_only=True)
class SmtpServer:
    """Where emails go, read from ``BYLINE_SMTP_URL``; ``password`` is never shown."""

    hostname: str
    port: int
    use_tls: bool
    username: str | None
    password: str | None
    sender: str

    @classmethod
    def from_url(cls, url: str, *, sender: str) -> SmtpServer:
        """``smtp://host:port`` or ``smtps://user:password@host:port``."""
        parts = urlsplit(url)
        use_tls = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname or "localhost", port=parts.port or (465 if use_tls else 25), use_tls=use_tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None, sender=sender,
        )

    def __repr__(self) -> str:
        return f"SmtpServer({self.hostname}:{self.port}, tls={self.use_tls}, user={self.username!r})"

    @property
    def start_tls(self) -> bool | None:
        """STARTTLS: required when a password is sent over ``smtp://``, else used when offered."""
        if self.use_tls:
            return False
        return True if self.password else None


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What one attempt came to."""

    ok: bool
    status: int | None = None
    error: str | None = None
    final: bool = False  # no later attempt can do better


class Notifier:
    """Follows the log, stores the deliveries it calls for, and sends them, in the background of
    every replica."""

    def __init__(
        self,
        *,
        db: Database,
        policies: PolicyRegistry,
        rules: CredentialRules,
        clock: Clock,
        public_url: str,
        smtp: SmtpServer | None = None,
        interval: float = 1.0,
        timeout: float = 10.0,
        max_attempts: int = 8,
        batch: int = 200,
        stamp_clock: Clock | None = None,
        metrics: Metrics = NOT_SCRAPED,
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._policies = policies
        self._rules = rules
        self._clock = clock
        # The receiver checks ``webhook-timestamp`` against its own clock (within minutes): it
        # is the wall time of the call, whatever clock schedules the attempts.
        self._stamp_clock = stamp_clock or SystemClock()
        self._public_url = public_url.rstrip("/")
        self._smtp = smtp
        self._interval = interval
        self._timeout = timeout
        self._lease = int(max(60.0, 3 * timeout) * _SECOND)
        self.max_attempts = max_attempts
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._inflight: set[str] = set()
        self._attempts: set[asyncio.Task[None]] = set()  # calls the background loop left running
        # Recorded policy versions read from the database, by (account, SHA-256): None for one
        # whose text is not kept or does not validate here.
        self._recorded: dict[tuple[str, str], LoadedPolicy | None] = {}

    async def start(self) -> None:
        """Open the HTTP client the webhooks use (no cookies kept between receivers) and follow
        the log; what was owed before a restart goes out at the first tick."""
        self._session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"User-Agent": "Byline-Webhooks"},
        )
        self._task = run_every(self._interval, self._pass, name="byline-notifier", failed="notify_tick_failed")

    async def stop(self) -> None:
        """Stop; a delivery in flight keeps its claim until the lease runs out, then goes again."""
        await cancel_task(self._task)
        self._task = None
        for task in list(self._attempts):
            await cancel_task(task)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_once(self) -> int:
        """Read the new log entries into deliveries, then send every delivery that is due; how
        many deliveries were made and attempted, once every attempt has its outcome."""
        made = await self.enqueue()
        return made + await self.deliver()

    async def _pass(self) -> None:
        """The background loop's pass: as :meth:`run_once`, but the calls are left to finish on
        their own, so that a receiver that holds its calls until they time out delays nobody
        else's (the next pass sends what fell due meanwhile, and leaves those in flight)."""
        await self.enqueue()
        await self.deliver(wait=False)

    # -- from the log to deliveries ---------------------------------------------------------

    async def enqueue(self) -> int:
        """Store the deliveries the entries after the cursor call for, and move the cursor past
        them, one transaction per batch; how many deliveries were stored."""
        async with self._db.read() as txn:
            start = await sql.cursor(txn)
            size = await txn.fetchone("SELECT size FROM log_state WHERE id = 1")
        if size is None or int(size["size"]) <= start:
            return 0  # nothing new: no write at all
        made = 0
        while True:
            added, more = await self._enqueue_batch()
            made += added
            if not more:
                return made

    async def _enqueue_batch(self) -> tuple[int, bool]:
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            start = await sql.cursor(txn, lock=True)
            in_force = await self._in_force(txn)
            # With no webhook in any policy in force or ever recorded (a removed one tells its
            # webhooks of its removal) and no mail server, no entry calls for a delivery
            # (``_deliveries_for`` would find none for each): the cursor moves past them unread.
            nobody = (self._smtp is None and not any(lp.policy.notify for lp in in_force.values())
                      and not await policy_sql.ever_notifying(txn))
            if nobody:
                state = await txn.fetchone("SELECT size FROM log_state WHERE id = 1")
                end = int(state["size"]) if state is not None else start
                if end > start and not await sql.advance_cursor(txn, was=start, to=end, at=now):
                    raise AssertionError("the notify cursor moved under its lock")
                return 0, False
            rows = await sql.log_entries_from(txn, start, limit=self._batch)
            if not rows:
                return 0, False
            owed: list[sql.NewDelivery] = []
            for row in rows:
                owed += await self._deliveries_for(txn, row, in_force)
            added = await sql.insert_deliveries(txn, owed, at=now)
            end = int(rows[-1]["idx"]) + 1
            if not await sql.advance_cursor(txn, was=start, to=end, at=now):
                raise AssertionError("the notify cursor moved under its lock")
        return added, len(rows) == self._batch

    async def _in_force(self, txn: Txn) -> dict[str, LoadedPolicy]:
        """Each account's policy in force as the database records it: this gateway's copy
        where it holds that version, else the version's recorded text. The recipients of an
        event do not depend on whether this gateway has reread a change another made."""
        found: dict[str, LoadedPolicy] = {}
        for account, head in (await policy_sql.heads(txn)).items():
            loaded = self._policies.get(account)
            if loaded is None or loaded.sha256 != head.sha256:
                loaded = await self._version(txn, account, head.sha256, head.file)
            if loaded is not None:
                found[account] = loaded
        return found

    async def _version(self, txn: Txn, account: str, sha256: str, file: str | None) -> LoadedPolicy | None:
        """A recorded version of an account's policy, from its kept text (None without one)."""
        key = (account, sha256)
        if key not in self._recorded:
            body = (await policy_sql.bodies(txn, [key])).get(key)
            parsed = None
            if body is not None:
                try:
                    parsed = self._policies.parse(body, account=account, file=file or f"{account}.yaml",
                                                  sha256=sha256)
                except PolicyFileError as exc:
                    logger.warning("notify_policy_refused_here", account=account, errors=[str(i) for i in exc.issues])
            if len(self._recorded) >= _RECORDED_KEPT:
                self._recorded.clear()
            self._recorded[key] = parsed
        return self._recorded[key]

    async def _deliveries_for(self, txn: Txn, row: Row, in_force: Mapping[str, LoadedPolicy]) -> list[sql.NewDelivery]:
        try:
            entry = json.loads(bytes(row["entry"]))
        except ValueError:
            return []  # not an entry the gateway wrote; the auditor will say so
        kind = notification_type(entry) if isinstance(entry, dict) else None
        if kind is None:
            return []
        idx = int(row["idx"])
        account = entry.get("account")
        loaded = in_force.get(account) if isinstance(account, str) else None
        data = entry.get("data")
        removed = None
        if entry.get("type") == "policy.removed" and isinstance(data, dict):
            removed = data.get("previous_sha256")
        if isinstance(account, str) and isinstance(removed, str):
            loaded = await self._version(txn, account, removed, None)  # told to the hooks of the policy removed
        hooks = [w for w in loaded.policy.notify if kind in w.events] if loaded is not None else []
        if not hooks and (self._smtp is None or kind not in EMAILED):
            # Nobody to tell: the post is not read. This runs holding the writer, which every
            # post's changes wait for, and most accounts have no webhook.
            return []
        post_id = entry.get("post")
        post = await posts_sql.get_post(txn, post_id) if isinstance(post_id, str) else None
        if post_id is not None and post is None:
            return []
        out: list[sql.NewDelivery] = []
        if hooks:
            body = json.dumps(self._payload(kind, entry, idx, row["text"], post), ensure_ascii=False,
                              separators=(",", ":"))
            for hook in hooks:
                out.append(sql.NewDelivery(
                    msg_id=message_id(idx, "webhook", hook.url), channel="webhook", account=account,
                    target=hook.url, credential=hook.secret, event_type=kind, log_idx=idx, payload=body,
                ))
        if self._smtp is not None and kind in EMAILED and post is not None:
            names = await self._recipients(txn, kind, entry, post, loaded)
            addresses = await people_sql.emails(txn, sorted(names))
            for _name, address in sorted(addresses.items()):
                mail = self._email(kind, entry, post)
                if mail is None:
                    continue
                out.append(sql.NewDelivery(
                    msg_id=message_id(idx, "email", address.lower()), channel="email", account=account,
                    target=address, credential=None, event_type=kind, log_idx=idx,
                    payload=json.dumps(mail, ensure_ascii=False),
                ))
        return out

    def _page(self, path: str) -> str:
        return f"{self._public_url}{path}"

    def _payload(
        self, kind: str, entry: Mapping[str, Any], idx: int, committed: str | None, post: PostRecord | None
    ) -> dict[str, Any]:
        """The JSON a webhook receives: ``{type, timestamp, data}`` as Standard Webhooks suggests."""
        data = entry.get("data") if isinstance(entry.get("data"), dict) else {}
        assert isinstance(data, dict)
        out: dict[str, Any] = {
            "account": entry.get("account"), "log_index": idx, "log_event": entry.get("type"),
            "actor": entry.get("actor"),
        }
        if post is not None:
            out.update(post=post.id, author=post.author, state=data.get("state", post.state),
                       version=data.get("version", post.version), page=self._page(f"/posts/{post.id}"))
        if kind in ("post.held", "post.suggested") and post is not None:
            text = committed if committed is not None else (post.text if data.get("version") == post.version else None)
            out.update(text=text, reasons=data.get("reasons", list(post.reasons)),
                       approvers=data.get("approvers", list(post.approvers)),
                       required=data.get("required", post.required), queue=self._page("/queue"))
            # Who may reply or quote once it is out goes with the version approved; the record
            # keeps the latest version's, so an older version's event says nothing of them.
            gates = gates_summed_up(post.options.get("gates"))
            if gates and data.get("version", post.version) == post.version:
                out.update(gates=gates)
            if kind == "post.suggested":
                out.pop("approvers")
                out.pop("required")
        elif kind == "post.approved":
            out.update(count=data.get("count"), required=data.get("required"),
                       complete=data.get("state") == "scheduled", publish_at=data.get("publish_at"))
        elif kind == "post.published" and post is not None:
            out.update(url=data.get("url"), remote_id=data.get("remote_id"), text=post.published_text)
            if gates := gates_summed_up(post.options.get("gates")):
                out.update(gates=gates)  # as it went out: later changes are post.gates_changed events
        elif kind == "post.failed":
            out.update(error=_failure(data, post), attempt=data.get("attempt"))
        elif kind == "post.gates_changed":
            # The summary, not the record: its hidden replies are other people's addresses.
            out.update(remote_id=data.get("remote_id"), gate=data.get("gate"), cid=data.get("cid"),
                       settings=data.get("settings"), words=gate_words(data.get("gate"), data.get("settings")))
        elif kind == "policy.changed":
            change = str(entry.get("type", "")).removeprefix("policy.")
            out.update(change=change, file=data.get("file"), sha256=data.get("sha256"),
                       previous_sha256=data.get("previous_sha256"), changed=data.get("changed"),
                       policy=data.get("policy"))
        return {"type": kind, "timestamp": entry.get("ts"), "data": out}

    async def _recipients(
        self, txn: Txn, kind: str, entry: Mapping[str, Any], post: PostRecord, loaded: LoadedPolicy | None
    ) -> set[str]:
        """Who is emailed: for a held post, its approvers who have not decided on this version
        (never its author or editors); for a suggestion, the account's writers; for an approval
        that completes the count, a publication or a failure, the author. Never the one who acted."""
        data = entry.get("data") if isinstance(entry.get("data"), dict) else {}
        assert isinstance(data, dict)
        actor = entry.get("actor")
        names: set[str] = set()
        if kind == "post.held":
            version = int(data.get("version", post.version))
            decided = {r["approver"] for r in await posts_sql.approvals(txn, post.id) if int(r["version"]) == version}
            approvers = data.get("approvers", list(post.approvers))
            names = {str(a) for a in approvers} - decided - {post.author, *post.editors}
        elif kind == "post.suggested":
            names = set(loaded.policy.writers) if loaded is not None else set()
        elif kind == "post.approved":
            names = {post.author} if data.get("state") == "scheduled" else set()
        elif kind in ("post.published", "post.failed"):
            names = {post.author}
        return names - {str(actor)}

    def _email(self, kind: str, entry: Mapping[str, Any], post: PostRecord) -> dict[str, str] | None:
        """The subject and plain text of an email: what happened, and the page to see it on."""
        data = entry.get("data") if isinstance(entry.get("data"), dict) else {}
        assert isinstance(data, dict)
        account, author = post.account, post.author
        page = self._page(f"/posts/{post.id}")
        if kind == "post.held":
            required = int(data.get("required", post.required) or 1)
            reasons = [str(r.get("reason")) for r in data.get("reasons", post.reasons) if isinstance(r, dict)]
            why = "".join(f"\n  - {r}" for r in reasons)
            approvals = "1 approval" if required == 1 else f"{required} approvals"
            return {
                "subject": f"A post for {account} waits for your approval",
                "body": f"A post by {author} for {account} waits for {approvals} before it goes out."
                        + (f"\nHeld because:{why}" if why else "")
                        + f"\n\nRead it and decide: {self._page('/queue')}\nIts history: {page}\n",
            }
        if kind == "post.suggested":
            return {
                "subject": f"{author} suggested a post for {account}",
                "body": f"{author} suggested a post for {account}. Adopt, edit or dismiss it: "
                        f"{self._page('/queue')}\nIts history: {page}\n",
            }
        if kind == "post.approved":
            when = data.get("publish_at")
            return {
                "subject": f"Your post for {account} is approved",
                "body": f"Your post for {account} has the approvals it needs"
                        + (f" and goes out at {when}" if when else "") + f".\n\nSee it: {page}\n",
            }
        if kind == "post.published":
            out = data.get("url")
            return {
                "subject": f"Your post for {account} is out",
                "body": f"Your post for {account} was published." + (f"\nOn the platform: {out}" if out else "")
                        + f"\n\nSee it: {page}\n",
            }
        if kind == "post.failed":
            then = ("It was cancelled; write it again if it should still go out" if data.get("state") == "cancelled"
                    else "Retry or cancel it")
            return {
                "subject": f"Your post for {account} could not be published",
                "body": f"Your post for {account} could not be published: {_failure(data, post)}\n\n"
                        f"{then}: {page}\n",
            }
        return None

    # -- sending ----------------------------------------------------------------------------

    async def deliver(self, *, limit: int = 100, wait: bool = True) -> int:
        """Claim the deliveries that are due (and those whose sender died), send them, and record
        each outcome; how many were attempted. ``wait=False`` leaves the calls running (at most
        :data:`_IN_FLIGHT` at once)."""
        limit = min(limit, _IN_FLIGHT - len(self._inflight))
        if limit <= 0:
            return 0
        now = now_micros(self._clock)
        async with self._db.read() as txn:
            due = [d for d in await sql.due(txn, now=now, limit=limit) if d.msg_id not in self._inflight]
        if not due:
            return 0
        claimed: list[sql.Delivery] = []
        async with self._db.write() as txn:
            for d in due:
                if await sql.claim(txn, d, now=now, lease_until=now + self._lease):
                    claimed.append(d)
        self._inflight |= {d.msg_id for d in claimed}
        tasks = [asyncio.create_task(self._attempt(d), name=f"byline-notify-{d.msg_id}") for d in claimed]
        for task in tasks:
            self._attempts.add(task)
            task.add_done_callback(self._attempts.discard)
        if wait:
            await asyncio.gather(*tasks)
        return len(claimed)

    async def _attempt(self, d: sql.Delivery) -> None:
        try:
            await self._try(d)
        finally:
            self._inflight.discard(d.msg_id)

    async def _try(self, d: sql.Delivery) -> None:
        attempt = d.attempts + 1
        try:
            outcome = await (self._send_webhook(d) if d.channel == "webhook" else self._send_email(d))
        except Exception as exc:  # a bug must not leave the claim to its lease alone
            logger.exception("notification_crashed", msg_id=d.msg_id)
            outcome = Outcome(ok=False, error=f"unexpected error: {type(exc).__name__}")
        now = now_micros(self._clock)
        give_up = not outcome.ok and (outcome.final or attempt >= self.max_attempts)
        state = sql.DELIVERED if outcome.ok else sql.FAILED if give_up else sql.PENDING
        next_at = None if outcome.ok or give_up else now + int(retry_delay_seconds(attempt) * _SECOND)
        async with self._db.write() as txn:
            kept = await sql.settle(txn, d.msg_id, attempt=attempt, state=state, next_at=next_at,
                                    status=outcome.status, error=outcome.error, at=now)
        self._metrics.notification(d.channel, state if kept else "lost")
        fields = {"msg_id": d.msg_id, "channel": d.channel, "notify_event": d.event_type, "account": d.account,
                  "attempt": attempt}
        if d.channel == "webhook":
            fields["host"] = urlsplit(d.target).hostname
        if not kept:
            logger.warning("notification_claim_lost", **fields)
        elif outcome.ok:
            logger.info("notification_delivered", **fields, status=outcome.status)
        else:
            logger.warning("notification_failed", **fields, status=outcome.status, error=outcome.error,
                           gave_up=give_up, retry_at=iso(next_at))

    async def _send_webhook(self, d: sql.Delivery) -> Outcome:
        try:
            self._rules.check_address(d.target)
        except ValueError as exc:
            return Outcome(ok=False, error=f"the webhook's address {exc}", final=True)
        try:
            secret = credentials.resolve_credential(d.credential or "", rules=self._rules)
        except credentials.CredentialError as exc:
            return Outcome(ok=False, error=f"webhook secret: {exc}")  # the admin may fix it: retried
        try:
            signer = Webhook(secret)
        except Exception:  # binascii.Error, an empty secret: the message could quote the value
            return Outcome(ok=False, error=f"webhook secret {d.credential} is not a Standard Webhooks secret (whsec_…)")
        body = d.payload.encode("utf-8")
        stamp = self._stamp_clock.now()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": d.msg_id,
            "webhook-timestamp": str(math.floor(stamp.timestamp())),
            "webhook-signature": signer.sign(d.msg_id, stamp, body),
        }
        assert self._session is not None, "the notifier has not started"
        try:
            async with self._session.post(d.target, data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                resp.release()
        except TimeoutError:
            return Outcome(ok=False, error=f"no answer within {self._timeout:g} s")
        except aiohttp.ClientError as exc:
            return Outcome(ok=False, error=f"cannot reach the webhook: {type(exc).__name__}")
        if 200 <= status < 300:
            return Outcome(ok=True, status=status)
        if 300 <= status < 400:
            return Outcome(ok=False, status=status,
                           error=f"answered {status}, a redirect: webhooks are not redirected to another address")
        return Outcome(ok=False, status=status, error=f"answered {status}")

    async def _send_email(self, d: sql.Delivery) -> Outcome:
        smtp = self._smtp
        if smtp is None:
            return Outcome(ok=False, error="no SMTP server is configured (BYLINE_SMTP_URL)")
        mail = json.loads(d.payload)
        message = EmailMessage()
        message["From"] = smtp.sender
        message["To"] = d.target
        message["Subject"] = f"Byline: {mail['subject']}"
        message["Message-ID"] = f"<{d.msg_id}@byline>"
        message.set_content(mail["body"])
        try:
            await aiosmtplib.send(
                message, hostname=smtp.hostname, port=smtp.port, username=smtp.username, password=smtp.password,
                use_tls=smtp.use_tls, start_tls=smtp.start_tls, timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused:
            return Outcome(ok=False, error="the SMTP server refused the address", final=True)
        except aiosmtplib.SMTPResponseException as exc:
            return Outcome(ok=False, status=exc.code, error=f"the SMTP server answered {exc.code}")
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, OSError, TimeoutError) as exc:
            return Outcome(ok=False, error=f"cannot reach the SMTP server: {type(exc).__name__}")
        except aiosmtplib.SMTPException as exc:
            # Such as a server without STARTTLS when a password is to be sent: the message is the
            # client library's own, and never holds the password.
            return Outcome(ok=False, error=f"the SMTP server: {exc.message[:200]}")
        return Outcome(ok=True)

    # -- reading the delivery log -----------------------------------------------------------

    async def deliveries(self, *, log_idx: int | None = None) -> list[sql.Delivery]:
        """The delivery log (of one log entry): what was owed, tried, delivered or given up."""
        async with self._db.read() as txn:
            return await sql.deliveries(txn, log_idx=log_idx)


def smtp_from_settings(url: str | None, *, sender: str) -> SmtpServer | None:
    """The SMTP server ``BYLINE_SMTP_URL`` names, if any."""
    return SmtpServer.from_url(url, sender=sender) if url else None


def _failure(data: Mapping[str, Any], post: PostRecord | None) -> Any:
    """Why a post failed, as its people are told: the post's last error, in full (the log's
    entry says only the kind of failure, see ``publisher.public_failure``)."""
    if post is not None and post.last_error:
        return post.last_error
    return data.get("error")
