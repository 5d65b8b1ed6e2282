"""OAuth scopes: Mastodon's names for what an app's token may do, and how one covers another.

A person's own token (made with ``byline token create``) has no scopes: it may do whatever the
person may. A token an app got through the sign-in carries the scopes the person granted, on
every surface it is shown to (the Mastodon client API, the native API), and is refused where
a scope means nothing: the sign-in page itself, and as an XRPC app password.
"""

from __future__ import annotations

from dataclasses import dataclass

# Mastodon's scopes (docs.joinmastodon.org/api/oauth-scopes), without admin:* — nothing an app
# does through the gateway administers the platform.
_SCOPE_FAMILIES = {
    "read": ("accounts", "blocks", "bookmarks", "favourites", "filters", "follows", "lists",
             "mutes", "notifications", "search", "statuses"),
    "write": ("accounts", "blocks", "bookmarks", "conversations", "favourites", "filters",
              "follows", "lists", "media", "mutes", "notifications", "reports", "statuses"),
}
SCOPES = frozenset(
    ["read", "write", "follow", "push", "profile"]
    + [f"{family}:{part}" for family, parts in _SCOPE_FAMILIES.items() for part in parts]
)
# "follow" is the old name for these (Mastodon still grants them with it).
_FOLLOW = frozenset({"read:blocks", "write:blocks", "read:follows", "write:follows",
                     "read:mutes", "write:mutes"})


def scope_allows(granted: frozenset[str] | None, needed: str) -> bool:
    """Whether a grant covers ``needed`` (``write`` covers ``write:statuses``); None is all."""
    if granted is None:
        return True
    family = needed.partition(":")[0]
    return needed in granted or family in granted or ("follow" in granted and needed in _FOLLOW)


@dataclass(frozen=True, kw_only=True)
class Caller:
    """Who is asking: a user, the one account a client-app token is bound to, if any, and what
    an app's OAuth token was granted (None for a person's own token, which no scope limits)."""

    user: str
    account: str | None = None
    scopes: frozenset[str] | None = None

    def may(self, needed: str) -> bool:
        """Whether this caller's scopes cover ``needed``."""
        return scope_allows(self.scopes, needed)
