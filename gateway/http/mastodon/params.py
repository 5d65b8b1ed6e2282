"""What a Mastodon app sends, read as Rails reads it: the query and a JSON, urlencoded or
multipart body merged into one set of parameters (``a[]`` a list, ``a[b]`` a hash), then cast
field by field (Rails' booleans, ids, languages, times) into the service's forms. Every refusal
is worded as Mastodon words it (``Validation failed: …``, ``Error while parsing request body``).
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from gateway.errors import BylineError, Code
from gateway.http.common import check_text, decode_json, posted_form, unstorable
from gateway.services.mastodon import MAX_MEDIA as MAX_MEDIA_ATTRIBUTES
from gateway.services.mastodon import EditForm, MediaEdit, StatusForm, Upload
from gateway.services.mastodon_reads import PageAsk

MEDIA_READ_LIMIT = 17 * 1024 * 1024
"""The most of a media upload read before refusing it (the largest platform limit, plus room)."""

_FALSE = frozenset({"0", "f", "false", "off", ""})
_VISIBILITIES = frozenset({"public", "unlisted", "private", "direct"})
_LANGUAGE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz")
_LIST_OF_HASHES = re.compile(r"([A-Za-z_]+)\[(\d*)\]\[([A-Za-z_]+)\]")
"""``a[][b]`` (or ``a[0][b]``): a list of hashes, as ``media_attributes[][id]`` is sent in a form."""


def _merge(params: dict[str, Any], items: Any) -> None:
    """Form keys as Rails reads them: ``a[]`` is a list, ``a[b]`` a nested hash."""
    indexed: dict[str, dict[str, dict[str, str]]] = {}
    for key, value in items:
        if not isinstance(value, str):
            continue  # a file in a form where none belongs
        if (hashes := _LIST_OF_HASHES.fullmatch(key)) is not None:
            _merge_hash(params, indexed, hashes[1], hashes[2], hashes[3], value)
        elif key.endswith("[]") and "[" not in key[:-2]:
            existing = params.get(key[:-2])
            params[key[:-2]] = ([*existing, value] if isinstance(existing, list) else [value])
        elif "[" in key:
            base = key.split("[", 1)[0]
            nested = params.get(base)
            params[base] = nested if isinstance(nested, dict) else {}
            params[base][key[len(base):]] = value
        else:
            params[key] = value


def _merge_hash(params: dict[str, Any], indexed: dict[str, dict[str, dict[str, str]]],
                base: str, index: str, field: str, value: str) -> None:
    """One ``a[][b]=v`` (or ``a[i][b]=v``) of a form: as Rails reads it, ``a[][b]`` starts a new
    hash when the last one has a ``b`` already, and ``a[i][b]`` goes to the hash of index ``i``."""
    hashes = params.get(base)
    if not isinstance(hashes, list):
        hashes = params[base] = []
    if index:
        by_index = indexed.setdefault(base, {})
        if index not in by_index:
            by_index[index] = {}
            hashes.append(by_index[index])
        by_index[index][field] = value
    elif hashes and isinstance(hashes[-1], dict) and field not in hashes[-1]:
        hashes[-1][field] = value
    else:
        hashes.append({field: value})


async def read_params(request: web.Request) -> dict[str, Any]:
    """The request's parameters: the query, then the body (JSON, urlencoded or multipart)."""
    params: dict[str, Any] = {}
    if request.query_string:  # a post's has none: nothing to parse
        _merge(params, request.query.items())
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        raw = await request.read()
        try:
            body = decode_json(raw) if raw.strip() else {}
        except BylineError as exc:
            if exc.code is not Code.INVALID_JSON:
                raise
            # Rails' words, and why when it is a limit of Byline's own.
            detail = f": {exc.message}" if "limit" in exc.details else ""
            raise BylineError(Code.INVALID_JSON, "Error while parsing request body" + detail) from None
        if not isinstance(body, dict):
            raise BylineError(Code.INVALID_JSON, "Error while parsing request body")
        params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await posted_form(request)
        except (ValueError, UnicodeDecodeError, AssertionError, BadHttpMessage):
            raise BylineError(Code.BAD_REQUEST, "Error while parsing request body") from None
        _merge(params, form.items())
    # Any other body is not parameters (Rails leaves it unread): what is missing is missing.
    check_text(params)
    return params


