"""Published posts: deleting and revising them on their platforms.

The platform is asked first and the record follows: a post the platform would not delete or
edit stays as it was, here and there. What may be done, and what the record then says, is
``PostService``'s to decide; this service only makes the platform call between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from adapters.base import Adapter, AdapterError, OutboundPost, PublishResult
from gateway.errors import BylineError, Code
from gateway.policy.loader import LoadedPolicy
from gateway.services.platforms import Platforms
from gateway.services.posts import Caller, PostOptions, PostService, PostView


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

    def _adapter(self, loaded: LoadedPolicy) -> Adapter:
        if self.platforms is None:
            raise BylineError(Code.UNAVAILABLE, "no platforms configured")
        return self.platforms.adapter_for(loaded)

    async def delete(self, caller: Caller, post_id: str) -> PostView:
        """Delete a published post on its platform; the record of it stays."""
        post = await self.posts.deletable(caller, post_id)
        adapter = self._adapter(post.loaded)
        assert post.record.remote_id is not None, "a published post has its platform's id"
        try:
            await adapter.delete(post.record.remote_id)
        except AdapterError as exc:
            raise BylineError(
                Code.UNAVAILABLE, f"the platform did not delete the post: {exc.message}",
                retryable=exc.retryable,
            ) from None
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
        try:
            await adapter.edit(revision.record.remote_id, OutboundPost(
                post_id=post_id, idempotency_key=f"byline-{post_id}-v{revision.version}", text=revision.shown,
                spoiler_text=chosen.spoiler_text, sensitive=chosen.sensitive, language=chosen.language,
                visibility=chosen.visibility,
            ))
        except AdapterError as exc:
            raise BylineError(
                Code.UNAVAILABLE, f"the platform did not edit the post: {exc.message}", retryable=exc.retryable,
            ) from None
        return await self.posts.record_revised(caller, revision)
