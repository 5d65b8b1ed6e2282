"""Who wrote, edited, approved and published a post, as the log tells it.

Given a post id, or the URL (or remote id) the post got on its platform, :func:`who` reads the
post's events from the log (and those of the suggestion it was adopted from) and tells the story
one line an event. It reads; it does not verify: run ``byline audit verify`` for that.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from gateway.audit.gates import gate_words

Entry = tuple[int, bytes]


def _load(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) and isinstance(body.get("data"), dict) else None


def find_post(entries: Iterable[Entry], target: str) -> str | None:
    """The post id ``target`` names: itself if it is an id, else the post published at that URL."""
    if target.isdigit():
        return target
    for _, raw in entries:
        body = _load(raw)
        if body is None or body.get("type") != "post.published":
            continue
        data = body["data"]
        if target in (data.get("url"), data.get("remote_id")):
            post = body.get("post")
            return post if isinstance(post, str) else None
    return None


def _line(index: int, body: dict[str, Any]) -> str | None:
    data = body["data"]
    actor = body.get("actor")
    kind = body.get("type")
    version = data.get("version")
    v = f" (version {version})" if version is not None else ""
    settled = ", settled after its gateway stopped" if data.get("recovered") else ""
    text = {
        "post.submitted": f"written by {actor}{v}",
        "post.edited": f"edited by {actor}{v}",
        "post.approved": f"approved by {actor}{v}",
        "post.rejected": f"rejected by {actor}{v}"
        + (f": {data['reason']}" if data.get("reason") else ""),
        "post.cancelled": f"cancelled by {actor}",
        "post.expired": "expired without enough approvals",
        "post.publishing": f"sent to the platform{v}" if not data.get("looks_only") else (
            f"looked for on the platform{v}, not sent: its gateway stopped mid-publish, and the policy "
            f"in force would not let it out ({data['looks_only']})"),
        "post.published": f"published{v}" + (f" at {data['url']}" if data.get("url") else "")
        + (", found there after its gateway stopped" if data.get("found") else ""),
        "post.failed": f"failed: {data.get('error')}",
        "post.revising": f"new words sent to the platform by {actor}{v}",
        "post.revised": f"revised by {actor}{v}{settled}",
        "post.revision_failed": f"revision{v} not made: {data.get('error')}",
        "post.deleted": f"deleted by {actor}{settled}",
        "post.gates_changed": f"{data.get('gate')} {'set' if data.get('cid') else 'removed'} by {actor}"
        + (f": {gate_words(data.get('gate'), data['settings'])}"
           if kind == "post.gates_changed" and data.get("settings") is not None else ""),
        "post.adopted": f"adopted by {actor} as post {data.get('into')}",
        "post.dismissed": f"dismissed by {actor}",
        "post.retried": f"retried by {actor}",
        "post.redecided": f"held again{v} under a changed policy ({data.get('cause')})",
    }.get(str(kind))
    if text is None:
        return None
    if actor == "system" and kind == "post.cancelled":
        text = f"cancelled: {data.get('reason')}"
    elif actor == "system" and kind == "post.retried":
        text = f"retried with the post it replies to, {data.get('reply_to_post')}"
    if kind == "post.submitted":
        state = data.get("state")
        if state == "held":
            approvers = ", ".join(data.get("approvers") or [])
            text += f", held for {data.get('required')} approval(s) from {approvers}"
        elif state == "suggested":
            text += ", as a suggestion"
        if data.get("suggested_by"):
            text += f", suggested by {data['suggested_by']} (post {data.get('adopted_from')})"
    return f"  #{index:<8} {body.get('ts')}  {text}"


def who(entries_of: Callable[[str | None], Iterable[Entry]], target: str) -> list[str]:
    """The story of a post. ``entries_of(post_id)`` gives its entries; ``None`` gives all."""
    post_id = find_post(entries_of(None), target) if not target.isdigit() else target
    if post_id is None:
        return []
    lines: list[str] = []
    seen: set[str] = set()
    queue = [post_id]
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        bodies = [(i, b) for i, raw in entries_of(current) if (b := _load(raw)) is not None]
        bodies = [(i, b) for i, b in bodies if b.get("post") == current]
        if not bodies:
            continue
        account = bodies[0][1].get("account")
        lines.append(f"post {current} on account {account}")
        for index, body in bodies:
            line = _line(index, body)
            if line is not None:
                lines.append(line)
            origin = body["data"].get("adopted_from")
            if body.get("type") == "post.submitted" and isinstance(origin, str):
                queue.append(origin)
    return lines
