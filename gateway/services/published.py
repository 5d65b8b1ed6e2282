"""Published posts: deleting and revising them on their platforms.

The platform is asked first and the record follows: a post the platform would not delete or
edit stays as it was, here and there. What may be done, and what the record then says, is
``PostService``'s to decide; this service only makes the platform call between the two.

Changes of one post go to its platform one at a time, each recorded before the next is sent:
the post is held for each (``PostService.hold``, a lease in the database that every gateway
sharing it sees) before the platform is asked. Two edits sent together could otherwise both
reach the platform, and it would show one while the record and the log said the other; a
delete could be recorded between an edit's platform call and its record, which then undid it.

No change the platform may have made is left unrecorded. The change is kept with the hold, in
the post's row (``posts.held_change``): an edit's words and options (with the new alt text and
focal points it gives pictures, if any), or the deletion, with who asked and under which
policy. A revision is in the log as well before the platform is asked
(``post.revising``: its version, the salted hash of its words, what it carries): whatever
becomes of the gateway, the log holds every word the platform may show before the platform
can show it, and an auditor sees a revision sent and not yet recorded. Should the gateway stop
between the platform's answer and the record (killed, crashed, its database cut), the hold runs
out with the change still kept, and the publisher of any gateway sharing the database takes it
over (:meth:`PublishedPosts.settle`, at each of its ticks): one gateway alone, by a
compare-and-set on the hold it found run out. It settles it:

- a revision the policy in force would still publish at once (its author writing, no rule
  holding the words, no approvals, no wait) is sent again and recorded as its author's, saying
  it was ``recovered``. Sending it again is safe: an edit sets the words, so the platform shows
  them once, and the post's edit history has at most one more entry. One the policy in force
  would no longer publish at once (the account turned co-signed meanwhile, its author lost
  their role) is undone: the words recorded before are sent back, and the log says the
  revision failed (``post.revision_failed``), as it does for one the platform refused;
- a deletion is sent again (deleting twice is fine on every platform) and recorded as asked,
  naming the policy it was asked under.

Until it is settled the post takes no other change (409): a second edit would be recorded over
words the platform may not show, and a deletion could be undone by an edit still on its way.
A platform that is down, or does not answer in time, leaves the change kept and held for
another lease, and it is tried again then: nothing the author asked is lost, and nothing waits
for a later change of the same post to come right, which might never come. A platform that
refuses it for good (an answer in 4xx, the status gone) ends it: a revision failed, a deletion
let go of, the post out as the platform says.

A change whose account cannot settle it here (its policy file removed, the account moved to
another platform than the one the post went out on, its credential not readable, or one that
signs in to another account than the post's, as a Bluesky app password of another DID) is
*stranded*: said once in a warning (``post_change_stranded``: the account, the post and why,
never a credential), counted apart (``byline_post_changes_stranded``, and by account in
``/readyz``), left out of the publisher's rounds (looked at again after ``STRANDED_WAIT`` at the
latest), and settled in the first round after the account can again. Moved to another platform,
it is never sent there: the post's id there would name another post, or none. Nor is a new
change of a post on a platform its account has left asked at all (409, ``PostService.deletable``
and ``revision``).

Why in the post's row and not a queue of its own: the hold is a compare-and-set of that row,
so the change and its hold are taken, kept and let go of in one statement each, and never
disagree; and a published post holds at most one change. The publisher looks for them as it
looks for claims whose lease ran out, through an index of the few rows that hold one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Protocol, runtime_checkable

import structlog

from adapters.base import Adapter, AdapterError, DeletesByAddress, OutboundPost, PublishResult
from gateway.errors import BylineError, Code
from gateway.lifecycle import State
from gateway.policy.loader import LoadedPolicy
from gateway.services.identities import AccountHeld
from gateway.services.platforms import Platforms, another_account, credential_being_written
from gateway.services.posts import (
    Caller,
    NeverReleased,
    PostOptions,
    PostService,
    PostView,
    Published,
    Revision,
)
from gateway.storage.db import unavailable
from gateway.storage.posts import PostRecord

logger = structlog.get_logger("byline.published")

_SETTLE_PAGE: Final = 32
"""Changes one round of :meth:`PublishedPosts.settle` takes, at most: each is a platform call."""

STRANDED_WAIT: Final = timedelta(hours=1)
"""How long a stranded change is left before it is looked at again, should nobody bring its
account back: only a last resort, since each round releases those whose account is back."""

_UNDONE: Final = ("the policy in force by then would not publish these words at once: the words recorded "
                  "before were sent back")
"""What the log says of a revision the publisher undid as it settled it."""


@runtime_checkable
class Revisable(Protocol):
    """An adapter whose platform lets a published post be edited (Mastodon)."""

    async def edit(self, remote_id: str, post: OutboundPost) -> PublishResult:
        """Replace the published post's text and options."""
        ...


