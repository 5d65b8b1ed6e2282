"""Device cookies: a browser a person has signed in from is known again, so that no one can keep
them from signing in by sending wrong passwords against their name.

This is OWASP's design ("Slow Down Online Guessing Attacks with Device Cookies"). Each
successful sign-in in a browser gives it a cookie naming the person, when it was given, and a
random nonce, authenticated with an HMAC-SHA256 under the gateway's own key for it
(``gateway_key(db, DEVICE_COOKIES)``). A sign-in for that very name that carries a valid one
counts its failures against the cookie's nonce (and the address) instead of against the name:
guesses sent from anywhere else use up the name's allowance, never the browser's. A stolen
cookie guesses no faster: after its own allowance its nonce is refused like a name is.

The cookie is no session and no secret beyond its nonce: it opens nothing, and signing out
leaves it. It carries no password, nor anything derived from one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from gateway.clock import Clock
from gateway.types import person_name_problem

LIFETIME: Final = timedelta(days=180)
"""How long a device cookie is taken, by the browser and by the gateway."""
MAX_COOKIE: Final = 256
"""A longer value is no device cookie of ours (a name of 64, a time, a nonce and a MAC fit)."""
_PURPOSE: Final = b"byline device cookie\x00"


@dataclass(frozen=True, kw_only=True)
class Device:
    """A browser known by a valid device cookie: whose it is, and its nonce."""

    person: str
    nonce: str

    @property
    def key(self) -> str:
        """The throttle key its failures count against."""
        return f"device:{self.nonce}"


@dataclass(frozen=True, kw_only=True)
class DeviceCookies:
    """Makes device cookies and tells which are valid."""

    key: bytes
    clock: Clock
    lifetime: timedelta = LIFETIME

    def _mac(self, person: str, issued: int, nonce: str) -> str:
        message = _PURPOSE + f"{person}\x00{issued}\x00{nonce}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def issue(self, person: str) -> str:
        """A new device cookie for ``person``: ``name:issued:nonce:mac`` (a person's name has no
        colon), each part plain cookie text that needs no quoting."""
        issued = int(self.clock.now().timestamp())
        nonce = secrets.token_urlsafe(16)
        return f"{person}:{issued}:{nonce}:{self._mac(person, issued, nonce)}"

    def read(self, value: str | None) -> Device | None:
        """The device a cookie stands for, when it is one of ours, unaltered and not expired;
        None for anything else."""
        if not value or len(value) > MAX_COOKIE:
            return None
        parts = value.split(":")
        if len(parts) != 4:
            return None
        person, issued_text, nonce, mac = parts
        if person_name_problem(person) or not issued_text.isascii() or not issued_text.isdigit() or not nonce:
            return None
        issued = int(issued_text)
        if not hmac.compare_digest(self._mac(person, issued, nonce).encode(), mac.encode()):
            return None
        now = self.clock.now().timestamp()
        if not issued <= now + 60 or now - issued >= self.lifetime.total_seconds():
            return None
        return Device(person=person, nonce=nonce)
