"""The Mastodon client API, mounted at ``/api`` (``/api/v1/…``, ``/api/v2/…``), and the files of
its uploads, mounted at ``/media``.

Each handler parses what a Mastodon app sends (``params``), makes one service call, and answers
with Mastodon's entities (``entities``); refusals are worded by ``errors.mastodon_errors``.
Paths here are below the mount: ``/v1/statuses`` is ``/api/v1/statuses``.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from gateway.appkeys import MASTODON, OAUTH, POSTS
from gateway.errors import BylineError, Code
from gateway.http.common import bearer, gateway_app
from gateway.http.mastodon import entities, params
from gateway.http.mastodon.answers import base_url, json_answer, raw_answer
from gateway.services.mastodon import (
    MISSING_AVATAR,
    MISSING_HEADER,
    ClientAuth,
    MastodonService,
    Raw,
    account_at,
    relayed_path,
)
from gateway.services.mastodon_reads import Listed, MastodonReads, PageAsk, page_links

routes = web.RouteTableDef()
"""The client API, below ``/api``."""

USER_REQUIRED = "This method requires an authenticated user"
"""Mastodon's words for an app's own token where a person's is needed."""

files = web.RouteTableDef()
"""The uploads' files, below ``/media``."""

pictures = web.RouteTableDef()
"""The pictures of an account that has none, at the root, where Mastodon serves them."""

_MISSING_PICTURE = resources.files("gateway.http").joinpath("static", "missing.png").read_bytes()


def _service(request: web.Request) -> MastodonService:
    return gateway_app(request)[MASTODON]


def _reads(request: web.Request) -> MastodonReads:
    return MastodonReads(mastodon=_service(request), posts=request.config_dict[POSTS])


def _as_listed(request: web.Request) -> str:
    """The path as written, if it is a read the passthrough would relay as written; else the
    passthrough's refusal (403): an odd spelling routed here must not be relayed either."""
    return relayed_path(request.method, request.rel_url.raw_path)


def _listed(request: web.Request, ask: PageAsk, found: Listed | Raw, *, scheduled: bool = False) -> web.Response:
    """A page of statuses with its ``Link`` header, or the platform's answer."""
    if isinstance(found, Raw):
        return raw_answer(found)
    base = base_url(request)
    render = entities.scheduled_entity if scheduled else entities.status_entity
    link = page_links(base + request.path, ask, [v.post.id for v in found.views], more=found.more)
    return json_answer([render(v, base) for v in found.views], headers={"Link": link} if link else None)


async def _auth(request: web.Request, scope: str, *, or_scope: str | None = None) -> ClientAuth:
    token = bearer(request)
    try:
        return await _service(request).authenticate(token, scope=scope, or_scope=or_scope)
    except BylineError as exc:
        # An app's own token (client_credentials) stands for no account: refused as Mastodon
        # refuses it where a user is required (422, as its require_user! answers), not as a token unknown.
        if exc.code is Code.UNAUTHENTICATED and await request.config_dict[OAUTH].app_token(token) is not None:
            raise BylineError(Code.VALIDATION, USER_REQUIRED, verbatim=True) from None
        raise


# -- apps ----------------------------------------------------------------------------------------


@routes.post("/v1/apps")
async def create_app(request: web.Request) -> web.Response:
    """Register a client app; its secret is shown this once."""
    app = await request.config_dict[OAUTH].register(await params.read_params(request))
    return json_answer(entities.registered_app(app))


@routes.get("/v1/apps/verify_credentials")
async def verify_app(request: web.Request) -> web.Response:
    """The app a token belongs to: its own token (client_credentials, any scope, as Mastodon
    4.3 has it), or one a person signed it in for."""
    own = await request.config_dict[OAUTH].app_token(bearer(request))
    if own is not None:
        return json_answer(entities.token_app(own.app_name))
    auth = await _auth(request, "read")
    return json_answer(entities.application(await _service(request).application(auth)))


# -- instance and account ----------------------------------------------------------------------


@routes.get("/v1/instance")
@routes.get("/v1/instance/")
async def instance_v1(request: web.Request) -> web.Response:
    """The Instance entity (v1); limits are those of the caller's account when it sends a token."""
    limits = _service(request).limits(await _service(request).maybe_authenticate(bearer(request)))
    return json_answer(entities.instance_v1(base_url(request), limits))


@routes.get("/v2/instance")
@routes.get("/v2/instance/")
async def instance_v2(request: web.Request) -> web.Response:
    """The Instance entity (v2), with ``api_versions``."""
    limits = _service(request).limits(await _service(request).maybe_authenticate(bearer(request)))
    return json_answer(entities.instance_v2(base_url(request), limits))


@routes.get("/v1/accounts/verify_credentials")
async def verify_credentials(request: web.Request) -> web.Response:
    """The managed account this app acts as, as its platform shows it. ``profile`` is enough, as
    on Mastodon 4.3: the scope an app asks for when it only signs a person in."""
    auth = await _auth(request, "read:accounts", or_scope="profile")
    return json_answer(account_at(await _service(request).account(auth, with_source=True), base_url(request)))


