"""SQL for people who sign in to the pages, and their browser sessions."""

from __future__ import annotations

from gateway.storage.db import Row, Txn


async def insert_person(txn: Txn, *, name: str, password_hash: str, email: str | None, at: int) -> bool:
    """Add a person; False when the name is taken."""
    if await txn.fetchone("SELECT name FROM people WHERE name = ?", name) is not None:
        return False
    await txn.execute(
        "INSERT INTO people (name, password_hash, email, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        name, password_hash, email, at, at,
    )
    return True


async def get_person(txn: Txn, name: str) -> Row | None:
    """One person's row."""
    return await txn.fetchone("SELECT name, password_hash, email FROM people WHERE name = ?", name)


async def set_password(txn: Txn, name: str, *, password_hash: str, at: int) -> bool:
    """A new password hash; False when there is no such person."""
    count = await txn.execute(
        "UPDATE people SET password_hash = ?, updated_at = ? WHERE name = ?", password_hash, at, name
    )
    return count > 0


async def set_email(txn: Txn, name: str, *, email: str | None, at: int) -> bool:
    """A new email address (None: none); False when there is no such person."""
    count = await txn.execute("UPDATE people SET email = ?, updated_at = ? WHERE name = ?", email, at, name)
    return count > 0


async def emails(txn: Txn, names: list[str]) -> dict[str, str]:
    """The email addresses of those of ``names`` who gave one."""
    if not names:
        return {}
    marks = ", ".join("?" for _ in names)
    rows = await txn.fetchall(
        f"SELECT name, email FROM people WHERE email IS NOT NULL AND name IN ({marks})", *names
    )
    return {r["name"]: r["email"] for r in rows}


async def all_people(txn: Txn) -> list[Row]:
    """Every person, by name."""
    return await txn.fetchall("SELECT name, email, created_at, updated_at FROM people ORDER BY name")


async def insert_session(
    txn: Txn, *, session_hash: str, person: str, csrf: str, at: int, expires_at: int
) -> None:
    """A new browser session."""
    await txn.execute(
        "INSERT INTO web_sessions (session_hash, person, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        session_hash, person, csrf, at, expires_at,
    )


async def live_session(txn: Txn, session_hash: str, *, now: int) -> Row | None:
    """A session that has neither ended nor expired."""
    return await txn.fetchone(
        "SELECT person, csrf, expires_at FROM web_sessions "
        "WHERE session_hash = ? AND revoked_at IS NULL AND expires_at > ?",
        session_hash, now,
    )


async def end_session(txn: Txn, session_hash: str, *, at: int) -> None:
    """Sign a session out."""
    await txn.execute(
        "UPDATE web_sessions SET revoked_at = ? WHERE session_hash = ? AND revoked_at IS NULL", at, session_hash
    )


async def end_sessions_of(txn: Txn, person: str, *, at: int) -> int:
    """Sign every session of ``person`` out (their password changed); how many there were."""
    return await txn.execute(
        "UPDATE web_sessions SET revoked_at = ? WHERE person = ? AND revoked_at IS NULL", at, person
    )