def _refusal(error: AdapterError, what: str) -> str:
    """What the public log says of a change the platform did not take: its kind and the
    platform's status, not the platform's answer, which may quote the words back (as
    ``publisher.public_failure`` says of a post)."""
    if error.status is not None:
        return f"the platform did not take the {what} (HTTP {error.status})"
    return f"Byline could not send the {what}"


async def _deletion(adapter: Adapter, post: PostRecord) -> None:
    """Delete ``post`` on its platform, telling an adapter that asks (``DeletesByAddress``)
    where it went out, as recorded: a Mastodon instance answers a status gone and another
    account's private one alike, and only the address tells them apart."""
    assert post.remote_id is not None, "a published post has its platform's id"
    if isinstance(adapter, DeletesByAddress):
        visibility = post.options.get("visibility")
        await adapter.delete_published(post.remote_id, url=post.remote_url, author=post.remote_author,
                                       visibility=visibility if isinstance(visibility, str) else None)
    else:
        await adapter.delete(post.remote_id)


def _refused_for_good(error: AdapterError) -> bool:
    """Whether the platform answered a change with a refusal that trying again will not mend:
    a broken credential waits for an admin, and anything unanswered may have been made."""
    return error.status is not None and not error.retryable and not error.auth_failed


def _outbound(post_id: str, *, version: int, text: str, options: PostOptions,
              pictures: tuple[tuple[str | None, str | None], ...] | None = None) -> OutboundPost:
    return OutboundPost(
        post_id=post_id, idempotency_key=f"byline-{post_id}-v{version}", text=text,
        spoiler_text=options.spoiler_text, sensitive=options.sensitive, language=options.language,
        visibility=options.visibility, redescribed=pictures,
    )