def _text(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise BylineError(Code.VALIDATION, f"Validation failed: {name} must be a string")


def _boolean(value: Any) -> bool | None:
    """Rails' boolean cast: "0", "f", "false", "off" and "" are false; absent is None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE
    raise BylineError(Code.VALIDATION, "Validation failed: sensitive must be a boolean")


def _ids(value: Any, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, str | int) or not _ascii_digits(str(item).strip()):
            raise BylineError(Code.VALIDATION, f"Validation failed: {name} must be a list of ids")
        out.append(str(item).strip())
    return tuple(out)


def _language(value: str | None) -> str | None:
    # Mastodon drops a language it does not know; so does the gateway.
    if not value:
        return None
    code = value.strip().lower().split("-")[0]
    return code if 2 <= len(code) <= 3 and set(code) <= _LANGUAGE_CHARS else None


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BylineError(Code.VALIDATION, "Validation failed: Scheduled at is invalid") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def status_form(params: dict[str, Any]) -> StatusForm:
    """``POST /api/v1/statuses`` parameters."""
    visibility = _text(params, "visibility")
    if visibility is not None and visibility not in _VISIBILITIES:
        raise BylineError(Code.VALIDATION, "Validation failed: Visibility is not included in the list")
    return StatusForm(
        status=_text(params, "status") or "",
        in_reply_to_id=_text(params, "in_reply_to_id") or None,
        spoiler_text=_text(params, "spoiler_text") or None,
        sensitive=bool(_boolean(params.get("sensitive"))),
        visibility=visibility,
        language=_language(_text(params, "language")),
        scheduled_at=_when(_text(params, "scheduled_at")),
        media_ids=_ids(params.get("media_ids"), "media_ids") or (),
        poll=params.get("poll") is not None,
        quote=params.get("quoted_status_id") not in (None, ""),
    )


def edit_form(params: dict[str, Any]) -> EditForm:
    """``PUT /api/v1/statuses/:id`` parameters."""
    return EditForm(
        status=_text(params, "status") or "",
        spoiler_text=_text(params, "spoiler_text") or None,
        sensitive=_boolean(params.get("sensitive")),
        language=_language(_text(params, "language")),
        media_ids=_ids(params.get("media_ids"), "media_ids"),
        poll=params.get("poll") is not None,
        media_attributes=media_attributes(params.get("media_attributes")),
        quoted_status_id=_text(params, "quoted_status_id") or None,
        quote_approval_policy=_text(params, "quote_approval_policy") or None,
    )


_ATTRIBUTES_REFUSED = "Validation failed: media_attributes must be a list of {id, description, focus}"


def media_attributes(value: Any) -> tuple[tuple[str, MediaEdit], ...]:
    """``media_attributes[]`` of an edit (Mastodon 4.1): for each upload named by ``id``, its new
    alt text and focal point, read as ``PUT /api/v1/media/:id`` reads them (``media_edit``).
    A hash keyed by index (``{"0": {...}}``) is a list as Rails reads it."""
    if value is None:
        return ()
    entries = list(value.values()) if isinstance(value, dict) else value
    if not isinstance(entries, list):
        raise BylineError(Code.VALIDATION, _ATTRIBUTES_REFUSED)
    if len(entries) > MAX_MEDIA_ATTRIBUTES:
        raise BylineError(Code.VALIDATION, f"Validation failed: Cannot attach more than {MAX_MEDIA_ATTRIBUTES} files")
    out: list[tuple[str, MediaEdit]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise BylineError(Code.VALIDATION, _ATTRIBUTES_REFUSED)
        media_id = entry.get("id")
        if isinstance(media_id, bool) or not isinstance(media_id, str | int) \
                or not _ascii_digits(str(media_id).strip()) or len(str(media_id).strip()) > 24:
            raise BylineError(Code.VALIDATION, "Validation failed: each of media_attributes must name an id")
        out.append((str(media_id).strip(), media_edit(entry)))
    return tuple(out)


def _ascii_digits(value: str) -> bool:
    """0-9 only: ``str.isdigit`` also takes ¹ and ٣, which ``int`` then refuses or reads otherwise."""
    return value.isascii() and value.isdigit()


def digits(params: dict[str, Any] | Any, name: str) -> str | None:
    """An id parameter (``max_id``…), or None when absent; a 422 when it is not digits."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if not _ascii_digits(str(value)):
        raise BylineError(Code.VALIDATION, f"Validation failed: {name} must be an id")
    return str(value)


def limit(query: Any, *, default: int, most: int) -> int:
    """A page size: ``default`` when absent or not a number, else between 1 and ``most``."""
    raw = query.get("limit")
    try:
        return max(1, min(int(raw), most)) if raw else default
    except ValueError:
        return default


_RAILS_LARGEST = 10**18
"""Where a Rails number is cut here: every use of one caps it far below (Python's ``int`` would
refuse more than 4,300 digits with an error of its own, where Ruby reads any number)."""


def _rails_integer(raw: str) -> int:
    """A number as Rails' ``to_i`` reads it: the leading digits (and sign), else 0; one of
    more than 18 digits as 10^18 of the same sign."""
    found = re.match(r"\s*([+-]?)([0-9]+)", raw)
    if not found:
        return 0
    sign, digits = found.groups()
    value = int(digits) if len(digits) <= 18 else _RAILS_LARGEST
    return -value if sign == "-" else value


def page(query: Any, *, default: int = 20, most: int = 40, keep: tuple[str, ...] = ()) -> PageAsk:
    """A page of a list as Mastodon reads it: ``limit`` (Rails' ``limit_param``: its absolute
    value, at most ``most``; a negative one is a 400, as Mastodon's
    ``require_valid_pagination_options!`` answers), the ids it pages by, and the parameters
    (``limit`` and ``keep``) its ``Link`` header carries on, as they were sent."""
    raw = query.get("limit")
    if raw is not None and _rails_integer(raw) < 0:
        raise BylineError(Code.BAD_REQUEST, "Pagination values for `offset` and `limit` must be positive")
    size = default if raw is None else min(abs(_rails_integer(raw)), most)
    kept = tuple((name, str(query[name])[:100]) for name in ("limit", *keep) if query.get(name) is not None)
    return PageAsk(limit=size, max_id=digits(query, "max_id"), since_id=digits(query, "since_id"),
                   min_id=digits(query, "min_id"), keep=kept)


def flag(query: Any, name: str) -> bool:
    """A boolean query parameter, cast as Rails casts it (absent is false)."""
    raw = query.get(name)
    return bool(_boolean(raw)) if raw is not None else False


def path_id(request: web.Request) -> str:
    """The ``{id}`` of the path, a post's or an upload's; "Record not found" when it cannot be one."""
    found = request.match_info["id"]
    if not _ascii_digits(found) or len(found) > 24:
        raise BylineError(Code.NOT_FOUND, "Record not found")
    return found


MAX_DESCRIPTION = 1500
"""The longest alt text Mastodon takes, in characters (``MediaAttachment::MAX_DESCRIPTION_LENGTH``)."""

_FOCUS_REFUSED = "Validation failed: Focus must be two numbers from -1.0 to 1.0, written x,y"
_TOO_LONG = f"Validation failed: Description is too long (maximum is {MAX_DESCRIPTION} characters)"


def description(value: Any) -> str | None:
    """An upload's alt text: "" clears it; longer than Mastodon takes is Mastodon's 422."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BylineError(Code.VALIDATION, "Validation failed: Description must be a string")
    check_text(value, "description")
    if len(value) > MAX_DESCRIPTION:
        raise BylineError(Code.VALIDATION, _TOO_LONG)
    return value


def focus(value: Any) -> tuple[float, float] | None:
    """A focal point: "x,y" (or a pair), each from -1.0 to 1.0; None when absent or blank, as
    Mastodon leaves a blank one unset. Anything else is refused rather than read as 0,0."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, list | tuple) or len(parts) != 2:
        raise BylineError(Code.VALIDATION, _FOCUS_REFUSED)
    point: list[float] = []
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, str | int | float):
            raise BylineError(Code.VALIDATION, _FOCUS_REFUSED)
        try:
            number = float(part.strip() if isinstance(part, str) else part)
        except ValueError:
            raise BylineError(Code.VALIDATION, _FOCUS_REFUSED) from None
        if not -1.0 <= number <= 1.0:  # also refuses nan
            raise BylineError(Code.VALIDATION, _FOCUS_REFUSED)
        point.append(number + 0.0)  # -0.0 is 0.0
    return point[0], point[1]


