"""The profile byline: one line of each account's profile kept true to the policy in force.

When a policy version is recorded (``gateway.services.policies``), :func:`queue_update` is
called inside that same transaction: if the version changes what the byline says (who writes,
who approves, the template, or the byline turned on or off), a row is queued in
``profile_updates``, so the change is queued exactly once however many gateways saw it, and
survives a crash. :class:`ProfileKeeper`, in the background of every gateway, claims due rows
with a lease, sets the line through the account's adapter (short blips retried in place, as
publishing does; longer failures put back with backoff), and records each line set in the log
as ``profile.updated`` {version, text, platform}.

A platform that refuses (no permission, a rate limit, a profile full of fields) marks the
account's profile health with its reason, shown in ``/readyz`` and on the account's page; the
account's posts go out as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from adapters.base import AdapterError, ProfileAdapter, ProfileLine
from gateway.audit.appender import Appender, LogTxn
from gateway.clock import Clock, now_micros
from gateway.errors import BylineError
from gateway.policy import byline
from gateway.policy.loader import LoadedPolicy, PolicyRegistry
from gateway.services.identities import AccountHeld
from gateway.services.platforms import Platforms
from gateway.services.publisher import backoff_seconds
from gateway.storage import profiles as sql
from gateway.storage.db import Database, DatabaseUnavailable
from gateway.tasks import cancel_task, run_every

logger = structlog.get_logger("byline.profiles")

_SECOND = 1_000_000


async def queue_update(ltx: LogTxn, *, account: str, version: int, loaded: LoadedPolicy | None) -> None:
    """Queue the byline change policy ``version`` of ``account`` makes, if it makes one (called
    in the transaction that records the version: once, whichever gateway records it)."""
    if loaded is None:
        return  # a removed policy leaves the profile as it is: Byline holds no credential for it any more
    policy = loaded.policy
    wanted = policy.profile.byline
    template = policy.profile.template if wanted else None
    voice = byline.voice(policy.summary()) if wanted else None
    last = await sql.last(ltx.txn, account)
    if last is None and not wanted:
        return
    if last is not None and (last.template, last.voice) == (template, voice):
        return  # the words stay the same: nothing to set
    await sql.queue(ltx.txn, account=account, version=version, platform=policy.platform, template=template,
                    voice=voice, at=ltx.now)


class ProfileKeeper:
    """Sets queued bylines on the platforms; runs in the background of every gateway."""

    def __init__(
        self, *, db: Database, appender: Appender, policies: PolicyRegistry, platforms: Platforms, clock: Clock,
        interval: float = 5.0, lease_seconds: float = 120.0, inline_attempts: int = 3, inline_wait_max: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._db = db
        self._appender = appender
        self._policies = policies
        self._platforms = platforms
        self._clock = clock
        self._interval = interval
        self._lease = int(lease_seconds * _SECOND)
        self._inline_attempts = inline_attempts
        self._inline_wait_max = inline_wait_max
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Set what is due now, then look again every interval."""
        self._task = run_every(self._interval, self.run_once, name="byline-profiles", failed="profile_tick_failed")

    async def stop(self) -> None:
        """Stop; a line being set keeps its lease and is set again by whoever claims it next."""
        await cancel_task(self._task)
        self._task = None

    async def run_once(self) -> int:
        """Set every byline due now; return how many were set."""
        now = now_micros(self._clock)
        async with self._db.read() as txn:
            due = await sql.due(txn, now=now)
            failing = await sql.failing(txn)
        # Every gateway shows what any of them was told by the platform.
        self._platforms.profile_problems = failing
        set_now = 0
        for update in due:
            lease_until = now + self._lease
            async with self._db.write() as txn:
                claimed = await sql.claim(txn, update, now=now, lease_until=lease_until)
            if claimed and await self._set(update, lease_until=lease_until):
                set_now += 1
        return set_now

    async def _set(self, update: sql.Update, *, lease_until: int) -> bool:
        log = logger.bind(account=update.account, version=update.version, platform=update.platform)
        text = None
        if update.template is not None:
            text = update.template.format(
                voice=update.voice or "", account=update.account,
                url=byline.public_page(self._platforms.public_url, update.account),
            )
        try:
            if text is not None and (problem := byline.too_long(update.platform, text)) is not None:
                raise AdapterError(f"the byline does not fit: {problem}", retryable=False)
            loaded = self._policies.get(update.account)
            if loaded is None:
                raise AdapterError("the account has no policy in force", retryable=True)
            adapter = self._platforms.adapter_for(loaded)
            if not isinstance(adapter, ProfileAdapter):
                raise AdapterError(f"Byline cannot change a profile on {update.platform}", retryable=False)
            try:
                # The byline says whose voice the account is: not while another policy file
                # speaks for the same platform account.
                await self._platforms.cleared(loaded, adapter=adapter)
            except AccountHeld as exc:
                raise AdapterError(exc.message, retryable=True) from None
            async with self._db.read() as txn:
                previous = tuple(await sql.previous_texts(txn, update.account))
            line = ProfileLine(
                text=text, field=_field(text), previous=previous,
                previous_fields=tuple(byline.mastodon_field(t).name for t in previous),
            )
            await self._with_retries(adapter, line)
        except DatabaseUnavailable:
            # Byline's own database, not the platform: nothing to show on the account's health.
            # The claim stays until its lease runs out, and the line is set at a tick after.
            raise
        except (AdapterError, BylineError) as exc:
            error = exc if isinstance(exc, AdapterError) else AdapterError(exc.message, retryable=True)
            await self._failed(update, error, lease_until=lease_until)
            return False
        except Exception as exc:  # a bug here must not stop the other accounts' bylines
            log.exception("profile_update_crashed")
            await self._failed(update, AdapterError(f"unexpected error: {type(exc).__name__}", retryable=True),
                               lease_until=lease_until)
            return False

        async def work(ltx: LogTxn) -> bool:
            if not await sql.done(ltx.txn, update, text=text or "", lease_until=lease_until, at=ltx.now):
                return False  # our lease ran out and another gateway set it: it records it
            await ltx.append("profile.updated", actor="system", account=update.account,
                             data={"version": update.version, "text": text, "platform": update.platform})
            return True

        recorded: bool = await self._appender.submit(work)
        if recorded:
            self._platforms.profile_problems.pop(update.account, None)
            log.info("profile_updated", text=text)
        return recorded

    async def _with_retries(self, adapter: ProfileAdapter, line: ProfileLine) -> None:
        """Ride out short blips in place (as publishing does); longer waits go back to the queue."""
        short = self._inline_wait_max

        def worth_waiting(exc: BaseException) -> bool:
            return (isinstance(exc, AdapterError) and exc.retryable and not exc.auth_failed
                    and (exc.retry_after is None or exc.retry_after <= short))

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, AdapterError) and exc.retry_after is not None:
                return exc.retry_after
            return float(min(short, 0.2 * 2 ** (state.attempt_number - 1)))

        async for attempt in AsyncRetrying(stop=stop_after_attempt(self._inline_attempts), wait=wait,
                                           retry=retry_if_exception(worth_waiting), sleep=self._sleep, reraise=True):
            with attempt:
                await adapter.set_profile_line(line)

    async def _failed(self, update: sql.Update, error: AdapterError, *, lease_until: int) -> None:
        """Put the change back for later, and say why on the account's health; its posts go on."""
        detail = error.message if not error.detail else f"{error.message}: {error.detail}"
        reason = f"the profile byline could not be set: {detail}"
        delay = error.retry_after if error.retry_after is not None else backoff_seconds(update.attempts + 1)
        if not error.retryable or error.auth_failed:
            delay = max(delay, 300.0)  # an admin has to act first: look again now and then
        next_at = now_micros(self._clock) + int(delay * _SECOND)
        async with self._db.write() as txn:
            await sql.retry(txn, update, error=reason, next_at=next_at, lease_until=lease_until)
        self._platforms.profile_problems[update.account] = reason
        logger.warning("profile_update_failed", account=update.account, version=update.version, error=detail,
                       retry_in_seconds=delay)


def _field(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    found = byline.mastodon_field(text)
    return found.name, found.value

