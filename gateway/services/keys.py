"""The gateway's own secret keys, one per purpose, kept in the database.

Each is random, made by whichever replica needs it first and then shared by all of them; none
is derived from the log's signing key, so knowing one key never tells another.
"""

from __future__ import annotations

import secrets
import time

from gateway.storage import keys as sql
from gateway.storage.db import Database

XRPC_SESSIONS = "xrpc-session-jwt"
"""Signs the JWTs of XRPC sessions."""

SIGNIN_FORMS = "signin-form"
"""Binds a sign-in form to the app, redirect URI and PKCE challenge it was shown for."""

DEVICE_COOKIES = "device-cookie"
"""Authenticates the device cookies of browsers people signed in from."""


async def gateway_key(db: Database, name: str) -> bytes:
    """The 32-byte key named ``name``, made now if there is none yet."""
    async with db.write() as txn:
        found = await sql.key_of(txn, name, candidate=secrets.token_hex(32), at=time.time_ns() // 1000)
    return bytes.fromhex(found)