_NO_THUMBNAILS = "Validation failed: Byline does not carry custom thumbnails"
MAX_UPLOAD_PARTS = 16
"""Fields an upload's form may have: Mastodon's are ``file``, ``thumbnail``, ``description`` and
``focus``; the rest is room for what apps add (and Byline lets go)."""


async def files_sent(request: web.Request) -> frozenset[str]:
    """The names of the files in the request's form (``read_params`` leaves them out): a file
    Byline does not read must still be refused where taking the rest would tell the app it was
    taken. Read after ``read_params``, whose reading of the form aiohttp keeps."""
    if request.content_type != "multipart/form-data":
        return frozenset()
    try:
        form = await posted_form(request)
    except (ValueError, UnicodeDecodeError, AssertionError, BadHttpMessage):
        raise BylineError(Code.BAD_REQUEST, "Error while parsing request body") from None
    return frozenset(key for key, value in form.items() if not isinstance(value, str))


def media_edit(params: dict[str, Any], *, files: frozenset[str] = frozenset()) -> MediaEdit:
    """``PUT /api/v1/media/:id`` parameters: what is left out stays as it is. A thumbnail, as a
    value or as a file of the form (``files``), is refused: Byline sends none to the platform."""
    if params.get("thumbnail") is not None or "thumbnail" in files:
        raise BylineError(Code.VALIDATION, _NO_THUMBNAILS)
    return MediaEdit(description=description(params.get("description")), focus=focus(params.get("focus")))


