"""Length as Bluesky counts it (graphemes by ICU, UTF-8 bytes), checked against the PDS itself.

The reference is the PDS's own code: ``@atproto/lex-data``'s ``graphemeLen`` and ``utf8Len`` run in
Node from the installed harness, and the running PDS refusing a record past 300 graphemes or 3000
bytes when the text is sent to it directly, past the adapter.
"""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from typing import Any

import aiohttp
import pytest
import regex

from adapters.base import AdapterConfig, AdapterError, OutboundPost
from adapters.bluesky import MAX_GRAPHEMES, BlueskyAdapter, grapheme_count, rkey_for
from adapters.bluesky.text import MAX_TEXT_BYTES, utf8_length
from tests.platforms.bluesky.fixture import HARNESS_DIR, BlueskyPds, PdsAccount

FAMILY = "👨\u200d👩\u200d👧\u200d👦"
BENGALI_DIGIT_CONJUNCT = "১্য"  # a digit, a virama, a consonant: GB9c joins only consonants

# (text, graphemes): ZWJ sequences, flags, combining marks, Hangul, Indic conjuncts, and more.
TRICKY: tuple[tuple[str, int], ...] = (
    ("abc", 3),
    (FAMILY, 1),
    ("🏳️\u200d🌈", 1),
    ("👩🏽\u200d🚀", 1),
    ("🫱🏻\u200d🫲🏿", 1),
    ("😶\u200d🌫️", 1),
    ("🙂\u200d", 1),
    ("👍🏽!", 2),
    ("🇩🇪🇫🇷", 2),
    ("🇺🇸🇺", 2),
    ("🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", 1),
    ("1\ufe0f\u20e3", 1),
    ("❤️", 1),
    ("e\u0301" * 4, 4),
    ("Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a", 1),
    ("\u1100\u1161\u11a8", 1),
    ("\uac00\u11a8", 1),
    ("\u1100\u1100\u1161", 1),
    ("각각", 2),
    ("a\r\nb", 3),
    ("\r\n\n", 2),
    ("क्षत्रिय", 3),
    ("ন্ত্র", 1),
    ("ക്ക", 1),
    ("க்ஷ", 2),
    (BENGALI_DIGIT_CONJUNCT, 2),
    ("ก่่่", 1),
    ("\u0600a", 1),
    ("a\u200db", 2),
    ("\u00ad", 1),
)

# Characters that make grapheme breaking hard, for random mixes.
_POOL = [chr(code) for code in (
    0x61, 0x20, 0x0D, 0x0A, 0x200D, 0x200C, 0xFE0F, 0x301, 0x34F, 0x20E3, 0x31, 0x1F468, 0x1F469,
    0x1F3FD, 0x1F3FB, 0x1F1E9, 0x1F1EA, 0x1F3F4, 0xE0067, 0xE007F, 0x2764, 0x1F44D, 0x1F9D1, 0x1F91D,
    0x1FAF1, 0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x915, 0x937, 0x94D, 0x93F, 0x930, 0x931, 0x966,
    0x995, 0x9AF, 0x9CD, 0x9E6, 0x9E7, 0xB95, 0xBCD, 0xD15, 0xD4D, 0xE01, 0xE33, 0xE48, 0x600, 0xAD,
    0x1B05, 0x1B44, 0xA8F1, 0x11D46, 0xF40, 0x200B, 0x1BC9D,
)]


def pds_counts(texts: list[str]) -> list[tuple[int, int]]:
    """(graphemes, UTF-8 bytes) of each text, as the PDS's own lex-data code counts them."""
    script = (
        "const {graphemeLen, utf8Len} = require('@atproto/lex-data');"
        "let input = ''; process.stdin.on('data', d => input += d);"
        "process.stdin.on('end', () => process.stdout.write(JSON.stringify("
        "JSON.parse(input).map(t => [graphemeLen(t), utf8Len(t)]))));"
    )
    done = subprocess.run(
        ["node", "-e", script], cwd=HARNESS_DIR, input=json.dumps(texts), capture_output=True,
        text=True, timeout=120, check=True,
    )
    return [(graphemes, size) for graphemes, size in json.loads(done.stdout)]


def test_counts_match_the_pds_on_tricky_text(bluesky_pds: BlueskyPds) -> None:
    """ZWJ emoji, flags, keycaps, combining marks, Hangul and Indic conjuncts count as the PDS counts."""
    texts = [text for text, _ in TRICKY]
    expected = [(graphemes, len(text.encode("utf-8"))) for text, graphemes in TRICKY]
    assert pds_counts(texts) == expected
    assert [(grapheme_count(text), utf8_length(text)) for text in texts] == expected


def test_regex_x_undercounts_where_icu_does_not() -> None:
    """Why not the regex library's \\X: it joins a digit, a virama and a consonant into one."""
    assert (len(regex.findall(r"\X", BENGALI_DIGIT_CONJUNCT)), grapheme_count(BENGALI_DIGIT_CONJUNCT)) == (1, 2)


