"""The text a post sends when it next goes out: what its approvers approve, and what its claim sends.

Approvers approve the exact text that goes out: the post's words with the disclosure line its
policy asks for (``gateway.policy.engine.disclosed_text``), or, for a post sent before whose own
words and content are still those sent, the text that send went out with (it is sent again
under its key, whatever the disclosure now: see ``gateway.services.publisher.claim_key``). Each
approval keeps the hash of that text (``approvals.text_sha256``), and counts only for it: once
the policy's disclosure line changes the text, the post is asked for its approvals again
(``gateway.services.authorization.disclosure_cause``). The one place this text is worked out,
for the approval, the claim, the policy reload and the retry alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.policy.announce import ANNOUNCER
from gateway.policy.engine import disclosed_text
from gateway.policy.models import Policy
from gateway.services.content import stored_content_sha256
from gateway.storage import log as log_sql
from gateway.storage import posts as sql
from gateway.storage.db import Txn


def idempotency_key(post_id: str, version: int) -> str:
    """The key a version of a post is first sent with (see ``publisher.claim_key``)."""
    return f"byline-{post_id}-v{version}"


def text_sha256(text: str) -> str:
    """The hash an approval keeps of the text it was given for."""
    return hashlib.sha256(text.encode()).hexdigest()


Claims = Mapping[str, dict[str, Any] | None]
"""Posts' last claims read already (``log.last_claims``, for a page of posts), by post id."""


def reads_last_claim(row: sql.PostRecord) -> bool:
    """Whether :func:`as_last_sent` may read ``row``'s last claim: it was claimed, under the key
    of a version before its own (the words it sends now are not that claim's, or are)."""
    return (row.published_text is not None and row.idempotency_key is not None
            and row.idempotency_key != idempotency_key(row.id, row.version))


async def as_last_sent(txn: Txn, row: sql.PostRecord, *, content: str | None, claims: Claims | None = None) -> bool:
    """Whether ``row`` is, in its own words and what it carries, the post its last claim sent
    (``published_text``, under ``idempotency_key``): claimed at this version (only a claim at a
    version chooses the version's own key, and a version's words never change), or at an
    earlier one whose words and content its version keeps (a version that only decided it
    again: held after its recovery missed it on the platform, its approvals asked anew). An
    edit since is another post. ``claims``: last claims read already, this one's among them."""
    if row.idempotency_key == idempotency_key(row.id, row.version):
        return True
    claim = claims[row.id] if claims is not None and row.id in claims else await log_sql.last_claim(txn, row.id)
    version = None if claim is None else claim.get("version")
    if claim is None or type(version) is not int:
        return False
    return version == row.version or (
        claim.get("content_sha256") == content and await sql.version_text(txn, row.id, version) == row.text
    )


def with_disclosure(row: sql.PostRecord, policy: Policy) -> str:
    """``row``'s words with the disclosure line ``policy`` asks for: what a post never sent goes
    out with (the policy file's own announcement carries none)."""
    if row.author == ANNOUNCER:
        return row.text
    return disclosed_text(policy, author=row.author, text=row.text, editors=row.editors,
                          suggested_by=row.suggested_by)


async def sends(
    txn: Txn, row: sql.PostRecord, policy: Policy, *, content: Callable[[], Awaitable[str | None]],
    stale: bool = False, claims: Claims | None = None,
) -> tuple[str, bool]:
    """The text ``row`` goes out with under ``policy``, and whether it is sent again as its last
    claim sent it (``stale``: a claim whose lease ran out, taken up again). ``content``: what
    it carries besides its words (``gateway.services.content``), read only when wanted.

    Sent before, and not recorded out (deferred: the platform's answer may have been lost after
    it made the post; or held after its recovery missed it there, and approved again as a new
    version), its own words and content unchanged, but the words it would send other now (the
    policy's disclosure line changed): it sends again the words its key went out with, as a
    recovered claim does: new words under that key would be answered with the post made from
    the first (Mastodon's ``Idempotency-Key``), and recorded as published words the platform
    does not show; under a new key they could be a second copy beside it. (``published_text``
    is None only for a post never claimed: empty words were sent too, a picture alone, and a
    line added since must not go out under that send's key.)"""
    text = with_disclosure(row, policy)
    again = stale or bool(
        row.published_text is not None and text != row.published_text and row.idempotency_key is not None
        and await as_last_sent(txn, row, content=await content(), claims=claims)
    )
    if again and row.published_text is not None:
        text = row.published_text
    return text, again


async def outgoing_text(
    txn: Txn, row: sql.PostRecord, policy: Policy, *, stale: bool = False, claims: Claims | None = None,
) -> str:
    """The text ``row`` would go out with under ``policy`` (see :func:`sends`), what it carries
    besides read only when wanted: what its approvers are shown, and approve. ``claims``: as
    for :func:`as_last_sent`."""

    async def content() -> str | None:
        return await stored_content_sha256(txn, row.options, salt=row.content_salt, scheme=row.content_scheme)

    text, _ = await sends(txn, row, policy, content=content, stale=stale, claims=claims)
    return text


async def outgoing_sha256(txn: Txn, row: sql.PostRecord, policy: Policy, *, stale: bool = False) -> str:
    """The hash of the text ``row`` would go out with under ``policy`` (:func:`outgoing_text`):
    what an approval given now is given for, and what the approvals it has must have been given for."""
    return text_sha256(await outgoing_text(txn, row, policy, stale=stale))
