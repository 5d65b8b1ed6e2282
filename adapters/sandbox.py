"""The built-in sandbox platform: publishes into a timeline the gateway itself keeps.

It lets a demo, or a test, follow a post all the way out without any real platform. The
adapter sees only a small ``SandboxStore`` protocol, never the gateway's database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import regex

from adapters.base import (
    NO_GATES,
    AccountInfo,
    AdapterConfig,
    AdapterError,
    Carries,
    OutboundPost,
    PublishResult,
    ready,
)

TEXT_LIMIT = 500
# The sandbox counts as Bluesky does: user-perceived characters (UAX #29 grapheme clusters).
_GRAPHEME = regex.compile(r"\X")


@dataclass(frozen=True, kw_only=True)
class SandboxRecord:
    """One post on the sandbox timeline."""

    remote_id: str
    account: str


class SandboxStore(Protocol):
    """Where sandbox posts live; idempotency keys are unique there."""

    async def find(self, key: str) -> SandboxRecord | None:
        """The post made with this idempotency key, if any."""
        ...

    async def create(self, *, account: str, post: OutboundPost) -> SandboxRecord:
        """Add a post; a second call with the same key returns the first post."""
        ...

    async def delete(self, remote_id: str) -> None:
        """Take a post off the timeline; deleting twice is fine."""
        ...


class SandboxAdapter:
    """Publishes to the sandbox timeline of one account."""

    platform = "sandbox"
    carries = Carries(name="Sandbox")

    def __init__(self, config: AdapterConfig, store: SandboxStore, *, base_url: str) -> None:
        self._config = config
        self._store = store
        self._base_url = base_url.rstrip("/")

    def _result(self, record: SandboxRecord) -> PublishResult:
        return PublishResult(
            remote_id=record.remote_id,
            url=f"{self._base_url}/sandbox/{record.account}#post-{record.remote_id}",
        )

    async def publish(self, post: OutboundPost) -> PublishResult:
        """Add the post to the timeline, once per idempotency key."""
        if not post.text.strip():
            raise AdapterError("text is empty", retryable=False, status=422)
        if sum(1 for _ in _GRAPHEME.finditer(post.text)) > TEXT_LIMIT:
            raise AdapterError(
                f"text is longer than {TEXT_LIMIT} characters", retryable=False, status=422
            )
        if not self.carries.keeps_gates(post.gates):
            raise AdapterError(NO_GATES.format(name=self.carries.name), retryable=False, status=422)
        await ready(post)
        return self._result(await self._store.create(account=self._config.account, post=post))

    async def find_existing(self, post: OutboundPost) -> PublishResult | None:
        """The post already made with this idempotency key, if any."""
        record = await self._store.find(post.idempotency_key)
        return self._result(record) if record else None

    async def delete(self, remote_id: str) -> None:
        """Remove the post from the timeline."""
        await self._store.delete(remote_id)

    async def verify_credentials(self) -> AccountInfo:
        """The sandbox needs no credentials: the account is who the policy says."""
        return AccountInfo(
            remote_id=self._config.account,
            handle=self._config.handle or self._config.account,
            url=f"{self._base_url}/sandbox/{self._config.account}",
        )
