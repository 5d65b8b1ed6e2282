"""One post's page (its whole history), and the forms that act on a post: approve, reject,
cancel, edit, adopt, dismiss. Each form makes one call to the post service, which decides
who may do what exactly as it does for the JSON API."""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web

from gateway.appkeys import POSTS, QUEUE
from gateway.errors import BylineError, Code
from gateway.http.common import waited
from gateway.http.pages import caller_of, page, read_form, render, see_other, signed_in
from gateway.services.people import Session
from gateway.services.posts import PostView
from gateway.services.queue import PostCard

routes = web.RouteTableDef()

MAX_REASON: Final = 2000
"""The longest reason a rejection or a dismissal gives, as the JSON API takes it."""
MAX_TEXT: Final = 100_000
"""The longest text an edit sends, as the JSON API takes it (the account's own limit is lower)."""
_DIGITS = re.compile(r"[0-9]{1,24}")
_VERSION = re.compile(r"[0-9]{1,18}")

DONE: Final = {
    "approve": "You approved the post.",
    "reject": "You rejected the post. It will not go out.",
    "cancel": "You cancelled the post. It will not go out.",
    "edit": "Your new version is saved.",
    "adopt": "You adopted the suggestion: it is now your post.",
    "dismiss": "You dismissed the suggestion.",
}
"""The notice after each form, named by the form (never text taken from the address)."""


def notice_of(request: web.Request) -> str | None:
    """The notice a form's ``?done=`` asks for, if it names one."""
    return DONE.get(request.query.get("done", ""))


def _post_id(request: web.Request) -> str:
    post_id = request.match_info["id"]
    if not _DIGITS.fullmatch(post_id):
        raise BylineError(Code.NOT_FOUND, "There is no such post.")
    return post_id


@routes.get("/posts/{id}")
@page
async def post_page(request: web.Request) -> web.StreamResponse:
    """A post's versions, decisions and log entries, with links to check each entry."""
    session = await signed_in(request)
    found = await request.app[QUEUE].post_page(caller_of(session), _post_id(request))
    return render(request, "post.html", {"title": f"Post {found.card.post.id}", "page": found,
                                         "notice": notice_of(request)})


def _version(form: dict[str, str]) -> int:
    raw = form.get("version", "").strip()
    if not _VERSION.fullmatch(raw) or int(raw) < 1:
        raise BylineError(Code.VALIDATION, "The form did not say which version you read. "
                          "Reload the page and try again.", field="version")
    return int(raw)


def _reason(form: dict[str, str], *, required: bool) -> str | None:
    reason = form.get("reason", "").strip()
    if not reason:
        if required:
            raise BylineError(Code.VALIDATION, "Say why you reject this post: the author reads your reason.",
                              field="reason")
        return None
    if len(reason) > MAX_REASON:
        raise BylineError(Code.VALIDATION, f"A reason has at most {MAX_REASON} characters; this one has {len(reason)}.",
                          field="reason")
    return reason


def _text(form: dict[str, str], *, required: bool) -> str | None:
    text = form.get("text")
    if text is None or (not required and not text.strip()):
        if required:
            raise BylineError(Code.VALIDATION, "The form sent no text.", field="text")
        return None
    if len(text) > MAX_TEXT:
        raise BylineError(Code.TEXT_TOO_LONG, f"A post's text has at most {MAX_TEXT} characters.", field="text")
    # Browsers send a textarea's line breaks as CRLF; the text is stored as it was typed.
    return text.replace("\r\n", "\n")


async def _act(request: web.Request, session: Session, post_id: str, act: str, form: dict[str, str]) -> PostView:
    """The one service call a form asks for."""
    caller = caller_of(session)
    posts = request.app[POSTS]
    if act == "approve":
        return await posts.approve(caller, post_id, version=_version(form))
    if act == "reject":
        return await posts.reject(caller, post_id, version=_version(form), reason=_reason(form, required=True))
    if act == "cancel":
        return await posts.cancel(caller, post_id)
    if act == "edit":
        # Bound to the version whose words the person edited: saved over a later one, that
        # version's change would be gone with no one told.
        return await posts.edit(caller, post_id, text=_text(form, required=True), of_version=_version(form))
    if act == "adopt":
        return await posts.adopt(caller, post_id, version=_version(form), text=_text(form, required=False))
    return await posts.dismiss(caller, post_id, reason=_reason(form, required=False))


def _moved_on(exc: BylineError, act: str) -> bool:
    """Whether ``exc`` refused the act for naming a version the post has moved on from."""
    return exc.code is Code.STALE_VERSION or (act == "edit" and exc.code is Code.CONFLICT and "version" in exc.details)


def _problem(exc: BylineError, act: str, form: dict[str, str]) -> str:
    """What went wrong, as the person who sent the form should read it."""
    if exc.code is Code.STALE_VERSION:
        done = {"approve": "approved", "adopt": "adopted"}.get(act, "rejected")
        return (f"This post changed since you read it: you saw version {form.get('version', '?')}, and it is now "
                f"at version {exc.details.get('version', '?')}. Nothing was {done}. "
                "Read the new text before you decide.")
    if _moved_on(exc, act):
        return (f"This post changed since you read it: you edited version {form.get('version', '?')}, and it is "
                f"now at version {exc.details.get('version', '?')}. Nothing was saved. Read the new text, "
                "then make your change to it.")
    if exc.code is Code.ALREADY_DECIDED:
        return "You already decided on this version of the post."
    if exc.code is Code.NOT_FOUND:
        # Said alike for a post that never was and one out of reach: most often the person read
        # it a moment ago, and a policy reload took their role on its account away since.
        return ("There is no such post among those you may act on: it is gone, or a change of its "
                "account's policy took your role on it away.")
    return exc.message


async def _now(request: web.Request, session: Session, post_id: str, act: str, exc: BylineError,
               form: dict[str, str]) -> PostCard | None:
    """The post as it is now, for a person whose decision or edit named a version it has moved
    on from: the refusal shows the new words (and what changed since the version they read)."""
    if not _moved_on(exc, act):
        return None
    seen = form.get("version", "").strip()
    try:
        return await request.app[QUEUE].card(caller_of(session), post_id,
                                             since=int(seen) if _VERSION.fullmatch(seen) else None)
    except BylineError:
        return None  # gone from their reach meanwhile: the refusal alone is what they may read


@routes.post(r"/posts/{id}/{act:approve|reject|cancel|edit|adopt|dismiss}")
@page
async def act_on_post(request: web.Request) -> web.StreamResponse:
    """Approve (bound to the version shown), reject (with a reason), cancel, edit (new text),
    adopt or dismiss a post; back to the queue or the post with a notice."""
    session = await signed_in(request)
    form = await read_form(request, session=session)
    post_id = _post_id(request)
    act = request.match_info["act"]
    try:
        view = await _act(request, session, post_id, act, form)
    except BylineError as exc:
        return waited(render(request, "problem.html", {
            "title": "This did not go through", "message": _problem(exc, act, form), "post_id": post_id,
            "shown": exc.code is not Code.NOT_FOUND and exc.code is not Code.FORBIDDEN,
            "card": await _now(request, session, post_id, act, exc, form), "back": "queue",
            "unsaved": form.get("text") if act == "edit" and _moved_on(exc, act) else None,
        }, status=exc.status), exc)
    if form.get("back") == "post":
        return see_other(f"/posts/{view.id}?done={act}")
    return see_other(f"/queue?done={act}")
