"""Voice-change announcements: a short post on the account itself when its voice changes.

An account whose policy has ``announce: {voice_changes: true}``, or had it until the version
being recorded (its followers were promised), gets a post, in the same transaction that
records a policy version changing its voice (tier, owner, writers, suggesters, approvers or
the approvals asked), or stopping the announcements the policy it replaces asked for (the
promise ended is told; one post where one version does both), authored in the log by the
policy file (``policy-file``), scheduled to go out at once through the publisher (its lease
and idempotency key make it go out once), and never held for approval: the admin's policy
file is its authorisation, and its ``post.submitted`` entry names the version it announces
and what it announces of it (``data.announces``: ``changed``, the parts of the voice and
``announce`` for the promise ended), which ``byline audit verify`` checks against the policy
entry just before it.

Since the recording transaction runs once per version across replicas, so does this: two
gateways seeing one change make one announcement, and a file edited back and forth between
two reloads announces only the versions that were recorded.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from gateway.audit.appender import LogTxn
from gateway.lifecycle import State
from gateway.policy import announce as voice
from gateway.policy.loader import LoadedPolicy
from gateway.policy.text import published_length
from gateway.services.posts import new_post_id
from gateway.storage import policies as policy_sql
from gateway.storage import posts as sql
from gateway.types import AccountName, Micros, PostId, UserName, iso

logger = structlog.get_logger("byline.announcements")

ANNOUNCER = voice.ANNOUNCER


def public_page(base: str, account: str) -> str:
    """The account's public page on Byline, where the announcement links."""
    return f"{base.rstrip('/')}/@{account}"


def record_url(base: str, post_id: str) -> str:
    """The public record of a post: its byline and the log entries that prove it (``/audit``)."""
    return f"{base.rstrip('/')}/audit?kind=post&q={post_id}"


def is_announcement(author: str) -> bool:
    """Whether a post with this author is the policy file's own announcement."""
    return author == ANNOUNCER


async def announce_change(
    ltx: LogTxn, *, account: str, loaded: LoadedPolicy | None, head: policy_sql.Head | None, version: int,
    public_url: str,
) -> str | None:
    """In the transaction recording ``version`` of ``account``'s policy (``loaded``; ``head``
    is the version it replaces): schedule the announcement of what it changes that followers
    are told (``gateway.policy.announce.announced``): its change of voice, where it or the
    policy it replaces asks for announcements, and the end of the announcements, where it
    stops those the policy it replaces asked for. Returns the post's id, or None."""
    if loaded is None:
        # A removal: no policy to post under (the account's credentials and platform are in
        # it). A promise it ended is told when the file comes back without it (see below).
        return None
    policy = loaded.policy
    # A policy put back after its removal is no first load: the account spoke through Byline
    # in the voice removed (the removal's recorded summary), and coming back in another is a
    # change of voice, or deleting the file and adding it back would change one unannounced.
    kept = (head.summary if head is not None else None if version == 1
            else await policy_sql.summary_before(ltx.txn, account, version))
    before: dict[str, Any] = json.loads(kept) if kept else {}
    if not before:
        return None  # a first load: the account spoke before Byline
    # The followers of a policy that asked were promised they would be told. A version that
    # stops asking keeps the promise by saying it ended, in the post of its own change of voice
    # if it makes one (one edit that changes the voice and drops ``announce``) or in a post of
    # its own (an edit that only drops it, or a removal, then the file back without it): else
    # dropping it first would be the way to change the voice silently later. Only a policy that
    # asks for none replacing one that asked for none announces nothing.
    summary = policy.summary()
    changed = voice.announced(before, summary)
    if not changed:
        return None
    # The words: the policy's own template for a change of voice it asks to announce; the
    # default words where the promise is withdrawn. The template withdrawn is in no recorded
    # summary (``announce: true`` is all a summary keeps), a removal keeps no text, and that
    # template was checked to fit only the voice it was written for.
    own = policy.announce.template if policy.announce is not None else voice.DEFAULT_TEMPLATE
    template = voice.template_for(changed, own)
    post_id = new_post_id()
    text = voice.fitted(template, fits=lambda words: published_length(policy.platform, words) <= policy.text_limit,
                        account=account, handle=policy.handle, summary=summary,
                        url=public_page(public_url, account), version=version)
    await sql.insert_post(ltx.txn, sql.PostRecord(
        id=PostId(post_id), account=AccountName(account), author=UserName(ANNOUNCER), state=State.SCHEDULED.value,
        version=1, text=text, publish_at=Micros(ltx.now), created_at=Micros(ltx.now), updated_at=Micros(ltx.now),
    ))
    await sql.insert_version(ltx.txn, post_id=post_id, version=1, text=text, editor=ANNOUNCER, at=ltx.now, options={})
    await ltx.append(
        "post.submitted", actor=ANNOUNCER, account=account, post=post_id,
        data={
            "version": 1, "text_hash": ltx.commit_text(text), "state": State.SCHEDULED.value, "reasons": [],
            "approvers": [], "required": 0, "publish_at": iso(ltx.now), "expires_at": None,
            "suggested_by": None, "adopted_from": None, "policy_sha256": loaded.sha256,
            "content_sha256": None,  # words alone (gateway.services.content)
            "announces": {"version": version, "policy_sha256": loaded.sha256, "changed": changed},
        },
    )
    logger.info("voice_change_announced", account=account, version=version, post_id=post_id, changed=changed)
    return post_id
