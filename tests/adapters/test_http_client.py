"""The HTTP client the Mastodon, X and Bluesky adapters share: what an account's adapter needs to start."""

from __future__ import annotations

import aiohttp
import pytest

from adapters._http import redact
from adapters.base import AdapterConfig
from adapters.bluesky import BlueskyAdapter
from adapters.mastodon import MastodonAdapter
from adapters.x import XAdapter

OPTIONS = {
    "mastodon": {"instance": "https://social.example"},
    "x": {"api": "https://api.x.example"},
    "bluesky": {"pds": "https://pds.example"},
}
ADAPTERS = {"mastodon": MastodonAdapter, "x": XAdapter, "bluesky": BlueskyAdapter}


@pytest.mark.parametrize("platform", ["mastodon", "x", "bluesky"])
async def test_an_adapter_needs_the_shared_session_and_a_secret(platform: str) -> None:
    """Without the gateway's session, or without a resolved token, an adapter refuses to start
    and says which; with both it starts, and its repr shows no token."""
    adapter = ADAPTERS[platform]
    options = OPTIONS[platform]
    with pytest.raises(ValueError, match=f"^{platform}: the adapter needs the gateway's shared session$"):
        adapter(AdapterConfig(account="brand", handle="brand", secret="tok-secret", options=options))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match=f"^{platform}: no access token was resolved for this account$"):
            adapter(AdapterConfig(account="brand", handle="brand", options=options, session=session))
        made = adapter(AdapterConfig(account="brand", handle="brand", secret="tok-secret", options=options,
                                     session=session))
        assert made.platform == platform and "tok-secret" not in repr(made)


SECRET = "tok_SUPERSECRET_0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"a {SECRET} b {SECRET}", "a [redacted] b [redacted]"),
        ("you sent tok_SUPERS…", "you sent [redacted]…"),  # cut, then an ellipsis
        ("you sent tok_SUPERSECRET_01", "you sent [redacted]"),  # cut at the end
        ("tok_S… and tok_SUPER…", "[redacted]… and [redacted]…"),
        ("a token is fine…", "a token is fine…"),  # no beginning of the secret
        ("tok…", "tok…"),  # too short to say
    ],
)
def test_redact_takes_a_secret_whole_or_cut(text: str, shown: str) -> None:
    """A secret is redacted wherever it is, and its beginning where a cut ended the text."""
    assert redact(text, SECRET) == shown
