"""Fixtures for the people's pages: a gateway whose people can sign in, and browsers of theirs
(an aiohttp client with its own cookie jar, as a browser keeps one)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from gateway.appkeys import PEOPLE
from gateway.services import people
from tests.conftest import USERS, Gateway

PASSWORD_SUFFIX = "-correct-horse"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def password_of(name: str) -> str:
    """The test password of a person."""
    return name + PASSWORD_SUFFIX


@dataclass
class Visitor:
    """One browser: its own cookies, and the CSRF value of the last page it read."""

    session: aiohttp.ClientSession
    base: str
    csrf: str = ""
    last: str = field(default="", repr=False)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        """GET a page; remembers its CSRF value."""
        async with self.session.get(self.base + path, allow_redirects=False, **kwargs) as resp:
            text = await resp.text()
            self.last = text
            if found := _CSRF.search(text):
                self.csrf = found.group(1)
            return resp.status, text

    async def post(self, path: str, form: dict[str, str], *, csrf: bool = True, **kwargs: Any
                   ) -> tuple[int, str, aiohttp.ClientResponse]:
        """Submit a form as the page would (with the CSRF value unless ``csrf`` is False)."""
        data = {"csrf": self.csrf, **form} if csrf else form
        async with self.session.post(self.base + path, data=data, allow_redirects=False, **kwargs) as resp:
            return resp.status, await resp.text(), resp

    async def sign_in(self, name: str, password: str | None = None) -> None:
        """Sign in with the name and password, and insist it worked."""
        status, body, _resp = await self.post(
            "/signin", {"name": name, "password": password or password_of(name)}, csrf=False
        )
        assert status == 303, body
        await self.get("/queue")


@dataclass
class Pages:
    """The gateway, and a way to open browsers on it."""

    gateway: Gateway
    base: str
    _sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    async def visitor(self) -> Visitor:
        """A browser with no one signed in."""
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self._sessions.append(session)
        return Visitor(session=session, base=self.base)

    async def person(self, name: str) -> Visitor:
        """A browser with ``name`` signed in."""
        visitor = await self.visitor()
        await visitor.sign_in(name)
        return visitor


async def page_as(gw: Gateway, name: str, path: str) -> tuple[int, str]:
    """One page of the gateway ``gw`` as ``name`` sees it, signed in with a browser of its own
    (``name`` added as a person first): its status and HTML."""
    await gw.app[PEOPLE].add(name, password_of(name), email=f"{name}@example.org")
    browsers = Pages(gateway=gw, base=str(gw.client.make_url("")).rstrip("/"))
    try:
        return await (await browsers.person(name)).get(path)
    finally:
        for session in browsers._sessions:
            await session.close()


_HASHES: dict[str, str] = {}
"""Each test person's password hash, by password, made the first time a test needs it."""


class _RememberedHasher:
    """Byline's own password hasher, but each test person's password is hashed once a session:
    an argon2 hash costs a tenth of a second, and every test here adds five people. Signing in
    still verifies against the real hash."""

    def __init__(self, hasher: Any) -> None:
        self._hasher = hasher

    def hash(self, password: str) -> str:
        """The password's argon2 hash, made once."""
        if password not in _HASHES:
            _HASHES[password] = self._hasher.hash(password)
        return _HASHES[password]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hasher, name)


@contextlib.asynccontextmanager
async def pages_on(gateway: Gateway, names: Iterable[str] = USERS) -> AsyncIterator[Pages]:
    """Pages on ``gateway`` (the ``gateway`` fixture's, or one a test started itself), where
    each of ``names`` can sign in; their browsers are closed at the end."""
    with pytest.MonkeyPatch.context() as patch:
        # Only while the test people are added (People.add as ever, the hash remembered).
        patch.setattr(people, "_HASHER", _RememberedHasher(people._HASHER))
        for name in names:
            await gateway.app[PEOPLE].add(name, password_of(name), email=f"{name}@example.org")
    found = Pages(gateway=gateway, base=str(gateway.client.make_url("")).rstrip("/"))
    try:
        yield found
    finally:
        for session in found._sessions:
            await session.close()


@pytest.fixture
async def pages(gateway: Gateway) -> AsyncIterator[Pages]:
    """The gateway of ``gateway``, with every test person able to sign in."""
    async with pages_on(gateway) as found:
        yield found
