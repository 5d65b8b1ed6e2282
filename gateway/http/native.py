"""The native JSON API: ``/v1/…``. Each handler parses, makes one service call, and answers."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.appkeys import ACCOUNTS, POSTS, PUBLISHED, REPLIES
from gateway.errors import BylineError, Code
from gateway.http.common import authenticated, parse, read_json
from gateway.services.posts import PostView
from gateway.types import iso

routes = web.RouteTableDef()


def post_json(post: PostView) -> dict[str, Any]:
    """The JSON shape of a post in the native API; versions, approvals and events when read one
    at a time."""
    out: dict[str, Any] = {
        "id": post.id,
        "account": post.account,
        "author": post.author,
        "editors": list(post.editors),
        "state": post.state,
        "text": post.text,
        "display_text": post.display_text,
        "sent_text": post.sent_text,
        "version": post.version,
        "options": dict(post.options),
        "publish_at": iso(post.publish_at),
        "expires_at": iso(post.expires_at),
        "reasons": [dict(r) for r in post.reasons],
        "approvers": list(post.approvers),
        "approvals_required": post.approvals_required,
        "approvals_needed": post.approvals_needed,
        "approved_by": list(post.approved_by),
        "remote": {"id": post.remote_id, "url": post.remote_url} if post.remote_id else None,
        "suggested_by": post.suggested_by,
        "adopted_from": post.adopted_from,
        "adopted_into": post.adopted_into,
        "revises": post.revises,
        "attempts": post.attempts,
        "last_error": post.last_error,
        "created_at": iso(post.created_at),
        "updated_at": iso(post.updated_at),
    }
    if post.versions is not None:
        out["versions"] = [
            {"version": v.version, "text": v.text, "editor": v.editor, "at": iso(v.at)}
            for v in post.versions
        ]
    if post.approvals is not None:
        out["approvals"] = [
            {"approver": d.approver, "decision": d.decision, "reason": d.reason,
             "version": d.version, "at": iso(d.at), "current": d.current}
            for d in post.approvals
        ]
    if post.events is not None:
        out["events"] = [
            {"index": e.index, "type": e.type, "actor": e.actor, "ts": e.ts, "data": e.data}
            for e in post.events
        ]
    return out


def _answer(post: PostView, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(post_json(post), status=status, headers=headers)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SubmitBody(_Body):
    """``POST /v1/posts``."""

    account: str = Field(min_length=1, max_length=64)
    text: str = Field(max_length=100_000)
    publish_at: datetime | None = Field(default=None, strict=False)
    reply_to: str | None = Field(default=None, max_length=512)
    """The platform's id of the status this one answers."""
    reply_to_post: str | None = Field(default=None, pattern=r"^[0-9]{1,24}$")
    """Byline's id of the account's post this one answers, out or not yet: a reply to a post
    not out yet waits for it, and goes out as a reply to where it went."""
    spoiler_text: str | None = Field(default=None, max_length=1000)
    sensitive: bool = False
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    visibility: Literal["public", "unlisted", "private", "direct"] | None = None

    @field_validator("publish_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("publish_at needs a time zone, for example 2026-01-01T12:00:00Z")
        return value


class ReasonBody(_Body):
    """``/dismiss``."""

    reason: str | None = Field(default=None, max_length=2000)


class EmptyBody(_Body):
    """``/cancel`` and ``/retry``: nothing to say, and nothing else accepted."""


class DecisionBody(_Body):
    """``/approve``: the version the approver saw (or ``If-Match``)."""

    version: int | None = Field(default=None, ge=1)


class RejectBody(DecisionBody):
    """``/reject``: the version the approver saw, and why."""

    reason: str | None = Field(default=None, max_length=2000)


_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,18})"?\s*$')
_POST_ID = re.compile(r"[0-9]{1,24}")


def _decided_version(request: web.Request, body: DecisionBody) -> int | None:
    """The version an approve, reject, adopt or edit names: in the body, or as ``If-Match: "N"``."""
    header = request.headers.get("If-Match")
    if header is None:
        return body.version
    match = _ETAG.match(header)
    if match is None:
        raise BylineError(Code.VALIDATION, 'If-Match must name one version of the post, such as "3"',
                          field="If-Match")
    version = int(match.group(1))
    if body.version is not None and body.version != version:
        raise BylineError(Code.VALIDATION, "the body and If-Match name different versions", field="version")
    return version


class EditBody(DecisionBody):
    """``PATCH /v1/posts/{id}``: the new text, and the version it was written from (or
    ``If-Match``), so that an edit from a stale copy is refused (409) rather than written over
    a later version's words. Without one, the edit is made on whatever version is current."""

    text: str = Field(max_length=100_000)


class AdoptBody(DecisionBody):
    """``/adopt``: the version of the suggestion the writer read (or ``If-Match``), optionally
    with the writer's own wording."""

    text: str | None = Field(default=None, max_length=100_000)


def _post_id(request: web.Request) -> str:
    post_id = request.match_info["id"]
    if not post_id.isdigit() or len(post_id) > 24:
        raise BylineError(Code.NOT_FOUND, f"no post {post_id}")
    return post_id


@routes.post("/v1/posts")
async def submit(request: web.Request) -> web.Response:
    """Submit a post for an account."""
    caller = await authenticated(request, "write:statuses")
    body = parse(SubmitBody, await read_json(request))
    replies = await request.app[REPLIES].named(caller, body.account, reply_to=body.reply_to,
                                               reply_to_post=body.reply_to_post)
    options = replace(replies, spoiler_text=body.spoiler_text, sensitive=body.sensitive,
                      language=body.language, visibility=body.visibility)
    post = await request.app[POSTS].submit(
        caller, account=body.account, text=body.text, publish_at=body.publish_at, options=options
    )
    return _answer(post, status=201)


