"""The Bluesky adapter: publishes one account's posts through its PDS, exactly once.

Exactly once
------------
Every attempt to publish one post writes to the same record key (the one its client chose,
``OutboundPost.record_key``, else ``records.rkey_for`` of its id), and the PDS refuses to
create a record where one exists (it answers 500), so a resend cannot make a second post.
Whenever ``createRecord`` did not clearly succeed (any error other than an auth or rate-limit
answer, including a connection dropped after the PDS may have written the record) the adapter
reads that key back with ``getRecord`` and, if the record is there, returns it as the result.
A post with media is looked up before its images are uploaded, so a retry does not upload them
again. ``find_existing`` is the same ``getRecord``. If the post's
text changed between attempts, the record first written stays (one Byline post is at most
one Bluesky post). A key a client chose may hold a record Byline did not write (the client
wrote it elsewhere): a record read back under it is this post only if it carries the post's
``byline`` (its public record on Byline), and otherwise the post fails, saying so.

A post's interaction settings (``OutboundPost.gates``: a threadgate, a postgate, under the
post's key) go in the same commit as the post (``applyWrites``): both are there or neither,
so a retry that finds the post finds them too. Deleting the post deletes them with it, in one
commit too: left behind, they would go on ruling replies and quotes of a post that is gone.
Once the post is out, :meth:`BlueskyAdapter.write_gates` changes them as an app does
(``putRecord``, ``createRecord``, ``deleteRecord`` under the post's key).

:meth:`BlueskyAdapter.preview_record` builds the record as :meth:`BlueskyAdapter.publish` will
(facets, reply references, ``createdAt``), without writing anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import quote

from adapters._http import Clock, check_base_url, utc_now
from adapters.base import (
    AccountInfo,
    AdapterConfig,
    AdapterError,
    MediaItem,
    OutboundPost,
    ProfileLine,
    PublishResult,
    ready,
    with_line,
)
from adapters.bluesky.client import PLATFORM, Login, XrpcClient, XrpcError, XrpcRawResponse, XrpcStream
from adapters.bluesky.records import (
    CARRIES,
    GATE_COLLECTIONS,
    POST_COLLECTION,
    AtUri,
    blob_cid,
    check_publishable,
    created_at_for,
    embed_blob_cids,
    images_embed,
    post_record,
    post_text,
    quoted_ref,
    record_key,
    reply_ref,
    sensitive_media_labels,
    valid_handle,
    with_quoted_cid,
)
from adapters.bluesky.text import find_mentions, fitting_facets, in_text_order, link_facets, mention_facet

DEFAULT_APP_URL: Final = "https://bsky.app"

_log = logging.getLogger(__name__)
_CREATE: Final = "com.atproto.repo.applyWrites#create"
_UPDATE: Final = "com.atproto.repo.applyWrites#update"
_DELETE: Final = "com.atproto.repo.applyWrites#delete"
_WRITE_TYPES: Final = {"createRecord": _CREATE, "putRecord": _UPDATE, "deleteRecord": _DELETE}
"""The record calls, and what each is as a write of ``applyWrites``."""


PROFILE_COLLECTION: Final = "app.bsky.actor.profile"
PROFILE_SWAP_ATTEMPTS: Final = 3
"""Reads and writes of the profile record while others change it at once, before giving up for now."""


class BlueskyAdapter:
    """Publishes to one Bluesky account through its PDS. See the package docstring."""

    platform = PLATFORM
    carries = CARRIES

    def __init__(self, config: AdapterConfig, *, clock: Clock | None = None) -> None:
        pds = check_base_url(config.options.get("pds", ""), option="pds", platform=PLATFORM)
        self._config = config
        self._pds = pds
        self._clock = clock or utc_now
        self._app_url = config.options.get("app_url", DEFAULT_APP_URL).rstrip("/")
        self._client = XrpcClient(config, pds=pds, clock=self._clock)

    def __repr__(self) -> str:
        return f"BlueskyAdapter(account={self._config.account!r}, pds={self._pds!r})"

    # ---- the Adapter protocol ----------------------------------------------------------------

    async def publish(self, post: OutboundPost) -> PublishResult:
        """Create the post under its record key, or return it if it is already there."""
        text = post_text(post)
        check_publishable(post, text)
        login = await self._client.ensure_login()
        rkey = record_key(post)
        if post.media:
            # Uploading the images again would be wasted work if an earlier attempt got through.
            existing = await self._get_post(rkey, post)
            if existing is not None:
                return existing
        try:
            record = await self._record(post, text)
        except AdapterError:
            if not post.reply_to:
                raise
            # A retry of a reply whose parent has since gone is still the post made before.
            existing = await self._get_post(rkey, post)
            if existing is None:
                raise
            return existing
        if post.embed is not None:
            # The client's embed is in the record as it was built; its blobs go up (again)
            # now, from Byline's copy, however long the post waited.
            await self._upload_blobs(post)
        elif post.media:
            record["embed"] = await self._embed_images(post.media)
        await ready(post)
        try:
            uri = await self._create(login.did, rkey, record, post.gates)
        except AdapterError as exc:
            if exc.auth_failed or exc.status == 429:
                raise
            # The record may exist: written by an earlier attempt (the PDS then answers 500),
            # or by this one before the connection dropped. Either way it is the post.
            try:
                existing = await self._get_post(rkey, post)
            except AdapterError as again:
                if post.record_key is not None and not again.retryable:
                    raise again from None  # the client's key holds a record of another
                existing = None
            if existing is None:
                raise
            _log.info("bluesky: post %s was already published as %s", post.post_id, existing)
            return existing
        return self._result(uri)

    async def _create(
        self, did: str, rkey: str, record: dict[str, Any], gates: Mapping[str, Mapping[str, Any]] | None
    ) -> str:
        """Write the post record (with its gates, in one commit); its uri."""
        if not gates:
            body = {"repo": did, "collection": POST_COLLECTION, "rkey": rkey, "record": record}
            created = await self._client.call("POST", "com.atproto.repo.createRecord", json_body=body)
            return str(created.get("uri", ""))
        writes = [{"$type": _CREATE, "collection": POST_COLLECTION, "rkey": rkey, "value": record}]
        writes += [
            {"$type": _CREATE, "collection": collection, "rkey": rkey, "value": dict(value)}
            for collection, value in gates.items()
        ]
        answer = await self._client.call(
            "POST", "com.atproto.repo.applyWrites", json_body={"repo": did, "writes": writes}
        )
        results = answer.get("results")
        first = results[0] if isinstance(results, list) and results else None
        return str(first.get("uri", "")) if isinstance(first, dict) else ""

    async def preview_record(self, post: OutboundPost) -> dict[str, Any]:
        """The record ``publish`` would write for ``post`` (its embed in, uploaded media left
        out), writing nothing."""
        text = post_text(post)
        check_publishable(post, text)
        return await self._record(post, text)

    async def xrpc_raw(
        self,
        method: str,
        nsid: str,
        *,
        query: str = "",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> XrpcRawResponse:
        """Relay one XRPC call to the PDS under the account's own session (``XrpcClient.relay``)."""
        return await self._client.relay(method, nsid, query=query, body=body, headers=headers)

    @asynccontextmanager
    async def xrpc_stream(
        self, nsid: str, *, query: str = "", headers: dict[str, str] | None = None,
    ) -> AsyncIterator[XrpcStream]:
        """Relay one GET with its body passed on in chunks (``XrpcClient.stream``)."""
        async with self._client.stream(nsid, query=query, headers=headers) as answer:
            yield answer

    async def find_existing(self, post: OutboundPost) -> PublishResult | None:
        """The post made for ``post.post_id``, read back by its record key, or None."""
        return await self._get_post(record_key(post), post)

    async def delete(self, remote_id: str) -> None:
        """Delete the post with this at:// URI, and its threadgate and postgate (under its key),
        in one ``applyWrites``; a post already gone counts as deleted, and a gate it left is
        deleted now.

        Only the records that are there are named: a PDS refuses a whole ``applyWrites`` that
        deletes a record it does not hold, where ``deleteRecord`` of one is a no-op. They are
        read first, since a gate may have been set (or taken off) in an app after the post went
        out; one that comes or goes between the read and the write makes the write fail, and a
        retry reads again."""
        login = await self._client.ensure_login()
        rkey = self._own_rkey(remote_id, login)
        there = [c for c in (POST_COLLECTION, *GATE_COLLECTIONS) if await self._held(login.did, c, rkey) is not None]
        if not there:
            return
        writes = [{"$type": _DELETE, "collection": collection, "rkey": rkey} for collection in there]
        await self._client.call(
            "POST", "com.atproto.repo.applyWrites", json_body={"repo": login.did, "writes": writes}
        )

    async def write_gates(
        self, writes: list[tuple[str, str, str, Mapping[str, Any] | None]], *, swap_record: str | None = None,
    ) -> XrpcRawResponse:
        """Write published posts' interaction settings under their keys, as an app does: each of
        ``writes`` is (``createRecord``, ``putRecord`` or ``deleteRecord``, the post's at://
        URI, a gate collection, the record or None); one alone is that call, with
        ``swap_record`` if given, several one ``applyWrites`` (one commit: all or none). The
        PDS's answer comes back whatever its status: its refusal (a record that exists, a swap
        that failed) is the app's to see as the PDS gave it."""
        login = await self._client.ensure_login()
        keyed: list[tuple[str, str, str, Mapping[str, Any] | None]] = []
        for call, remote_id, collection, value in writes:
            rkey = self._own_rkey(remote_id, login)
            if collection not in GATE_COLLECTIONS or call not in _WRITE_TYPES:
                raise AdapterError(f"bluesky: {call} of {collection} is no change of a post's gates", retryable=False)
            keyed.append((call, rkey, collection, value))
        body: dict[str, Any]
        if len(keyed) == 1:
            ((call, rkey, collection, value),) = keyed
            nsid = f"com.atproto.repo.{call}"
            body = {"repo": login.did, "collection": collection, "rkey": rkey}
            if value is not None:
                body["record"] = dict(value)
            if swap_record is not None:
                body["swapRecord"] = swap_record
        else:
            nsid = "com.atproto.repo.applyWrites"
            body = {"repo": login.did, "writes": [
                {"$type": _WRITE_TYPES[call], "collection": collection, "rkey": rkey,
                 **({"value": dict(value)} if value is not None else {})}
                for call, rkey, collection, value in keyed
            ]}
        return await self._client.relay(
            "POST", nsid, body=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}
        )

    async def gate(self, remote_id: str, collection: str) -> dict[str, Any] | None:
        """The threadgate or postgate (``collection``) the PDS holds now for the published post
        with this at:// URI, or None where it holds none: what a change of it would replace."""
        if collection not in GATE_COLLECTIONS:
            raise AdapterError(f"bluesky: {collection} is not a post's gate", retryable=False)
        login = await self._client.ensure_login()
        return await self._held(login.did, collection, self._own_rkey(remote_id, login))

    async def gate_record(self, remote_id: str, collection: str) -> tuple[str, dict[str, Any]] | None:
        """The threadgate or postgate (``collection``) the PDS holds now for the published post
        with this at:// URI, with its CID (what a swap over it names), or None where it holds none."""
        if collection not in GATE_COLLECTIONS:
            raise AdapterError(f"bluesky: {collection} is not a post's gate", retryable=False)
        login = await self._client.ensure_login()
        held = await self._held_record(login.did, collection, self._own_rkey(remote_id, login))
        if held is None:
            return None
        cid, value = held
        if cid is None:
            raise AdapterError(f"bluesky: the PDS's {collection} of {remote_id} has no CID", retryable=False)
        return cid, value

    async def owns(self, remote_id: str) -> bool:
        """Whether the post at this at:// URI is in the repo the credential signs in to: False
        once the credential is another account's (its DID another than the post's)."""
        login = await self._client.ensure_login()
        return AtUri.parse(remote_id).repo in (login.did, login.handle)

    @staticmethod
    def _own_rkey(remote_id: str, login: Login) -> str:
        """The record key of the account's own post at this at:// URI; refused for anything else."""
        uri = AtUri.parse(remote_id)
        if uri.collection != POST_COLLECTION:
            raise AdapterError(f"bluesky: {remote_id} is not a post", retryable=False)
        if uri.repo not in (login.did, login.handle):
            raise AdapterError(
                f"bluesky: {remote_id} belongs to another account than {login.handle}", retryable=False
            )
        return str(uri.rkey)

    async def _held(self, did: str, collection: str, rkey: str) -> dict[str, Any] | None:
        """The record of ``collection`` the repo holds under ``rkey``, or None where it holds none."""
        held = await self._held_record(did, collection, rkey)
        return held[1] if held is not None else None

    async def _held_record(self, did: str, collection: str, rkey: str) -> tuple[str | None, dict[str, Any]] | None:
        """The record of ``collection`` the repo holds under ``rkey`` with its CID (None where
        the answer names none), or None where it holds none."""
        try:
            answer = await self._client.xrpc(
                "GET", "com.atproto.repo.getRecord",
                params={"repo": did, "collection": collection, "rkey": rkey},
            )
        except XrpcError as exc:
            if exc.status == 400 and exc.error == "RecordNotFound":
                return None
            raise self._client.classify(exc) from None
        value = answer.get("value")
        if not isinstance(value, dict):
            raise AdapterError(f"bluesky: the PDS's {collection} under {rkey} is not an object", retryable=False)
        cid = answer.get("cid")
        return cid if isinstance(cid, str) else None, value

    async def verify_credentials(self) -> AccountInfo:
        """Who the app password logs in as, asked of the PDS (not answered from memory)."""
        answer = await self._client.call("GET", "com.atproto.server.getSession")
        did = str(answer.get("did", ""))
        handle = str(answer.get("handle", ""))
        return AccountInfo(
            remote_id=did,
            handle=handle,
            url=f"{self._app_url}/profile/{handle or did}",
        )

    # ---- the profile byline ------------------------------------------------------------------

    async def set_profile_line(self, line: ProfileLine) -> None:
        """Keep one line of the ``app.bsky.actor.profile`` record's ``description`` (rkey
        ``self``): read the record, change that line only, and write it back with
        ``swapRecord`` set to the CID read, so a profile edited meanwhile (in an app) is read
        again rather than overwritten. The record's other fields (avatar, banner,
        displayName…) go back as they were."""
        login = await self._client.ensure_login()
        for _ in range(PROFILE_SWAP_ATTEMPTS):
            try:
                answer = await self._client.xrpc(
                    "GET", "com.atproto.repo.getRecord",
                    params={"repo": login.did, "collection": PROFILE_COLLECTION, "rkey": "self"},
                )
                record = answer.get("value")
                swap = answer.get("cid")
            except XrpcError as exc:
                if not (exc.status == 400 and exc.error == "RecordNotFound"):
                    raise self._client.classify(exc) from None
                record, swap = {"$type": PROFILE_COLLECTION}, None
            if not isinstance(record, dict):
                raise AdapterError("bluesky: the profile record is not an object", retryable=False)
            description = record.get("description")
            new = with_line(description if isinstance(description, str) else "", line)
            if new == (description or ""):
                return
            changed = {**record, "description": new} if new else {k: v for k, v in record.items() if k != "description"}
            body: dict[str, Any] = {"repo": login.did, "collection": PROFILE_COLLECTION, "rkey": "self",
                                    "record": changed, "swapRecord": swap}
            try:
                await self._client.call("POST", "com.atproto.repo.putRecord", json_body=body)
                return
            except AdapterError as exc:
                if not (exc.detail or "").startswith("InvalidSwap"):
                    raise
        raise AdapterError("bluesky: the profile kept changing while the byline was set", retryable=True)

    # ---- building the record -----------------------------------------------------------------

    async def _record(self, post: OutboundPost, text: str) -> dict[str, Any]:
        facets = fitting_facets(post.facets, text)
        if facets is None:
            facets = await self._facets(text)
        reply = await self._reply_ref(post.reply_to, written_to=post.reply_to_cid) if post.reply_to else None
        embed = await self._still_quoted(post.embed, own=post.quotes_own_post) if post.embed is not None else None
        shows_media = bool(post.media) or (post.embed is not None and bool(embed_blob_cids(post.embed)))
        labels = dict(post.self_labels) if post.self_labels is not None else (
            sensitive_media_labels() if shows_media and (post.sensitive or post.spoiler_text) else None
        )
        return post_record(
            text=text, created_at=created_at_for(post, self._clock()),
            language=post.language, facets=facets, reply=reply, embed=embed, labels=labels,
            byline=post.record_url,
        )

    async def _facets(self, text: str) -> list[dict[str, Any]]:
        facets = link_facets(text)
        resolved: dict[str, str | None] = {}
        for span in find_mentions(text):
            if span.value not in resolved:
                resolved[span.value] = await self._resolve_handle(span.value)
            did = resolved[span.value]
            if did is not None:
                facets.append(mention_facet(text, span, did))
        return in_text_order(facets)

    async def _resolve_handle(self, handle: str) -> str | None:
        try:
            answer = await self._client.xrpc(
                "GET", "com.atproto.identity.resolveHandle", params={"handle": handle}
            )
        except XrpcError as exc:
            if exc.status == 400:
                return None  # no such handle: leave the mention as plain text
            raise self._client.classify(exc) from None
        did = answer.get("did")
        return did if isinstance(did, str) and did.startswith("did:") else None

    async def parent_record(self, parent_uri: str) -> dict[str, Any]:
        """The post ``parent_uri`` names as the PDS holds it now (``getRecord``: its uri, cid and
        value); an ``AdapterError`` whose ``detail`` begins ``RecordNotFound`` where it has none."""
        uri = AtUri.parse(parent_uri)
        if uri.collection != POST_COLLECTION:
            raise AdapterError(f"bluesky: can only reply to posts, not {parent_uri}", retryable=False)
        return await self.record(parent_uri, what="the post replied to")

    async def record(self, address: str, *, what: str = "the record") -> dict[str, Any]:
        """The record at ``address`` (of any collection: a quote may show a post, a feed or a
        list) as the PDS holds it now (``getRecord``: its uri, cid and value); an
        ``AdapterError`` whose ``detail`` begins ``RecordNotFound`` where it has none."""
        uri = AtUri.parse(address)
        try:
            return await self._client.xrpc(
                "GET",
                "com.atproto.repo.getRecord",
                params={"repo": uri.repo, "collection": uri.collection, "rkey": uri.rkey},
            )
        except XrpcError as exc:
            if exc.status == 400 and exc.error == "RecordNotFound":
                raise AdapterError(
                    f"bluesky: {what}, {address}, does not exist",
                    retryable=False,
                    status=exc.status,
                    detail=self._client.detail(exc),
                ) from None
            raise self._client.classify(exc) from None

    async def vouched_handle(self, repo: str) -> str | None:
        """The handle of the repository ``repo`` (a DID, or a handle) as the PDS vouches for it
        (``describeRepo``, whose ``handleIsCorrect`` says its DID document names that handle
        back), where it is a valid handle; None where the PDS holds no such repository or
        cannot vouch for its handle."""
        try:
            answer = await self._client.xrpc("GET", "com.atproto.repo.describeRepo", params={"repo": repo})
        except XrpcError as exc:
            if exc.status == 400:
                return None  # a repository the PDS does not hold, or none at all
            raise self._client.classify(exc) from None
        handle = answer.get("handle")
        if answer.get("handleIsCorrect") is not True or not isinstance(handle, str) or not valid_handle(handle):
            return None
        return handle

    def post_url(self, uri: str, handle: str) -> str:
        """The address in the Bluesky app of the post ``uri``, under its author's ``handle``."""
        return self._post_url(handle, AtUri.parse(uri).rkey)

    def _post_url(self, profile: str, rkey: str) -> str:
        return f"{self._app_url}/profile/{quote(profile)}/post/{quote(rkey)}"

    async def _reply_ref(self, parent_uri: str, *, written_to: str | None = None) -> dict[str, Any]:
        parent = await self.parent_record(parent_uri)
        if written_to is not None and parent.get("cid") != written_to:
            # Deleted and written again under its key since: other words, which the reply's
            # approvers never saw it answer.
            raise AdapterError(
                f"bluesky: the post replied to, {parent_uri}, is not the one the reply was written to: "
                f"it was deleted and written again since (CID {written_to} then, {parent.get('cid')} now)",
                retryable=False,
            )
        return reply_ref(parent, parent_uri)

    async def _still_quoted(self, embed: Mapping[str, Any], *, own: bool = False) -> Mapping[str, Any]:
        """The embed to write: refuse (for good) to send a quote of a record that is no longer the
        one it names: deleted and written again under its key since, with other words, which its
        approvers never saw it show. A record of the account's own repository not written yet is
        one of its posts waiting to go out, at the address Byline answered for it: sent as
        written. ``own``: the quote of one of the account's posts that went out after the quote
        was written (``OutboundPost.quotes_own_post``), written with the CID its record has."""
        quote = quoted_ref(embed)
        if quote is None:
            return embed
        uri, cid = quote
        try:
            now = (await self.record(uri, what="the record quoted")).get("cid")
        except AdapterError as exc:
            login = await self._client.ensure_login()
            if own or not (exc.detail or "").startswith("RecordNotFound") or AtUri.parse(uri).repo != login.did:
                raise
            return embed
        if own and isinstance(now, str):
            return with_quoted_cid(embed, now)
        if now != cid:
            raise AdapterError(
                f"bluesky: the record quoted, {uri}, is not the one the post was written to quote: it was "
                f"deleted and written again since (CID {cid} then, {now} now)",
                retryable=False,
            )
        return embed

    async def _embed_images(self, media: tuple[MediaItem, ...]) -> dict[str, Any]:
        images = []
        for item in media:
            answer = await self._client.call(
                "POST", "com.atproto.repo.uploadBlob", data=item.data, content_type=item.mime_type
            )
            blob = answer.get("blob")
            if not isinstance(blob, dict):
                raise AdapterError("bluesky: uploadBlob answered without a blob", retryable=True)
            images.append((item.description or "", blob))
        return images_embed(images)

    async def _upload_blobs(self, post: OutboundPost) -> None:
        """Upload the blobs ``post.embed`` refers to (in ``post.media``); the PDS must give each
        the CID the embed names, or the record would point at nothing."""
        assert post.embed is not None
        wanted = embed_blob_cids(post.embed)
        uploaded: set[str] = set()
        for item in post.media:
            cid = blob_cid(item.data)
            if cid not in wanted or cid in uploaded:
                continue
            answer = await self._client.call(
                "POST", "com.atproto.repo.uploadBlob", data=item.data, content_type=item.mime_type
            )
            blob = answer.get("blob")
            ref = blob.get("ref") if isinstance(blob, dict) else None
            got = ref.get("$link") if isinstance(ref, dict) else None
            if got != cid:
                raise AdapterError(
                    f"bluesky: uploadBlob gave {got!r} for the blob {cid} of post {post.post_id}",
                    retryable=False,
                )
            uploaded.add(cid)
        missing = [cid for cid in wanted if cid not in uploaded]
        if missing:
            raise AdapterError(
                f"bluesky: the blob {missing[0]} that post {post.post_id} shows is no longer kept",
                retryable=False,
            )

    # ---- reading back ------------------------------------------------------------------------

    async def _get_post(self, rkey: str, post: OutboundPost) -> PublishResult | None:
        """The record under ``rkey``, if it is ``post``'s (see "Exactly once")."""
        login = await self._client.ensure_login()
        try:
            answer = await self._client.xrpc(
                "GET",
                "com.atproto.repo.getRecord",
                params={"repo": login.did, "collection": POST_COLLECTION, "rkey": rkey},
            )
        except XrpcError as exc:
            if exc.status == 400 and exc.error == "RecordNotFound":
                return None
            raise self._client.classify(exc) from None
        value = answer.get("value")
        theirs = value.get("byline") if isinstance(value, dict) else None
        if post.record_key is not None and post.record_url is not None and theirs != post.record_url:
            raise AdapterError(
                f"bluesky: the record key {rkey} its client chose for post {post.post_id} already "
                "holds another record on the PDS: post it again under a new key",
                retryable=False,
            )
        return self._result(str(answer.get("uri", "")))

    def _result(self, uri: str) -> PublishResult:
        at = AtUri.parse(uri)
        login = self._client.login
        handle = login.handle if login else self._config.handle
        return PublishResult(
            remote_id=uri,
            url=self._post_url(handle or at.repo, at.rkey),
        )