def test_random_mixes_never_count_fewer_than_the_pds(bluesky_pds: BlueskyPds) -> None:
    """On random mixes of hard characters the count is the PDS's, or (newer Unicode joins the
    system's ICU 72 does not know, about 1 in 1000) more, never fewer: nothing is sent too long."""
    chance = random.Random(20260529)
    texts = ["".join(chance.choices(_POOL, k=chance.randint(1, 10))) for _ in range(5000)]
    theirs = pds_counts(texts)
    ours = [(grapheme_count(text), utf8_length(text)) for text in texts]
    assert [size for _, size in ours] == [size for _, size in theirs]
    fewer = [text for text, (mine, _), (pds, _) in zip(texts, ours, theirs, strict=True) if mine < pds]
    more = [text for text, (mine, _), (pds, _) in zip(texts, ours, theirs, strict=True) if mine > pds]
    assert fewer == []
    assert len(more) <= len(texts) // 100


# ---- at the limits, against the PDS ------------------------------------------------------------


def _adapter(http: aiohttp.ClientSession, pds: BlueskyPds, account: PdsAccount) -> BlueskyAdapter:
    return BlueskyAdapter(AdapterConfig(
        account=f"bluesky-{account.handle}", handle=account.handle, secret=account.app_password,
        options={"pds": pds.pds_url}, session=http,
    ))


def _post(text: str) -> OutboundPost:
    post_id = str(uuid.uuid4().int >> 64)
    return OutboundPost(post_id=post_id, idempotency_key=f"{post_id}:1", text=text)


async def _create_directly(http: aiohttp.ClientSession, pds: BlueskyPds, account: PdsAccount, text: str) -> Any:
    """createRecord sent straight to the PDS, past the adapter's own check: (status, body)."""
    async with http.post(f"{pds.pds_url}/xrpc/com.atproto.server.createSession",
                         json={"identifier": account.handle, "password": account.app_password}) as answer:
        token = (await answer.json())["accessJwt"]
    record = {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-01-01T00:00:00.000Z"}
    async with http.post(f"{pds.pds_url}/xrpc/com.atproto.repo.createRecord",
                         json={"repo": account.did, "collection": "app.bsky.feed.post", "record": record},
                         headers={"Authorization": f"Bearer {token}"}) as answer:
        return answer.status, await answer.json(content_type=None)


async def _stored_text(http: aiohttp.ClientSession, pds: BlueskyPds, did: str, rkey: str) -> str | None:
    async with http.get(f"{pds.pds_url}/xrpc/com.atproto.repo.getRecord",
                        params={"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey}) as answer:
        body = await answer.json(content_type=None)
    return body["value"]["text"] if answer.status == 200 else None


@pytest.mark.parametrize(("unit", "fits"), [
    (BENGALI_DIGIT_CONJUNCT, MAX_GRAPHEMES // 2),  # 2 graphemes, 9 bytes each
    ("🇩🇪e\u0301\u1100\u1161\u11a8👩🏽\u200d🚀क्ष", MAX_GRAPHEMES // 5),  # 5 graphemes, 44 bytes
    (FAMILY, MAX_TEXT_BYTES // 25),  # 1 grapheme, 25 bytes: the byte limit comes first
])
async def test_the_adapter_refuses_exactly_what_the_pds_refuses(
    bluesky_pds: BlueskyPds, unit: str, fits: int
) -> None:
    """The longest text of a unit is published whole; one unit more is refused by the adapter up
    front, and by the PDS too when sent to it directly, which names the same count."""
    alice = bluesky_pds.account("alice.test")
    async with aiohttp.ClientSession() as http:
        adapter = _adapter(http, bluesky_pds, alice)
        longest = _post(unit * fits)
        await adapter.publish(longest)
        assert await _stored_text(http, bluesky_pds, alice.did, rkey_for(longest.post_id)) == longest.text

        too_long = _post(unit * (fits + 1))
        with pytest.raises(AdapterError) as caught:
            await adapter.publish(too_long)
        assert not caught.value.retryable and "Bluesky allows at most" in caught.value.message
        assert await _stored_text(http, bluesky_pds, alice.did, rkey_for(too_long.post_id)) is None

        status, body = await _create_directly(http, bluesky_pds, alice, too_long.text)
        if grapheme_count(too_long.text) > MAX_GRAPHEMES:
            counted = f"grapheme too big (maximum {MAX_GRAPHEMES}, got {grapheme_count(too_long.text)})"
        else:
            counted = f"string too big (maximum {MAX_TEXT_BYTES}, got {utf8_length(too_long.text)})"
        assert (status, body["error"]) == (400, "InvalidRequest")
        assert counted in body["message"], body
