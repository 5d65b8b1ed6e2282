"""Published posts: deleting and revising them on their platforms.

The platform is asked first and the record follows: a post the platform would not delete or
edit stays as it was, here and there. What may be done, and what the record then says, is
``PostService``'s to decide; this service only makes the platform call between the two.

Changes of one post go to its platform one at a time, each recorded before the next is sent:
the post is held for each (``PostService.hold``, a lease in the database that every gateway
sharing it sees) before the platform is asked. Two edits sent together could otherwise both
reach the platform, and it would show one while the record and the log said the other; a
delete could be recorded between an edit's platform call and its record, which then undid it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from adapters.base import Adapter, AdapterError, OutboundPost, PublishResult
from gateway.errors import BylineError, Code
from gateway.policy.loader import LoadedPolicy
from gateway.services.platforms import Platforms
from gateway.services.posts import Caller, PostOptions, PostService, PostView, Published


@runtime_checkable
class Revisable(Protocol):
    """An adapter whose platform lets a published post be edited (Mastodon)."""

    async def edit(self, remote_id: str, post: OutboundPost) -> PublishResult:
        """Replace the published post's text and options."""
        ...


@dataclass(frozen=True, kw_only=True)
class PublishedPosts:
    """Delete a published post on its platform, or revise it there where the platform allows."""

    posts: PostService
    platforms: Platforms | None
    lease: timedelta = timedelta(minutes=2)
    """How long a change holds its post (the publisher's lease): the platform's call is cut off
    at half of it, so that no other change can take the post while this one is on its way."""

    def _adapter(self, loaded: LoadedPolicy) -> Adapter:
        if self.platforms is None:
            raise BylineError(Code.UNAVAILABLE, "no platforms configured")
        return self.platforms.adapter_for(loaded)

    async def _on_platform(self, held: Published, call: Awaitable[object], *, failed: str) -> None:
        """Make one change on the platform for a post ``held`` for it. A change the platform
        refused lets go of the post; one it may have made without a word (no answer, or none
        in time) keeps it held until the lease runs out, so that no other change overtakes it
        there: the next one then sends the post's words whole."""
        try:
            async with asyncio.timeout(self.lease.total_seconds() / 2):
                await call
        except TimeoutError:
            raise BylineError(
                Code.UNAVAILABLE, f"{failed}: no answer in time; try again in {self._lease_text()}",
                retryable=True,
            ) from None
        except AdapterError as exc:
            unknown = exc.status is None and exc.retryable  # sent, and not answered
            if not unknown:
                await self.posts.let_go(held)
            later = f"; try again in {self._lease_text()}" if unknown else ""
            raise BylineError(
                Code.UNAVAILABLE, f"{failed}: {exc.message}{later}", retryable=exc.retryable,
            ) from None
        except Exception:
            await self.posts.let_go(held)
            raise

    def _lease_text(self) -> str:
        return f"{round(self.lease.total_seconds())} seconds"

    async def delete(self, caller: Caller, post_id: str) -> PostView:
        """Delete a published post on its platform; the record of it stays."""
        post = await self.posts.deletable(caller, post_id)
        adapter = self._adapter(post.loaded)
        assert post.record.remote_id is not None, "a published post has its platform's id"
        held = await self.posts.hold(post, lease=self.lease)
        await self._on_platform(held, adapter.delete(post.record.remote_id),
                                failed="the platform did not delete the post")
        return await self.posts.record_deleted(caller, post_id)

    async def revise(
        self, caller: Caller, post_id: str, *, text: Any, options: PostOptions | None = None
    ) -> PostView:
        """The author edits a published post on its platform, where the platform allows it and
        the policy would publish the new words at once (``PostService.revision``)."""
        revision = await self.posts.revision(caller, post_id, text=text, options=options)
        adapter = self._adapter(revision.loaded)
        if not isinstance(adapter, Revisable):
            raise BylineError(
                Code.VALIDATION, f"{revision.loaded.policy.platform} does not allow editing a published post"
            )
        chosen = revision.options
        assert revision.record.remote_id is not None, "a published post has its platform's id"
        held = await self.posts.hold(revision, lease=self.lease)
        await self._on_platform(held, adapter.edit(revision.record.remote_id, OutboundPost(
            post_id=post_id, idempotency_key=f"byline-{post_id}-v{revision.version}", text=revision.shown,
            spoiler_text=chosen.spoiler_text, sensitive=chosen.sensitive, language=chosen.language,
            visibility=chosen.visibility,
        )), failed="the platform did not edit the post")
        return await self.posts.record_revised(caller, held)