@dataclass(frozen=True, kw_only=True)
class PublishedPosts:
    """Delete a published post on its platform, or revise it there where the platform allows;
    settle the changes a gateway made there without recording them."""

    posts: PostService
    platforms: Platforms | None
    lease: timedelta = timedelta(minutes=2)
    """How long a change holds its post (the publisher's lease): the platform's call is cut off
    at half of it, so that no other gateway takes the change over while this one is on its way."""

    def _adapter(self, loaded: LoadedPolicy) -> Adapter:
        if self.platforms is None:
            raise BylineError(Code.UNAVAILABLE, "no platforms configured")
        return self.platforms.adapter_for(loaded)

    async def _cleared(self, loaded: LoadedPolicy, adapter: Adapter, *, what: str = "edit",
                       held: Published | None = None) -> None:
        """A change goes out as the account (new words, a deletion: ``what``) only while no
        other policy file speaks for its platform account (``Platforms.cleared``), as a post
        does. A deletion too: taking the account's words down is speaking for it, and a file
        that may not publish alone as the account may not unpublish alone either. ``held``:
        the post, held for the change (checked again right before it is sent), let go if not."""
        assert self.platforms is not None  # an adapter was made: there are platforms
        try:
            await self.platforms.cleared(loaded, adapter=adapter)
        except AccountHeld as exc:
            if held is not None:
                await self.posts.let_go(held, why=exc.public)
            raise BylineError(Code.UNAVAILABLE, f"the {what} was not sent: {exc.message}", retryable=True) from None
        except AdapterError as exc:
            if held is not None:
                await self.posts.let_go(held, why=_refusal(exc, what))
            done = "delete" if what == "deletion" else "edit"
            raise BylineError(Code.UNAVAILABLE, f"the platform did not {done} the post: {exc.message}",
                              retryable=exc.retryable) from None

    async def _on_platform(self, held: Published, call: Awaitable[object], *, failed: str, what: str) -> None:
        """Make one change on the platform for a post ``held`` for it. A change the platform
        refused lets go of the post; one it may have made without a word (no answer, or none
        in time, or an error of Byline's own on the way) stays kept and held: once the hold
        runs out, the publisher settles it (see the module's docstring)."""
        try:
            async with asyncio.timeout(self.lease.total_seconds() / 2):
                await call
        except TimeoutError:
            raise BylineError(
                Code.UNAVAILABLE, f"{failed}: no answer in time; {self._settled_later(what)}", retryable=True,
            ) from None
        except AdapterError as exc:
            unknown = exc.status is None and exc.retryable  # sent, and not answered
            if not unknown:
                await self.posts.let_go(held, why=_refusal(exc, what))
            later = f"; {self._settled_later(what)}" if unknown else ""
            raise BylineError(
                Code.UNAVAILABLE, f"{failed}: {exc.message}{later}", retryable=exc.retryable,
            ) from None

    def _settled_later(self, what: str) -> str:
        return (f"Byline sends the {what} again once the post's hold runs out, in "
                f"{round(self.lease.total_seconds())} seconds, and records it")

    async def delete(self, caller: Caller, post_id: str) -> PostView:
        """Delete a published post on its platform; the record of it stays."""
        post = await self.posts.deletable(caller, post_id)
        adapter = self._adapter(post.loaded)
        assert post.record.remote_id is not None, "a published post has its platform's id"
        await self._cleared(post.loaded, adapter, what="deletion")
        held = await self.posts.hold(caller, post, lease=self.lease)
        # Again, held: a file come into force while the hold was written is not missed.
        await self._cleared(post.loaded, adapter, what="deletion", held=held)
        await self._on_platform(held, _deletion(adapter, post.record),
                                failed="the platform did not delete the post", what="deletion")
        return await self.posts.record_deleted(caller, post_id)

    async def edit(self, caller: Caller, post_id: str, *, text: Any, of_version: int | None = None) -> PostView:
        """New words for a post, whatever its state: a post on its way is edited
        (``PostService.edit``); a published one is revised (:meth:`revise`), at once where its
        policy would publish the words at once, else through its pending revision."""
        post = await self.posts.view(caller, post_id, history=False)
        if post.state != State.PUBLISHED.value:
            return await self.posts.edit(caller, post_id, text=text, of_version=of_version)
        if of_version is not None and of_version != post.version:
            raise BylineError(Code.CONFLICT, "the post changed meanwhile; reload it and try again",
                              version=post.version)
        return await self.revise(caller, post_id, text=text, held=True)

    async def revise(
        self, caller: Caller, post_id: str, *, text: Any, options: PostOptions | None = None,
        redescribed: tuple[tuple[str, str | None, str | None], ...] = (), held: bool = False,
    ) -> PostView:
        """The author edits a published post on its platform, where the platform allows it and
        the policy would publish the new words at once (``PostService.revision``); ``redescribed``:
        new alt text and focal points of its pictures (upload, description, focus), sent with them.
        With ``held``, words the policy would not publish at once become the post's pending
        revision, whose view is returned: made on the platform once released (:meth:`release`)."""
        revision = await self.posts.revision(caller, post_id, text=text, options=options, redescribed=redescribed,
                                             held=self._editable if held else None)
        if isinstance(revision, PostView):
            return revision
        return await self._send_revision(caller, revision)

    def _editable(self, loaded: LoadedPolicy) -> Adapter:
        """The adapter of ``loaded``'s platform, or a 422 where it cannot edit a published post."""
        adapter = self._adapter(loaded)
        if not isinstance(adapter, Revisable):
            raise BylineError(Code.VALIDATION, f"{loaded.policy.platform} does not allow editing a published post")
        return adapter

    async def _send_revision(self, caller: Caller, revision: Revision) -> PostView:
        """Make ``revision`` on the platform, the post held for it, and record it."""
        adapter = self._editable(revision.loaded)
        assert isinstance(adapter, Revisable)
        await self._cleared(revision.loaded, adapter)
        assert revision.record.remote_id is not None, "a published post has its platform's id"
        held = await self.posts.hold_revision(caller, revision, lease=self.lease)
        await self._cleared(revision.loaded, adapter, held=held)  # again, as for a deletion
        await self._on_platform(held, adapter.edit(revision.record.remote_id, _outbound(
            revision.record.id, version=held.version, text=held.shown, options=held.options, pictures=held.pictures,
        )), failed="the platform did not edit the post", what="edit")
        return await self.posts.record_revised(caller, held)

    async def release(self) -> int:
        """Make the pending revisions whose approvals or cooling-off let them out now: each edits
        its published post with exactly the words approved, recorded as the author's revision
        naming the pending revision (``post.revising``, ``post.revised``). How many were made.
        The publisher runs it at each of its ticks, with :meth:`settle`; one stopped on the way
        is settled as any revision is, its pending revision sent again as approved."""
        due = await self.posts.revisions_due(limit=_SETTLE_PAGE)
        made = 0
        for pending in due:
            log = logger.bind(post_id=pending.revises, revision=pending.id, account=pending.account)
            try:
                revision = await self.posts.approved_revision(pending)
                if revision is None:
                    log.warning("revision_not_released")
                    continue
                await self._releasable(revision)
                await self._send_revision(Caller(user=revision.record.author), revision)
            except NeverReleased as exc:  # failed, saying why: never taken up again
                if await self.posts.fail_revision(pending, exc):
                    log.warning("revision_failed", error=exc.why)
                continue
            except BylineError as exc:  # the platform down, the post held: again at the next tick
                log.warning("revision_not_released", error=exc.message)
                continue
            log.info("revision_released")
            made += 1
        return made

    async def _releasable(self, revision: Revision) -> None:
        """Raise :class:`NeverReleased` where ``revision`` can never be made however long it waits:
        its account's policy now names a platform that does not edit published posts, or another
        platform account than the one its post went out on (whose id it would edit)."""
        try:
            self._editable(revision.loaded)
        except BylineError as exc:
            if exc.code is Code.VALIDATION:
                raise NeverReleased(exc.message, policy_sha256=revision.loaded.sha256) from None
            raise
        went = await self.posts.went_out_on(revision.record)
        if went is not None and went.left(revision.loaded.policy):
            raise NeverReleased(f"{revision.record.account} is no longer on {went}, where the post is",
                                policy_sha256=revision.loaded.sha256)

    # -- settling what a gateway did not record --------------------------------------------

    async def settle(self) -> int:
        """Settle the changes of published posts whose hold ran out before they were recorded
        (see the module's docstring): how many were settled. The publisher runs it."""
        await self.release()
        for stranded in await self.posts.stranded_changes():
            if await self._stranded(stranded) is None:  # its account is back: this very round
                await self.posts.release_stranded_change(stranded)
        due = await self.posts.changes_due(limit=_SETTLE_PAGE)
        if not due:
            return 0
        outcomes = await asyncio.gather(*(self._settle(post) for post in due), return_exceptions=True)
        for post, outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                if unavailable(outcome):  # no bug: the next round tries again
                    logger.warning("change_not_settled", post_id=post.id, account=post.account,
                                   error="database_unavailable")
                else:
                    logger.error("change_settle_failed", post_id=post.id, account=post.account, exc_info=outcome)
        return sum(outcome is True for outcome in outcomes)

    async def _settle(self, post: PostRecord) -> bool:
        """Take over and settle one change whose hold ran out: True once it is settled."""
        change = post.held_change or {}
        kind = change.get("change")
        log = logger.bind(post_id=post.id, account=post.account, change=kind)
        if kind not in ("revise", "delete") or post.remote_id is None:
            log.error("held_change_unknown")  # a later Byline's, say: left for it
            return False
        why = await self._stranded(post)
        if why is not None:
            if await self.posts.strand_change(post, wait=STRANDED_WAIT):  # said once, by one gateway
                log.warning("post_change_stranded", reason=why)
            return False
        held = await self.posts.take_over(post, lease=self.lease)
        if held is None:
            return False  # another gateway settles it, or its account's policy went meanwhile
        what = "edit" if kind == "revise" else "deletion"
        try:
            adapter = self._adapter(held.loaded)
            if kind == "delete":
                # Not while another policy file speaks for the account's platform account (see
                # ``_cleared``): the deletion stays kept and the post held for it, settled at a
                # later round once the files are put right.
                await self._cleared(held.loaded, adapter, what="deletion")
                await self._settling_call(_deletion(adapter, post))
                await self.posts.settle_deleted(held)
                log.info("change_settled", outcome="deleted")
                return True
            if not isinstance(adapter, Revisable):
                raise BylineError(Code.UNAVAILABLE, f"{held.loaded.policy.platform} no longer edits posts")
            # Either edit below sends words as the account: not while another policy file speaks
            # for its platform account. The change stays kept and the post held for it, settled
            # at a later round once the files are put right.
            await self._cleared(held.loaded, adapter)
            revision = await self.posts.settling(held)
            if revision is not None:
                await self._settling_call(adapter.edit(post.remote_id, _outbound(
                    post.id, version=revision.version, text=revision.shown, options=revision.options,
                    pictures=revision.pictures)))
                await self.posts.record_revised(Caller(user=post.author), revision, recovered=True)
                log.info("change_settled", outcome="revised", version=revision.version)
                return True
            await self._settling_call(adapter.edit(post.remote_id, _outbound(
                post.id, version=post.version, text=post.published_text or post.text,
                options=PostOptions.from_json(post.options), pictures=await self.posts.pictures_before(held))))
            await self.posts.let_go(held, why=_UNDONE)
            log.info("change_settled", outcome="words_sent_back", version=post.version)
            return True
        except AdapterError as exc:
            if _refused_for_good(exc):
                await self.posts.let_go(held, why=_refusal(exc, what))
                log.warning("change_refused", status=exc.status, error=exc.message)
                return True
            log.warning("change_not_settled", error=exc.message)  # again once the hold runs out
        except TimeoutError:
            log.warning("change_not_settled", error="no answer in time")
        except BylineError as exc:  # no credential, the policy changing, the hold lost: again later
            log.warning("change_not_settled", error=exc.message)
        return False

    async def _stranded(self, post: PostRecord) -> str | None:
        """Why the account of ``post`` cannot settle its kept change here (never a secret), or
        None when it can, or may in a moment (a credential caught mid-rewrite)."""
        loaded = self.posts.policies.get(post.account)
        if loaded is None:
            return f"{post.account} has no policy in force: nothing may reach its platform"
        went = await self.posts.went_out_on(post)
        if went is not None and went.left(loaded.policy):
            return f"{post.account} is no longer on {went}, where the post is"
        if self.platforms is None:
            return None
        try:
            adapter = self.platforms.adapter_for(loaded)
        except BylineError as exc:
            if credential_being_written(exc):
                return None
            return f"{post.account}'s credential cannot be read: {exc.message}"
        return await another_account(adapter, post.account, post.remote_id)

    async def _settling_call(self, call: Awaitable[object]) -> None:
        """One platform call of a settlement, cut off at half the hold, as a change's is."""
        async with asyncio.timeout(self.lease.total_seconds() / 2):
            await call