async def read_upload(request: web.Request) -> Upload:
    """The ``file``, ``description`` and ``focus`` of a multipart upload, read up to a limit.

    The part's declared type is kept only to be reported: what the file is, the service
    tells from its bytes (a part with no type, or ``application/octet-stream``, is usual).
    """
    if request.content_type != "multipart/form-data":
        raise BylineError(Code.VALIDATION, "Validation failed: File content type is invalid, File is invalid")
    data: bytes | None = None
    mime_type = ""
    alt_text: str | None = None
    point: tuple[float, float] | None = None
    parts = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            parts += 1
            if parts > MAX_UPLOAD_PARTS:
                # Each part costs the reader a turn: a body of empty ones, a few megabytes of
                # them, held the event loop for tens of seconds.
                raise BylineError(Code.VALIDATION, f"Validation failed: an upload's form has at most "
                                                   f"{MAX_UPLOAD_PARTS} fields")
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                mime_type = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                chunks = bytearray()
                while chunk := await part.read_chunk(65536):
                    chunks += chunk
                    if len(chunks) > MEDIA_READ_LIMIT:
                        raise web.HTTPRequestEntityTooLarge(max_size=MEDIA_READ_LIMIT, actual_size=len(chunks))
                data = bytes(chunks)
            elif part.name == "description":
                alt_text = description(await _short_text(part, _TOO_LONG)) or None
            elif part.name == "focus":
                point = focus(await _short_text(part, _FOCUS_REFUSED))
            elif part.name == "thumbnail":
                # Taken and dropped, the app would show its person a thumbnail that never goes out.
                raise BylineError(Code.VALIDATION, _NO_THUMBNAILS)
            else:
                await part.release()
    except (ValueError, AssertionError, BadHttpMessage):
        raise BylineError(Code.BAD_REQUEST, "Error while parsing request body") from None
    if data is None:
        raise BylineError(Code.VALIDATION, "Validation failed: File content type is invalid, File is invalid")
    return Upload(data=data, mime_type=mime_type, description=alt_text, focus=point)


async def _short_text(part: BodyPartReader, refusal: str) -> str:
    """A text field of an upload, read no further than any may be (the longest description, at
    four bytes a character), so a huge one is refused with ``refusal``, not held in memory."""
    chunks = bytearray()
    while chunk := await part.read_chunk(8192):
        chunks += chunk
        if len(chunks) > 4 * MAX_DESCRIPTION:
            raise BylineError(Code.VALIDATION, refusal)
    return chunks.decode("utf-8")


def client_credentials(request: web.Request) -> tuple[str, str] | None:
    """Client credentials sent as HTTP Basic (``client_secret_basic``)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    # RFC 6749 §2.3.1: both are form-urlencoded before they are joined.
    pair = (unquote_plus(client_id), unquote_plus(secret))
    if any(unstorable(part) for part in pair):
        raise BylineError(Code.UNAUTHENTICATED, "the client credentials are not text", oauth="invalid_client")
    return pair if sep else None
