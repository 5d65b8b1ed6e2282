"""The public read API of the audit log (no token), and per-post proofs (``/v1``, with a token).

Tools outside the project rely on these shapes:

- ``GET /log/key``: the verifier key as text, ``name+hex(key id)+base64(0x01 ‖ public key)``
- ``GET /log/checkpoint``: the latest signed checkpoint note, as text
- ``GET /log/entries?start=&end=``: ``{"entries": [{"index": i, "leaf": base64}]}``, end exclusive,
  at most 1000 a page
- ``GET /log/texts?start=&end=``: ``{"texts": [{"hash", "salt", "text"}]}`` for those entries
- ``GET /log/proof/inclusion?index=&size=``: ``{"index", "size", "proof": [base64]}``
- ``GET /log/proof/consistency?old=&new=``: ``{"old", "new", "proof": [base64]}``
- ``GET /log/tile/…``: c2sp.org/tlog-tiles (tile height 8), with ``/log`` as the prefix
- ``GET /v1/posts/{id}/proof``: a c2sp.org/tlog-proof bundle for each event of the post
"""

from __future__ import annotations

import base64
import re

from aiohttp import web

from gateway.appkeys import ACCOUNTS, LOG_READER
from gateway.audit.tiles import tile_path
from gateway.errors import BylineError, Code
from gateway.http.common import authenticated, bearer

routes = web.RouteTableDef()

_MAX_INDEX = (1 << 63) - 1
_TEXT = "text/plain"
_NO_CACHE = {"Cache-Control": "no-cache"}


def _whole(raw: str, most_digits: int = 19) -> bool:
    """ASCII digits only, and few enough of them: ``str.isdigit`` also takes "¹" and "٣", which
    ``int`` refuses or reads, and ``int`` refuses more than 4,300 digits with an error of its own."""
    return raw.isascii() and raw.isdigit() and len(raw) <= most_digits


def _int(request: web.Request, name: str) -> int:
    raw = request.query.get(name)
    if raw is None:
        raise BylineError(Code.VALIDATION, f"query parameter {name} is required", field=name)
    if not _whole(raw) or len(raw) > 19 or int(raw) > _MAX_INDEX:
        raise BylineError(
            Code.VALIDATION, f"{name} must be a whole number, not {raw[:40]!r}", field=name
        )
    return int(raw)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@routes.get("/log/key")
async def log_key(request: web.Request) -> web.Response:
    """The verifier key of the log's checkpoints."""
    return web.Response(text=request.app[LOG_READER].verifier_key(), content_type=_TEXT)


@routes.get("/log/checkpoint")
async def log_checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint."""
    note = await request.app[LOG_READER].checkpoint()
    return web.Response(body=note, content_type=_TEXT, charset="utf-8", headers=_NO_CACHE)


@routes.get("/log/entries")
async def log_entries(request: web.Request) -> web.Response:
    """A page of entries, as the exact bytes that were hashed."""
    rows = await request.app[LOG_READER].entries(_int(request, "start"), _int(request, "end"))
    return web.json_response({"entries": [{"index": i, "leaf": _b64(raw)} for i, raw in rows]})


@routes.get("/log/texts")
async def log_texts(request: web.Request) -> web.Response:
    """The texts and salts that a page of entries commits to (text is null once erased)."""
    # People on an account also see its unpublished words; auditors see everyone's.
    caller = await authenticated(request, "read:statuses") if bearer(request) is not None else None
    reader = request.app[ACCOUNTS].reader(caller)
    texts = await request.app[LOG_READER].texts(
        _int(request, "start"), _int(request, "end"), member_of=reader.member_of, auditor=reader.auditor
    )
    return web.json_response({"texts": texts})


@routes.get("/log/proof/inclusion")
async def inclusion(request: web.Request) -> web.Response:
    """The inclusion proof of one entry in a tree size."""
    index, size = _int(request, "index"), _int(request, "size")
    proof = await request.app[LOG_READER].inclusion_proof(index, size)
    return web.json_response({"index": index, "size": size, "proof": [_b64(h) for h in proof]})


@routes.get("/log/proof/consistency")
async def consistency(request: web.Request) -> web.Response:
    """The consistency proof between two tree sizes."""
    old, new = _int(request, "old"), _int(request, "new")
    proof = await request.app[LOG_READER].consistency_proof(old, new)
    return web.json_response({"old": old, "new": new, "proof": [_b64(h) for h in proof]})


_ELEMENT = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")
_MOST_ELEMENTS = 7
"""A tile index of a log of fewer than 2^63 entries has at most 19 digits: 7 groups of three."""


def _tile_index(parts: list[str]) -> tuple[int, int | None]:
    """Parse ``x001/x234/067[.p/W]`` into (index, width); anything else is not a tile."""
    width: int | None = None
    if len(parts) >= 2 and parts[-2].endswith(".p"):
        raw_width = parts[-1]
        if not _whole(raw_width) or raw_width != str(int(raw_width)) or not 0 < int(raw_width) < 256:
            raise BylineError(Code.NOT_FOUND, "no such tile")
        width = int(raw_width)
        parts = [*parts[:-2], parts[-2][:-2]]
    if (not parts or len(parts) > _MOST_ELEMENTS or not _LAST.fullmatch(parts[-1])
            or any(not _ELEMENT.fullmatch(p) for p in parts[:-1])):
        raise BylineError(Code.NOT_FOUND, "no such tile")
    index = int("".join(p.lstrip("x") for p in parts))
    if tile_path(index) != "/".join(parts):
        raise BylineError(Code.NOT_FOUND, "no such tile")  # not the one canonical spelling
    return index, width


@routes.get("/log/tile/{path:.+}")
async def tile(request: web.Request) -> web.Response:
    """A c2sp.org/tlog-tiles hash tile or entry bundle; full tiles never change."""
    parts = request.match_info["path"].split("/")
    reader = request.app[LOG_READER]
    if parts[0] == "entries":
        index, width = _tile_index(parts[1:])
        found = await reader.entry_tile(index, width)
    else:
        if not _whole(parts[0]) or parts[0] != str(int(parts[0])) or int(parts[0]) > 63:
            raise BylineError(Code.NOT_FOUND, "no such tile")
        index, width = _tile_index(parts[1:])
        found = await reader.hash_tile(int(parts[0]), index, width)
    cache = "public, max-age=31536000, immutable" if found.full else "no-cache"
    return web.Response(
        body=found.data, content_type="application/octet-stream", headers={"Cache-Control": cache}
    )


@routes.get("/v1/posts/{id}/proof")
async def post_proof(request: web.Request) -> web.Response:
    """A tlog-proof bundle for every logged event of one post."""
    caller = await authenticated(request, "read:statuses")
    post_id = request.match_info["id"]
    if not post_id.isdigit() or len(post_id) > 24:
        raise BylineError(Code.NOT_FOUND, f"no post {post_id}")
    return web.json_response(await request.app[LOG_READER].post_proofs(caller, post_id))