@routes.get("/v1/posts")
async def list_posts(request: web.Request) -> web.Response:
    """Posts the caller may see, newest first; filter by account and state."""
    caller = await authenticated(request, "read:statuses")
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise BylineError(Code.VALIDATION, "limit must be a whole number", field="limit") from None
    if not 1 <= limit <= 200:
        raise BylineError(Code.VALIDATION, "limit must be between 1 and 200", field="limit")
    before = request.query.get("before")
    if before is not None and not _POST_ID.fullmatch(before):
        # Ids are compared as text: anything else would page from nowhere in particular.
        raise BylineError(Code.VALIDATION, "before must be the id of a post (digits only)", field="before")
    posts = await request.app[POSTS].list(
        caller, account=request.query.get("account"), state=request.query.get("state"),
        limit=limit, before=before,
    )
    return web.json_response({"posts": [post_json(p) for p in posts]})


@routes.get("/v1/posts/{id}")
async def get_post(request: web.Request) -> web.Response:
    """One post, with versions, approvals, reasons and events."""
    caller = await authenticated(request, "read:statuses")
    post = await request.app[POSTS].view(caller, _post_id(request))
    # The version is the post's entity tag: an approver sends it back with If-Match.
    return _answer(post, headers={"ETag": f'"{post.version}"'})


@routes.patch("/v1/posts/{id}")
async def edit_post(request: web.Request) -> web.Response:
    """A new version of the text; of a published post, made on its platform at once, or held as
    its pending revision (answered with that revision) where its policy holds the words."""
    caller = await authenticated(request, "write:statuses")
    body = parse(EditBody, await read_json(request))
    version = _decided_version(request, body)
    return _answer(await request.app[PUBLISHED].edit(caller, _post_id(request), text=body.text, of_version=version))


@routes.post("/v1/posts/{id}/approve")
async def approve(request: web.Request) -> web.Response:
    """Approve a held post."""
    caller = await authenticated(request)
    body = parse(DecisionBody, await read_json(request, required=False))
    version = _decided_version(request, body)
    return _answer(await request.app[POSTS].approve(caller, _post_id(request), version=version))


@routes.post("/v1/posts/{id}/reject")
async def reject(request: web.Request) -> web.Response:
    """Reject a held post, with a reason."""
    caller = await authenticated(request)
    body = parse(RejectBody, await read_json(request, required=False))
    version = _decided_version(request, body)
    return _answer(
        await request.app[POSTS].reject(caller, _post_id(request), version=version, reason=body.reason)
    )


@routes.post("/v1/posts/{id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    """The author takes the post back."""
    caller = await authenticated(request, "write:statuses")
    parse(EmptyBody, await read_json(request, required=False))
    return _answer(await request.app[POSTS].cancel(caller, _post_id(request)))


@routes.post("/v1/posts/{id}/adopt")
async def adopt(request: web.Request) -> web.Response:
    """A writer adopts a suggestion; answers with the new post."""
    caller = await authenticated(request)
    body = parse(AdoptBody, await read_json(request, required=False))
    version = _decided_version(request, body)
    post = await request.app[POSTS].adopt(caller, _post_id(request), version=version, text=body.text)
    return _answer(post, status=201)


@routes.post("/v1/posts/{id}/dismiss")
async def dismiss(request: web.Request) -> web.Response:
    """A writer declines a suggestion."""
    caller = await authenticated(request)
    body = parse(ReasonBody, await read_json(request, required=False))
    return _answer(await request.app[POSTS].dismiss(caller, _post_id(request), reason=body.reason))


@routes.post("/v1/posts/{id}/retry")
async def retry(request: web.Request) -> web.Response:
    """Put a failed post back in the queue."""
    caller = await authenticated(request)
    parse(EmptyBody, await read_json(request, required=False))
    return _answer(await request.app[POSTS].retry(caller, _post_id(request)))


@routes.delete("/v1/posts/{id}")
async def delete(request: web.Request) -> web.Response:
    """Delete a published post on its platform."""
    caller = await authenticated(request, "write:statuses")
    return _answer(await request.app[PUBLISHED].delete(caller, _post_id(request)))


@routes.get("/v1/accounts")
async def accounts(request: web.Request) -> web.Response:
    """The accounts the caller has a role on, with tier and roles."""
    caller = await authenticated(request, "read:accounts")
    return web.json_response({"accounts": [{
        "account": view.name, "platform": view.loaded.policy.platform, "handle": view.loaded.policy.handle,
        "tier": view.loaded.policy.tier.value, "roles": sorted(r.value for r in view.roles),
        "healthy": view.problem is None, "problem": view.problem, "warning": view.warning,
    } for view in request.app[ACCOUNTS].listing(caller)]})


@routes.get("/v1/accounts/{account}/policy")
async def account_policy(request: web.Request) -> web.Response:
    """The policy in force for an account, and any refused newer version of its file."""
    caller = await authenticated(request, "read:accounts")
    account = request.match_info["account"]
    loaded, refused = request.app[ACCOUNTS].policy(caller, account)
    policy = loaded.policy.model_dump(mode="json", by_alias=True, exclude={"credentials"})
    policy["credentials"] = "(set)" if loaded.policy.credentials else None
    return web.json_response({
        "account": account, "sha256": loaded.sha256, "file": loaded.path.name,
        "policy": policy, "summary": loaded.policy.summary(), "refused": refused,
    })


@routes.get("/v1/policies/errors")
async def policy_errors(request: web.Request) -> web.Response:
    """Policy files that were refused, with every problem named: all of them to an admin, and
    to anyone else those of the accounts they have a role on (by the policy still in force)."""
    caller = await authenticated(request)
    return web.json_response({"errors": request.app[ACCOUNTS].refused(caller)})