# -- statuses ------------------------------------------------------------------------------------


@routes.post("/v1/statuses")
async def post_status(request: web.Request) -> web.Response:
    """A new status: a gateway post under the account's policy (a ScheduledStatus if asked)."""
    auth = await _auth(request, "write:statuses")
    form = params.status_form(await params.read_params(request))
    view = await _service(request).post(auth, form, idempotency_key=request.headers.get("Idempotency-Key"))
    base = base_url(request)
    return json_answer(entities.scheduled_entity(view, base) if view.scheduled
                       else entities.status_entity(view, base))


@routes.get("/v1/statuses/{id}")
async def get_status(request: web.Request) -> web.StreamResponse:
    """A status made here, as it stands; any other passes through to the platform."""
    auth = await _auth(request, "read:statuses")
    found = await _service(request).status(auth, params.path_id(request), base=base_url(request))
    if isinstance(found, Raw):
        return raw_answer(found)
    return json_answer(entities.status_entity(found, base_url(request)))


@routes.put("/v1/statuses/{id}")
async def edit_status(request: web.Request) -> web.Response:
    """A new version while the post is held, scheduled or suggested."""
    auth = await _auth(request, "write:statuses")
    form = params.edit_form(await params.read_params(request))
    view = await _service(request).edit(auth, params.path_id(request), form)
    return json_answer(entities.status_entity(view, base_url(request)))


@routes.delete("/v1/statuses/{id}")
async def delete_status(request: web.Request) -> web.Response:
    """Cancel a post not out yet (the pencil stage), or delete it on its platform."""
    auth = await _auth(request, "write:statuses")
    view = await _service(request).delete(auth, params.path_id(request))
    return json_answer(entities.status_entity(view, base_url(request), with_source=True))


@routes.get("/v1/scheduled_statuses")
async def scheduled_statuses(request: web.Request) -> web.Response:
    """The caller's posts for this account that are not out yet, newest first."""
    auth = await _auth(request, "read:statuses")
    ask = params.page(request.query)
    return _listed(request, ask, await _reads(request).scheduled(auth, ask), scheduled=True)


@routes.get("/v1/scheduled_statuses/{id}")
async def scheduled_status(request: web.Request) -> web.Response:
    """One of the caller's posts not out yet."""
    auth = await _auth(request, "read:statuses")
    view = await _service(request).pending_one(auth, params.path_id(request))
    return json_answer(entities.scheduled_entity(view, base_url(request)))


@routes.delete("/v1/scheduled_statuses/{id}")
async def cancel_scheduled(request: web.Request) -> web.Response:
    """Cancel one of the caller's posts not out yet."""
    auth = await _auth(request, "write:statuses")
    await _service(request).cancel_pending(auth, params.path_id(request))
    return json_answer({})


@routes.put("/v1/scheduled_statuses/{id}")
async def reschedule(request: web.Request) -> web.Response:
    """Moving a post's time is not offered: its policy decides when it goes out."""
    auth = await _auth(request, "write:statuses")
    await _service(request).pending_one(auth, params.path_id(request))
    raise BylineError(Code.VALIDATION, "Validation failed: Byline cannot move a scheduled post; "
                                       "delete it and post it again with the new time")


# -- media ---------------------------------------------------------------------------------------


@routes.post("/v2/media")
@routes.post("/v1/media")
async def upload_media(request: web.Request) -> web.Response:
    """Keep a file for a coming post, where the account's platform takes media."""
    auth = await _auth(request, "write:media")
    row = await _service(request).upload(auth, await params.read_upload(request))
    return json_answer(entities.media_entity(row, base_url(request)))


@routes.get("/v1/media/{id}")
async def get_media(request: web.Request) -> web.Response:
    """One of the caller's uploads."""
    auth = await _auth(request, "write:media")
    row = await _service(request).media_info(auth, params.path_id(request))
    return json_answer(entities.media_entity(row, base_url(request)))


@routes.put("/v1/media/{id}")
async def update_media(request: web.Request) -> web.Response:
    """New alt text or focal point for one of the caller's uploads, also while the post it is
    attached to has not gone out."""
    auth = await _auth(request, "write:media")
    media_id = params.path_id(request)
    change = params.media_edit(await params.read_params(request), files=await params.files_sent(request))
    row = await _service(request).describe(auth, media_id, change)
    return json_answer(entities.media_entity(row, base_url(request)))


