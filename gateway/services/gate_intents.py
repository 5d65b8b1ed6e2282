"""Changes of published posts' gates written down first, and the reconciler of those left behind.

A change of a published post's threadgate or postgate made through the XRPC surface
(``gateway.services.xrpc_repo``) is written to the PDS first and logged after, so it may be on
the PDS while the log does not have it. Its request puts it back when the log does not take it
(its intent claimed first: with the database away, it leaves it to the reconcilers), but that
put-back can fail too (the PDS down, refusing, not answering) and the gateway can die
between the PDS's answer and the log. So before the PDS is asked, the change is written down
(an *intent*: the account, the post, the gate, what the PDS held, what the change writes, who
asked), and no change goes to the PDS when that cannot be stored. The intent goes in the very
transaction that logs the change, or once its request has put the change back.

Logging a change moves what every other change of that gate still on its way would put back to
the logged record. So that none slips past it, an account's intents are written down in turn
with the logging of any of its gate changes, and dropped in turn too (``sql.lock_gates``); and a
change read off the PDS before another change of its gate was settled (logged, or put back),
with none left on its way, is refused (503): what it read may not be what the log says.

An intent left behind (its put-back failed, or its gateway died) is taken, once its request's
lease has run out, by the reconciler that runs on every gateway (at start, then every few
seconds): one gateway alone claims it (a compare-and-set on its lease, which a dead
reconciler's claim runs out of too). It reads the gate on the PDS now, and:

- where it is still what the change wrote, puts back what was there before (over that very
  record: a swap on its CID, so that nothing written since is undone), then drops the intent;
- where it is what was there before already, drops the intent;
- where it is something else (changed since, by a change that was logged), drops the intent:
  that change stands.

A change is never recorded late, even one its caller may still make: its caller was answered
with an error, so it must not stand. A put-back that fails is tried again with a backoff (5 s
doubling, at most an hour), and says so in a warning each time.

A change whose account cannot put it back here (its policy file removed, the account moved off
Bluesky, its credential not readable, or one that signs in to another account than the post's:
an app password of another DID) is *stranded*: said once in a warning
(``gate_change_stranded``), counted apart (``byline_gate_changes_stranded``, ``/readyz``), and
put back in the first round after the account can again, rather than at its next try, which
may be an hour off.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Final

import structlog

from adapters.base import AdapterError
from adapters.bluesky import BlueskyAdapter
from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.lifecycle import State
from gateway.policy.loader import PolicyRegistry
from gateway.services.platforms import Platforms, another_account, credential_being_written
from gateway.services.publisher import backoff_seconds
from gateway.storage import gate_intents as sql
from gateway.storage import posts as posts_sql
from gateway.storage.db import Database, unavailable
from gateway.storage.gate_intents import GateIntent
from gateway.tasks import cancel_task, run_every
from gateway.types import duration_micros

logger = structlog.get_logger("byline.gate_intents")

_PAGE: Final = 32
"""Intents one round takes, at most: each is a read and a write on a PDS."""


def new_intent_id() -> str:
    """A fresh intent id."""
    return secrets.token_hex(12)


@dataclass(frozen=True, kw_only=True)
class GateIntents:
    """Intents stored before a gate change goes to the PDS, and settled by its request."""

    db: Database
    clock: Clock
    lease: timedelta = timedelta(minutes=2)
    """How long a request holds its intents: no reconciler takes one before."""

    async def turns(self, gates: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """How many changes of each gate (``post_id``, ``collection``) have been settled so far:
        taken before what the PDS holds is read (see :meth:`write_ahead`)."""
        async with self.db.read() as txn:
            return {gate: await sql.turn(txn, *gate) for gate in gates}

    async def write_ahead(
        self, *, account: str, actor: str, changes: Sequence[tuple[str, str, str, Mapping[str, Any] | None,
                                                                    Mapping[str, Any] | None]],
        turns: Mapping[tuple[str, str], int],
    ) -> list[GateIntent]:
        """Store one intent per change (``post_id``, ``remote_id``, ``collection``, what the PDS
        holds, what the change writes), all or none: the intents stored. Raises as the database does.

        What the PDS holds was read after ``turns`` (:meth:`turns`). A gate with no change on its
        way, one of whose changes was settled since (logged, or put back), may have been read
        before that change was logged (or put back): what was read is then not what the log says,
        and putting it back would undo the logged change (or write the unlogged one again). 503,
        nothing stored, to be tried again (it reads anew).

        A gate with changes of before left on it (neither logged nor put back) is what the log
        last said only before the oldest of them: the new change holds that as what it replaces,
        and takes them over from the reconcilers while its request lasts. Logged, it stands over
        them and they are dropped with it (``PostService.record_gates_changed``); else they are the reconcilers'
        again. Put back one by one, an older change found the gate 'changed since' by a newer
        one it never saw logged, and a newer one put the older one's gate back on the PDS, or
        undid a logged change that wrote what a left one had. 503 while a reconciler (or another
        new change) holds one of them: it may be putting the gate back that very moment."""
        now = now_micros(self.clock)
        until = now + duration_micros(self.lease)
        intents: list[GateIntent] = []
        async with self.db.write() as txn:
            # Read and written in the account's turn: a change logged meanwhile either moves what
            # these put back, or is read logged (its intent gone), never neither (``sql.lock_gates``).
            await sql.lock_gates(txn, account)
            inherited: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {}
            for post_id, remote_id, collection, held, written in changes:
                intent_id = new_intent_id()
                replaces = dict(held) if held is not None else None
                if (post_id, collection) in inherited:
                    replaces = inherited[(post_id, collection)][1]
                else:
                    # Another request's change on its way is its own to log or put back; but what
                    # it found (the oldest's) is what the log last said, not what this one found,
                    # which may be that change, unlogged. Logged, it moves this one's (settle_logged).
                    stored = await sql.of_gate(txn, post_id, collection)
                    left = [i for i in stored if i.status != sql.PENDING or i.lease_until <= now]
                    for earlier in left:
                        if not await sql.take_over(txn, earlier.id, by=intent_id, now=now, until=until):
                            raise BylineError(
                                Code.UNAVAILABLE, f"an earlier change of this post's {collection} is being put "
                                "back; try again in a moment", xrpc="NotEnoughResources", retryable=True)
                    if stored:
                        replaces = stored[0].held
                    elif await sql.turn(txn, post_id, collection) != turns.get((post_id, collection), 0):
                        raise BylineError(
                            Code.UNAVAILABLE, f"post {post_id}'s {collection} was changed while this change was "
                            "prepared; try again in a moment", xrpc="NotEnoughResources", retryable=True)
                    inherited[(post_id, collection)] = (intent_id, replaces)
                intents.append(GateIntent(
                    id=intent_id, account=account, post_id=post_id, remote_id=remote_id, collection=collection,
                    held=replaces, written=dict(written) if written is not None else None,
                    actor=actor, lease_until=until, created_at=now,
                ))
            # Read after the counts: a deleted post's counts are pruned (``sql.prune_turns``), so
            # a count read gone (back to what this request read, it may be) is of a post found
            # deleted here; and a gate written now would rule a post that is gone.
            for post_id, remote_id in sorted({(i.post_id, i.remote_id) for i in intents}):
                post = await posts_sql.get_post(txn, post_id)
                if post is None or post.state != State.PUBLISHED.value:
                    raise BylineError(Code.VALIDATION, f"the post {remote_id} was deleted meanwhile; its gates are "
                                      "not changed", xrpc="InvalidRequest")
            await sql.insert(txn, intents)
        return intents

    async def claim(self, ids: Iterable[str]) -> dict[str, GateIntent] | None:
        """Its request's claim on its intents, to put their changes back: those it won, as they are
        now (what each is to put back: a change of the gate logged meanwhile by another request
        has moved it to that change's record, ``sql.settle_logged``). One it did not win is not
        its own to put back any more (a reconciler's). None when the database is away: the
        request then puts nothing back, and leaves them to the reconcilers. What it found is no
        guide then: a change of the gate logged meanwhile that wrote the same record (same CID)
        would be undone by a put-back of it, with the log saying it stands."""
        until = now_micros(self.clock) + duration_micros(self.lease)
        try:
            async with self.db.write() as txn:
                claimed = [await sql.claim_own(txn, intent_id, until=until) for intent_id in ids]
        except Exception as exc:
            if not unavailable(exc):
                raise
            logger.warning("gate_intent_not_claimed", error="database_unavailable", left_to="reconcilers")
            return None
        return {i.id: i for i in claimed if i is not None}

    async def drop(self, ids: Iterable[str], *, account: str) -> None:
        """Drop intents whose changes never reached the PDS or were put back by their request;
        those they took over go back to the reconcilers at once (their changes may still stand).
        Best effort: one left is dropped by a reconciler, which finds nothing to put back."""
        now = now_micros(self.clock)
        try:
            async with self.db.write() as txn:
                await sql.lock_gates(txn, account)
                for intent_id in ids:
                    await sql.settle(txn, intent_id)
                    await sql.release_taken(txn, intent_id, now=now)
        except Exception as exc:
            if not unavailable(exc):
                raise
            logger.warning("gate_intent_not_dropped", error="database_unavailable")

    async def release(self, ids: Iterable[str]) -> None:
        """Hand intents whose put-back failed to the reconcilers at once. Best effort: their
        lease runs out all the same."""
        now = now_micros(self.clock)
        try:
            async with self.db.write() as txn:
                for intent_id in ids:
                    await sql.release(txn, intent_id, now=now)
                    await sql.release_taken(txn, intent_id, now=now)
        except Exception as exc:
            if not unavailable(exc):
                raise
            logger.warning("gate_intent_not_released", error="database_unavailable")


class GateReconciler:
    """Puts back the gate changes neither logged nor put back by their request (see the
    module's docstring): at start, then every ``interval`` seconds."""

    def __init__(self, *, db: Database, clock: Clock, platforms: Platforms, policies: PolicyRegistry,
                 interval: float, lease: timedelta = timedelta(minutes=2)) -> None:
        self._db = db
        self._clock = clock
        self._platforms = platforms
        self._policies = policies
        self._interval = interval
        self._lease = lease
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start reconciling, the first round at once."""
        self._task = run_every(self._interval, self.run_once, name="byline-gate-reconciler",
                               failed="gate_reconcile_failed", at_once=True)

    async def stop(self) -> None:
        """Stop reconciling."""
        await cancel_task(self._task)
        self._task = None

    async def run_once(self) -> int:
        """One round: how many intents were settled (put back, or found needing none). Stranded
        ones whose account can put them back now are taken in this round."""
        now = now_micros(self._clock)
        async with self._db.read() as txn:
            stranded = await sql.stranded(txn)
            due = await sql.due(txn, now=now, limit=_PAGE)
        back = [intent.id for intent in stranded if await self._can_put_back(intent)]
        if back:
            async with self._db.write() as txn:
                for intent_id in back:
                    await sql.release_stranded(txn, intent_id, now=now)
            async with self._db.read() as txn:
                due = await sql.due(txn, now=now, limit=_PAGE)
        settled = 0
        for intent in due:
            settled += await self._reconcile(intent)
        return settled

    async def stranded(self) -> dict[str, int]:
        """How many gate changes wait for each account to be able to put them back here."""
        async with self._db.read() as txn:
            return await sql.stranded_counts(txn)

    async def _reconcile(self, intent: GateIntent) -> bool:
        token = secrets.token_hex(12)
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            claimed = await sql.claim(txn, intent.id, token=token, now=now, until=now + duration_micros(self._lease))
        if claimed is None:
            return False  # another gateway's, or its request's again
        # What it puts back as it is now: a change of the gate logged since it was read may have moved it.
        intent = replace(intent, held=claimed.held)
        log = logger.bind(intent=intent.id, post_id=intent.post_id, account=intent.account, gate=intent.collection)
        stranded = ""
        try:
            outcome = await self._put_back(intent)
        except _Stranded as exc:
            outcome, stranded = None, str(exc)
        except Exception as exc:
            # Whatever kept it from the PDS (the PDS away, no answer in time, no credential, a
            # bug): the intent stays claimed and is tried again after a wait, never dropped.
            outcome = None
            if isinstance(exc, AdapterError | BylineError):
                error = exc.message
            elif isinstance(exc, TimeoutError):
                error = "no answer in time"
            else:
                log.exception("gate_reconcile_failed")
                error = type(exc).__name__
        else:
            error = ""
        if outcome is None:
            attempts = intent.attempts + 1
            until = now_micros(self._clock) + duration_micros(timedelta(seconds=backoff_seconds(attempts)))
            if stranded:
                # Said once: it stays so until an operator brings the account back, which
                # releases it (run_once); its backoff is only the last resort.
                if intent.status != sql.STRANDED:
                    log.warning("gate_change_stranded", remote_id=intent.remote_id, reason=stranded)
                async with self._db.write() as txn:
                    await sql.strand(txn, intent.id, token=token, until=until)
                return False
            log.warning("xrpc_gate_left", remote_id=intent.remote_id, attempts=attempts, error=error)
            async with self._db.write() as txn:
                await sql.back_off(txn, intent.id, token=token, until=until)
            return False
        async with self._db.write() as txn:
            await sql.lock_gates(txn, intent.account)
            dropped = await sql.drop(txn, intent.id, token=token)
        log.info("xrpc_gate_reconciled", outcome=outcome, dropped=dropped)
        return dropped

    async def _put_back(self, intent: GateIntent) -> str | None:
        """Put one change back where it still stands: what was done ('put_back', 'as_before',
        'changed_since'), or None where the PDS did not take the put-back (tried again later)."""
        adapter = self._adapter(intent.account)
        why = await another_account(adapter, intent.account, intent.remote_id)
        if why is not None:
            raise _Stranded(why)
        async with self._db.read() as txn:
            post = await posts_sql.get_post(txn, intent.post_id)
        # A post deleted meanwhile keeps no gate: one the change left would rule a post that is gone.
        back_to = intent.held if post is not None and post.state == State.PUBLISHED.value else None
        async with asyncio.timeout(self._lease.total_seconds() / 2):
            now = await adapter.gate_record(intent.remote_id, intent.collection)
            value = now[1] if now is not None else None
            if value == back_to:
                return "as_before"
            if value != intent.written:
                return "changed_since"
            if now is None:  # the change deleted it: the record it held, written again
                call, record, swap = "createRecord", back_to, None
            else:
                call, record, swap = ("deleteRecord" if back_to is None else "putRecord"), back_to, now[0]
            answer = await adapter.write_gates([(call, intent.remote_id, intent.collection, record)], swap_record=swap)
        if answer.status == 200:
            return "put_back"
        raise AdapterError(f"the PDS answered {answer.status}: {_said(answer.body)}", retryable=True,
                           status=answer.status)


    def _adapter(self, account: str) -> BlueskyAdapter:
        """The account's Bluesky adapter under its policy in force. Raises :class:`_Stranded`
        where it has none (no policy in force, not on Bluesky, a credential that cannot be
        read), and as :meth:`Platforms.adapter_for` does for a credential caught mid-rewrite."""
        loaded = self._policies.get(account)
        if loaded is None:
            raise _Stranded(f"{account} has no policy in force: no credential to put the gate back with")
        try:
            adapter = self._platforms.adapter_for(loaded)
        except BylineError as exc:
            if credential_being_written(exc):
                raise  # a credential file caught mid-rewrite: read again in a moment
            raise _Stranded(f"{account}'s credential cannot be read: {exc.message}") from None
        if not isinstance(adapter, BlueskyAdapter):
            raise _Stranded(f"{account} is no longer on Bluesky")
        return adapter

    async def _can_put_back(self, intent: GateIntent) -> bool:
        """Whether a stranded intent's account can put it back here now: a credential it can
        read, on Bluesky, signing in to the post's account (or a PDS that does not say now: the
        put-back is tried, and backs off as any does)."""
        try:
            adapter = self._adapter(intent.account)
        except (_Stranded, BylineError):
            return False
        return await another_account(adapter, intent.account, intent.remote_id) is None


class _Stranded(Exception):
    """What keeps an account from putting its gate changes back here (never a secret)."""


def _said(body: bytes) -> str:
    """A PDS's refusal in a few words (its error name and message), never a whole body."""
    try:
        said = json.loads(body)
    except ValueError:
        said = None
    if isinstance(said, dict):
        return f"{said.get('error')}: {str(said.get('message'))[:200]}"
    return body[:200].decode("utf-8", "replace")
