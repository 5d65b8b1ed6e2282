"""Hypothesis strategies for what clients send: texts, parameter values, and the same
parameters encoded as JSON, as a form, as multipart, in the query, or as bytes that are none
of these.

The parameters of each call come from the Mastodon API documentation
(docs.joinmastodon.org/methods/…) and the AT Protocol lexicons (com.atproto.*, app.bsky.*);
each value is sometimes what the documentation asks for and sometimes anything else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

# Strings that have broken parsers, databases and text handling somewhere.
NASTY = (
    "", " ", "\x00", "a\x00b", "\ud800", "\udfff", "\ufeff", "\u202e", "\u200b", "fired",
    "The CEO was fired", "example-slur", "ｆｉｒｅｄ", "x" * 501, "💩" * 300, "<script>", "%00", "%",
    "../../etc/passwd", "null", "true", "0", "-1", "1e999", "9" * 40, "NaN", "[]", "{}", "\r\n",
    "名前", "ا", "\\", '"', "'", "=", "&", "?", "#", "+", "a[b]", "a[]",
)

_CHARS = st.characters(codec=None, exclude_categories=())  # surrogates too: a client may send anything
TEXT = st.one_of(st.sampled_from(NASTY), st.text(_CHARS, max_size=60), st.text(max_size=600))
# What people write, then anything: for fields whose value must be real text to get anywhere.
WORDS = st.one_of(
    st.sampled_from(("We launch today", "Thanks, everyone", "The CEO was fired", "A draft\n\nwith two paragraphs",
                     "https://example.org/a-link and @someone@example.social", "ｆｉｒｅｄ", "💩 " * 40, "x" * 600)),
    st.text(min_size=1, max_size=200), TEXT,
)
NUMBER = st.one_of(st.integers(), st.floats(allow_nan=False), st.integers(-2, 2 ** 64))
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
JSON_VALUE = st.recursive(
    SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=8,
)
DIGITS = st.one_of(st.integers(0, 10 ** 24).map(str), st.sampled_from(("1", "0", "00", "¹", "1 ", " 1", "1e3")))


def either(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A documented value most of the time (7 in 8), anything else otherwise: a request with
    several fields then still often gets past validation to the code behind it."""
    # A middle value picks the junk: hypothesis draws the ends of a range more often than the rest.
    return st.integers(0, 7).flatmap(lambda n: JSON_VALUE if n == 4 else plausible)


@st.composite
def params(
    draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]], *, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Some of these documented fields (the ``required`` ones nearly always), and sometimes
    fields nobody documented."""
    optional = {k: v for k, v in fields.items() if k not in required}
    values = draw(st.fixed_dictionaries({k: fields[k] for k in required}))
    if not required or draw(st.integers(0, 3)) == 2:  # the optional ones, in half the calls that need some
        values.update(draw(st.fixed_dictionaries({}, optional={**optional, "undocumented": JSON_VALUE})))
    if required and draw(st.integers(0, 9)) == 5:
        values.pop(draw(st.sampled_from(required)))
    return values


def _form_pairs(values: dict[str, Any]) -> list[tuple[str, str]]:
    """Parameters as Rails-style form pairs: lists as ``name[]``, objects as ``name[key]``."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, list):
            pairs += [(f"{name}[]", _scalar(v)) for v in value]
        elif isinstance(value, dict):
            pairs += [(f"{name}[{k}]", _scalar(v)) for k, v in value.items()]
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _q(text: str) -> str:
    # Lone surrogates go out as the bytes they would be (invalid UTF-8): a client may send them.
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def urlencoded(values: dict[str, Any]) -> bytes:
    """``application/x-www-form-urlencoded`` bytes."""
    return "&".join(f"{_q(k)}={_q(v)}" for k, v in _form_pairs(values)).encode()


def multipart(values: dict[str, Any], *, boundary: str, files: Sequence[tuple[str, str, bytes]] = ()) -> bytes:
    """``multipart/form-data`` bytes: the fields, then files as (field name, content type, bytes)."""
    out = bytearray()
    for name, value in _form_pairs(values):
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode(
            "utf-8", "surrogatepass")
        out += value.encode("utf-8", "surrogatepass") + b"\r\n"
    for name, content_type, data in files:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="f"\r\n'
                f"Content-Type: {content_type}\r\n\r\n").encode("utf-8", "surrogatepass")
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


ENCODINGS = ("json", "form", "multipart", "query", "raw")


@st.composite
def encoded(
    draw: st.DrawFn, values: dict[str, Any], *, files: Sequence[tuple[str, str, bytes]] = (),
) -> tuple[str, bytes | None, dict[str, str]]:
    """The parameters in one of the encodings a client may use: (query string, body, headers)."""
    how = draw(st.sampled_from(ENCODINGS))
    if files:
        how = "multipart"
    if how == "json":
        text = json.dumps(values, ensure_ascii=draw(st.booleans()))
        return "", text.encode("utf-8", "surrogatepass"), {"Content-Type": "application/json"}
    if how == "form":
        return "", urlencoded(values), {"Content-Type": "application/x-www-form-urlencoded"}
    if how == "multipart":
        boundary = "byline-fuzz-boundary"
        body = multipart(values, boundary=boundary, files=files)
        if draw(st.integers(0, 9)) == 0:  # cut short
            body = body[: draw(st.integers(0, len(body)))]
        return "", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if how == "query":
        return urlencoded(values).decode(), None, {}
    content_type = draw(st.sampled_from(("application/json", "application/x-www-form-urlencoded",
                                         "multipart/form-data", "multipart/form-data; boundary=x",
                                         "text/plain", "application/octet-stream", "", "image/png")))
    return "", draw(st.binary(max_size=300)), {"Content-Type": content_type} if content_type else {}