@files.get("/{id}/{digest}")
async def media_file(request: web.Request) -> web.Response:
    """``/media/{id}/{digest}``: an upload's bytes, for the app's preview; the URL names its content."""
    mime_type, data = await _service(request).media_file(params.path_id(request), request.match_info["digest"])
    return web.Response(body=data, content_type=mime_type, headers={
        "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })


@pictures.get(MISSING_AVATAR)
@pictures.get(MISSING_HEADER)
async def missing_picture(request: web.Request) -> web.Response:
    """The picture (a plain grey) that accounts Byline shows itself have, and the instance's
    thumbnail: the URLs an app is given lead to an image."""
    return web.Response(body=_MISSING_PICTURE, content_type="image/png", headers={
        "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff",
    })


# -- reads answered from Byline's record (before the passthrough below, which aiohttp would match first) --


@routes.get("/v1/statuses")
async def statuses_by_id(request: web.Request) -> web.StreamResponse:
    """Statuses by ``id[]``: those Byline made from its record, the others from the platform."""
    auth = await _auth(request, "read:statuses")
    base = base_url(request)
    ids = [i for i in request.query.getall("id[]", []) if params.digits({"id": i}, "id")]
    found = await _reads(request).statuses(auth, ids, path=_as_listed(request), base=base)
    if isinstance(found, Raw):
        return raw_answer(found)
    return json_answer([s if isinstance(s, dict) else entities.status_entity(s, base) for s in found])


@routes.get("/v1/statuses/{id}/source")
async def status_source(request: web.Request) -> web.StreamResponse:
    """A StatusSource: a post's words as written, for an app about to edit it."""
    auth = await _auth(request, "read:statuses")
    found = await _reads(request).source(auth, params.path_id(request), path=_as_listed(request),
                                         base=base_url(request))
    return raw_answer(found) if isinstance(found, Raw) else json_answer(entities.source_entity(found))


@routes.get("/v1/statuses/{id}/context")
async def status_context(request: web.Request) -> web.StreamResponse:
    """A Context: the posts Byline made that this one replies to, and those replying to it."""
    auth = await _auth(request, "read:statuses")
    base = base_url(request)
    found = await _reads(request).context(auth, params.path_id(request), path=_as_listed(request), base=base)
    return raw_answer(found) if isinstance(found, Raw) else json_answer(entities.context_entity(found, base))


@routes.get("/v1/statuses/{id}/history")
async def status_history(request: web.Request) -> web.StreamResponse:
    """Every version of a post as StatusEdits, oldest first, from Byline's record."""
    auth = await _auth(request, "read:statuses")
    base = base_url(request)
    found = await _reads(request).history(auth, params.path_id(request), path=_as_listed(request), base=base)
    if isinstance(found, Raw):
        return raw_answer(found)
    return json_answer([entities.edit_entity(e, base) for e in found])


@routes.get("/v1/accounts/lookup")
async def account_lookup(request: web.Request) -> web.StreamResponse:
    """An account by its ``acct``: a sandbox account's own, else the platform's answer."""
    auth = await _auth(request, "read:accounts")
    base = base_url(request)
    found = await _reads(request).lookup(auth, request.query.get("acct"), host=request.host, path=_as_listed(request),
                                         query=request.rel_url.raw_query_string, base=base)
    return raw_answer(found) if isinstance(found, Raw) else json_answer(account_at(found, base))


@routes.get(r"/v1/accounts/{id:[0-9]+}")
async def account_by_id(request: web.Request) -> web.StreamResponse:
    """An account: a sandbox account's own, else the platform's answer."""
    auth = await _auth(request, "read:accounts")
    base = base_url(request)
    found = await _reads(request).account(auth, params.path_id(request), path=_as_listed(request), base=base)
    return raw_answer(found) if isinstance(found, Raw) else json_answer(account_at(found, base))


_ACCOUNT_FILTERS = ("only_media", "exclude_replies", "exclude_reblogs", "pinned")


@routes.get(r"/v1/accounts/{id:[0-9]+}/statuses")
async def account_statuses(request: web.Request) -> web.StreamResponse:
    """An account's statuses, paged: on the sandbox, what Byline published for it."""
    auth = await _auth(request, "read:statuses")
    ask = params.page(request.query, keep=(*_ACCOUNT_FILTERS, "tagged"))
    found = await _reads(request).account_statuses(
        auth, params.path_id(request), ask, flags={f: params.flag(request.query, f) for f in _ACCOUNT_FILTERS},
        tagged=request.query.get("tagged") or None, path=_as_listed(request), query=request.rel_url.raw_query_string,
        base=base_url(request),
    )
    return _listed(request, ask, found)


@routes.get(r"/v1/timelines/{which:(home|public)}")
async def timeline(request: web.Request) -> web.StreamResponse:
    """The home or public timeline, paged: on the sandbox, what Byline published for the account."""
    auth = await _auth(request, "read:statuses")
    which = request.match_info["which"]
    filters = ("local", "remote", "only_media") if which == "public" else ("local",)
    ask = params.page(request.query, keep=filters)
    found = await _reads(request).timeline(
        auth, which, ask, flags={f: params.flag(request.query, f) for f in filters},
        path=_as_listed(request), query=request.rel_url.raw_query_string, base=base_url(request),
    )
    return _listed(request, ask, found)


# -- every other call ----------------------------------------------------------------------------


@routes.route("*", "/{version:v[12]}/{path:.*}")
async def passthrough(request: web.Request) -> web.Response:
    """Timelines, notifications, accounts…: listed reads from the account's instance, with its
    real token; any other call (a follow, a favourite, administration…) is refused."""
    auth = await _auth(request, "read")
    path = request.rel_url.raw_path
    answer = await _service(request).passthrough(auth, path, request.rel_url.raw_query_string,
                                                 base=base_url(request), method=request.method)
    return raw_answer(answer)
