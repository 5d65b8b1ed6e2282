"""Bluesky: AT Protocol XRPC calls to the account's PDS over the shared aiohttp session.

Options: ``pds`` (the PDS base URL, required, e.g. ``https://bsky.social``; plain http only
for loopback), ``timeout`` (seconds per request, default 30), ``app_url`` (where post links
point, default ``https://bsky.app``). ``AdapterConfig.handle`` is the account's handle and
``secret`` its app password.

The package, read from the text outwards:

* ``text``: length as Bluesky counts it (graphemes by ICU, UTF-8 bytes) and rich-text facets.
* ``records``: record keys, the post record and its embeds, CIDs: pure functions.
* ``client``: the XRPC client on the shared HTTP client (``adapters._http``): the account's
  session, calls, error classification and relaying.
* ``adapter``: :class:`BlueskyAdapter`, publishing each post exactly once.

Each module's docstring tells its part of the contract.
"""

from adapters.base import PUBLIC_VISIBILITIES
from adapters.bluesky.adapter import DEFAULT_APP_URL, BlueskyAdapter
from adapters.bluesky.client import (
    PLATFORM,
    RELAY_CHUNK_BYTES,
    Login,
    XrpcClient,
    XrpcError,
    XrpcRawResponse,
    XrpcStream,
)
from adapters.bluesky.records import (
    CREATED_AT_MAX_AGE_SECONDS,
    MAX_IMAGE_BYTES,
    MAX_IMAGES,
    POST_COLLECTION,
    SENSITIVE_MEDIA_LABEL,
    AtUri,
    blob_cid,
    blob_digest,
    created_at_for,
    embed_blob_cids,
    is_tid,
    iso_datetime,
    key_refused,
    may_be_derived,
    parse_datetime,
    post_record,
    quoted_ref,
    record_cid,
    record_key,
    rkey_for,
    valid_at_uri,
)
from adapters.bluesky.text import (
    MAX_GRAPHEMES,
    MAX_TEXT_BYTES,
    Span,
    find_links,
    find_mentions,
    fitting_facets,
    grapheme_count,
    link_facets,
)

__all__ = [
    "CREATED_AT_MAX_AGE_SECONDS",
    "DEFAULT_APP_URL",
    "MAX_GRAPHEMES",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "MAX_TEXT_BYTES",
    "PLATFORM",
    "POST_COLLECTION",
    "PUBLIC_VISIBILITIES",
    "RELAY_CHUNK_BYTES",
    "SENSITIVE_MEDIA_LABEL",
    "AtUri",
    "BlueskyAdapter",
    "Login",
    "Span",
    "XrpcClient",
    "XrpcError",
    "XrpcRawResponse",
    "XrpcStream",
    "blob_cid",
    "blob_digest",
    "created_at_for",
    "embed_blob_cids",
    "find_links",
    "find_mentions",
    "fitting_facets",
    "grapheme_count",
    "is_tid",
    "iso_datetime",
    "key_refused",
    "link_facets",
    "may_be_derived",
    "parse_datetime",
    "post_record",
    "quoted_ref",
    "record_cid",
    "record_key",
    "rkey_for",
    "valid_at_uri",
]
