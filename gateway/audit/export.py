"""Writing the whole log to one file an auditor can verify offline.

Lines, in this order:

1. a JSON header: ``{"byline-log-export": 1, "origin": …, "size": N}``
2. every signed checkpoint, smallest first, as JSON: ``{"checkpoint": "<signed note>"}``
3. every entry, in order, as five tab-separated fields:
   ``index  base64(stored leaf hash)  salt  text  entry``

   - ``salt`` and ``text``: for an entry that commits to a text, the salt in hex and the text as
     a JSON string (``null`` once erased); ``-`` and ``-`` otherwise;
   - ``entry``: the exact entry bytes. A canonical entry holds no tab and no newline (RFC 8785
     escapes them inside strings), so it is written as it is, readable and searchable; any
     other bytes are written as ``=`` and their base64.

The stored leaf hash is not trusted by the verifier (it recomputes every hash); it is there so
that an entry changed after it was logged can be named. Each entry line carries its own text so
that the lines can be checked in parallel, each on its own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from gateway.audit import canonical
from gateway.audit.merkle import leaf_hash
from gateway.audit.verify import EXPORT_FORMAT, EXPORT_VERSION, SourceError, Texts, UrlSource
from gateway.storage import log as log_sql
from gateway.storage.db import Database

_BATCH = 10_000


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def write_header(out: IO[str], *, origin: str | None, size: int) -> None:
    """The first line."""
    out.write(json.dumps({EXPORT_FORMAT: EXPORT_VERSION, "origin": origin, "size": size}) + "\n")


def write_checkpoint(out: IO[str], note: bytes) -> None:
    """One signed checkpoint line."""
    out.write(json.dumps({"checkpoint": note.decode("utf-8")}, ensure_ascii=False) + "\n")


def _text_hash(entry: bytes) -> str | None:
    try:
        data = canonical.loads(entry).get("data")
    except (ValueError, AttributeError):
        return None  # not an entry the gateway wrote; the verifier will say so
    digest = data.get("text_hash") if isinstance(data, dict) else None
    return digest if isinstance(digest, str) else None


def _entry_field(entry: bytes) -> str:
    if entry[:1] == b"{" and b"\t" not in entry and b"\n" not in entry and b"\r" not in entry:
        try:
            return entry.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return "=" + _b64(entry)


Text = tuple[str, str | None]
"""A committed text as the export writes it: (hex salt, text or None once erased)."""


def write_records(out: IO[str], rows: Iterable[tuple[int, bytes, bytes, Text | None]]) -> int:
    """Entry lines for (index, stored leaf hash, entry bytes, its committed text if any)."""
    count = 0
    lines = []
    for index, stored, entry, committed in rows:
        salt, text = "-", "-"
        if committed is not None:
            salt, text = committed[0], json.dumps(committed[1], ensure_ascii=False)
        lines.append(f"{index}\t{_b64(stored)}\t{salt}\t{text}\t{_entry_field(entry)}\n")
        count += 1
    out.writelines(lines)
    return count


def write_entries(out: IO[str], rows: Iterable[tuple[int, bytes, bytes]], texts: Texts) -> int:
    """Entry lines for (index, stored leaf hash, entry bytes), each with the text (found by the
    hash it carries) it commits to, if any."""
    def records() -> Iterable[tuple[int, bytes, bytes, Text | None]]:
        for index, stored, entry in rows:
            digest = _text_hash(entry)
            yield index, stored, entry, texts.get(digest) if digest is not None else None

    return write_records(out, records())


async def export_database(db: Database, path: Path, *, origin: str | None) -> int:
    """Write the log of ``db`` to ``path`` from one consistent snapshot; return the entry count."""
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", encoding="utf-8") as out:
        async with db.read() as txn:
            size = int((await log_sql.read_state(txn))["size"])
            write_header(out, origin=origin, size=size)
            for row in await log_sql.all_checkpoints(txn):
                write_checkpoint(out, bytes(row["note"]))
            written = 0
            for start in range(0, size, _BATCH):
                end = min(start + _BATCH, size)
                rows = await log_sql.entries(txn, start, end)
                texts = {
                    int(t["idx"]): (bytes(t["salt"]).hex(), t["text"]) for t in await log_sql.texts(txn, start, end)
                }
                written += write_records(out, (
                    (int(r["idx"]), bytes(r["leaf_hash"]), bytes(r["entry"]), texts.get(int(r["idx"]))) for r in rows
                ))
    tmp.replace(path)
    return written


def export_url(url: str, path: Path) -> int:
    """Write the log a gateway serves at ``url`` to ``path``, up to its latest checkpoint."""
    source = UrlSource(url)
    note = source.checkpoints()[0]
    try:
        size = int(note.split(b"\n", 2)[1])
        origin = note.split(b"\n", 1)[0].decode()
    except (IndexError, ValueError, UnicodeDecodeError):
        raise SourceError(f"{url}/log/checkpoint is not a checkpoint") from None
    tmp = path.with_name(path.name + ".partial")
    written = 0
    with tmp.open("w", encoding="utf-8") as out:
        write_header(out, origin=origin, size=size)
        write_checkpoint(out, note)
        for job in source.jobs(size):
            items, texts = job[1]
            first = next((i for i, *_ in items if i is not None), 0)
            stored = source.stored_leaf_hashes(first, first + len(items)) or []
            rows: list[Any] = []
            for n, (index, raw, *_) in enumerate(items):
                if index is not None and raw is not None:
                    rows.append((index, stored[n] if n < len(stored) else leaf_hash(raw), raw))
            written += write_entries(out, rows, texts)
    tmp.replace(path)
    return written
