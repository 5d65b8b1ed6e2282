"""Identifier and time types shared across the gateway."""

from __future__ import annotations

import os
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Final, NewType

PostId = NewType("PostId", str)
AccountName = NewType("AccountName", str)
UserName = NewType("UserName", str)

RESERVED_NAMES: Final = frozenset({"system", "policy-file"})
"""Names no person may have: the actors the gateway itself writes in the log (the publisher,
the policy file and its announcements). A person so named would act as the gateway does: a
post by "policy-file" is taken for the policy file's own announcement, which needs no role,
no approval and no disclosure line."""

LogIndex = NewType("LogIndex", int)

# Timestamps are stored as integer microseconds since the Unix epoch (UTC): they compare and
# sort the same way in SQLite and PostgreSQL, with no time-zone surprises.
Micros = NewType("Micros", int)

NAME_PATTERN: Final = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
"""A name as the policy files spell them: a person's, an account's, a rule's. Matched whole
(``fullmatch``): ``re.match`` with ``$`` lets a newline end one, so "alice\\n" would pass."""
_NAME: Final = re.compile(NAME_PATTERN)


def person_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a person's, said after the name (``'bob carol' is not a user
    name …``); None when it can. The one check of a person's name: the policy files', a
    token's, a person's who signs in."""
    if not _NAME.fullmatch(name):
        return "is not a user name (letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64)"
    if name in RESERVED_NAMES:
        return "is a name Byline keeps for itself in the log: no person may have it"
    return None


def duration_micros(delta: timedelta) -> int:
    """A length of time in microseconds, as stored times are counted."""
    return int(delta.total_seconds() * 1_000_000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def to_micros(moment: datetime) -> Micros:
    """Convert an aware datetime to stored microseconds."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a time zone is required")
    delta = moment - _EPOCH
    return Micros(delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds)


def from_micros(value: int) -> datetime:
    """Convert stored microseconds back to an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=value)


def spoken(moment: datetime) -> str:
    """A time as the pages say it to people: ``10 Nov 2026, 09:30 UTC``."""
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


_SECONDS_TEXT: dict[int, str] = {}
"""``iso``'s text of whole seconds it has written: the posts of a second share theirs."""


def iso(value: int | None) -> str | None:
    """Render stored microseconds as RFC 3339 UTC with a Z, or None."""
    if value is None:
        return None
    # A post's answer and its log entry carry several times, mostly of the same second: the
    # second's text is made once (isoformat, years 1 to 9999) and the microseconds put after
    # it, a third of the time of formatting the whole.
    seconds, micros = divmod(value, 1_000_000)
    text = _SECONDS_TEXT.get(seconds)
    if text is None:
        if len(_SECONDS_TEXT) >= 4096:
            _SECONDS_TEXT.clear()
        text = _SECONDS_TEXT[seconds] = (_NAIVE_EPOCH + timedelta(seconds=seconds)).isoformat(timespec="seconds")
    return f"{text}.{micros:06d}Z"


UNSECRET: Final = random.Random()
"""Random numbers for values that must only differ, never be secret (a request's id, the start
of a millisecond's post ids): Python's generator, not a system call each; a generator of the
gateway's own, so tests' use of the module's does not meet it. A forked process seeds it anew."""
os.register_at_fork(after_in_child=UNSECRET.seed)
