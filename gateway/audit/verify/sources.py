"""Where the entries and checkpoints come from: an export file, or a running gateway's public
read API; and the units of per-entry work (jobs) each offers.

A job is plain data, so that it can be sent to a worker process: an export's job names a range
of bytes of the file, which the worker reads itself; a gateway's job carries a page of entries
and the texts they commit to, fetched by the caller's process (four pages at a time).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from gateway.audit import canonical, tiles
from gateway.audit.verify.chunk import WITHHELD, Chunk, Item, Texts, check_chunk
from gateway.audit.verify.report import SourceError

EXPORT_FORMAT = "byline-log-export"
EXPORT_VERSION = 1

_a2b = binascii.a2b_base64
_loads = canonical.fast_loads
_PAGE = 1000
_BLOCK = 1 << 20  # bytes of an export a worker takes at a time

Tile = tuple[int, int, int, bytes | str]
"""A published hash tile: (level, index, width, its bytes or why they could not be read)."""

Job = tuple[str, Any]
"""One unit of per-entry work: ("export", (path, first byte, end byte, whether it is the first))
or ("items", (items, texts))."""


def run_job(job: Job) -> Chunk:
    """Run one unit of per-entry work (the function worker processes are given)."""
    kind, args = job
    if kind == "export":
        return _export_job(*args)
    items, texts = args
    return check_chunk(items, texts)


_NOT_A_RECORD: Item = (None, None, None, "export line is not an entry record", None)


def parse_export_line(line: bytes) -> Item:
    """One entry line of an export (see :mod:`gateway.audit.export`): (index, entry bytes,
    stored leaf hash, problem, text)."""
    parts = line.rstrip(b"\n").split(b"\t", 4)
    if len(parts) != 5:
        return _NOT_A_RECORD
    index_text, stored_text, salt, text_json, entry = parts
    try:
        index = int(index_text)
        stored = _a2b(stored_text, strict_mode=True)
        if entry[:1] == b"{":
            raw = entry
        elif entry[:1] == b"=":
            raw = _a2b(entry[1:], strict_mode=True)
        else:
            return _NOT_A_RECORD
        if salt == b"-":
            return index, raw, stored, None, None
        body = _loads(text_json)
        if not (body is None or type(body) is str):
            return _NOT_A_RECORD
        return index, raw, stored, None, (salt.decode("ascii"), body)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        return _NOT_A_RECORD


def _export_job(path: str, start: int, end: int, first: bool) -> Chunk:
    """Check the entry lines of an export that begin at ``start <= byte < end``: each job
    finds its own lines, so the caller's process need not read the file at all."""
    with open(path, "rb") as f:
        f.seek(start if first else start - 1)
        block = f.read(end - start + (0 if first else 1))
        if not first:
            # A line that began before ``start`` belongs to the job before this one.
            block = block[block.find(b"\n") + 1 :] if b"\n" in block else b""
        if block and not block.endswith(b"\n"):
            block += f.readline()  # the last line began here: read it to its end
    lines = _lines(block)
    if lines and not block.endswith(b"\n") and not lines[-1].strip():
        lines.pop()  # blanks after the last line break: not an entry
    return check_chunk([parse_export_line(line) for line in lines], {})


def _lines(block: bytes) -> list[bytes]:
    """The lines of ``block`` as ``splitlines`` cuts them, each perhaps still ending in its line
    feed (which :func:`parse_export_line` takes off).

    An export holds no carriage return (its entries and texts escape them), so it is cut where
    memchr finds each line feed, instead of testing every byte for both as ``splitlines`` does:
    on the benchmark's entries (callgrind) a fifth of the instructions to cut the lines (35
    million against 175 for 43,445 lines), 3% of a worker's whole job. A block that holds one
    (a forged or converted file) is cut by ``splitlines`` as before.
    """
    if b"\r" in block:
        return block.splitlines()
    return io.BytesIO(block).readlines()


class Source(Protocol):
    """Where the entries and checkpoints come from."""

    name: str

    def checkpoints(self) -> list[bytes]:
        """Signed checkpoint notes offered by the source; the one of the largest size is latest."""
        ...

    def jobs(self, size: int) -> Iterator[Job]:
        """Units of work covering entries 0, 1, … (up to ``size`` if the source is paged)."""
        ...

    def stored_leaf_hashes(self, start: int, end: int) -> list[bytes] | None:
        """Leaf hashes as the log stores them, to find a tampered entry; None if unknown."""
        ...

    def hash_tiles(self, size: int) -> Iterator[Tile] | None:
        """The hash tiles the log publishes for the tree of ``size`` entries, in the order of
        :func:`gateway.audit.tiles.tiles_for`; None when it publishes none (an export)."""
        ...


class ExportSource:
    """An export file: a header line, checkpoint lines, then entry lines (see ``export``)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.path = path
        self.origin: str | None = None
        self._notes: list[bytes] = []
        self._entries_at = 0
        self._read_head()

    def _read_head(self) -> None:
        try:
            f = self.path.open("rb")
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror}") from None
        with f:
            try:
                header = json.loads(f.readline())
            except (ValueError, RecursionError):
                header = None
            if not isinstance(header, dict) or header.get(EXPORT_FORMAT) != EXPORT_VERSION:
                raise SourceError(f"{self.path} is not a Byline log export (version {EXPORT_VERSION})")
            self.origin = header.get("origin")
            while True:
                at = f.tell()
                line = f.readline()
                if not line or line[:1].isdigit():
                    self._entries_at = at
                    break
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):
                    raise SourceError(f"export: line at byte {at} is not JSON") from None
                if isinstance(record, dict) and isinstance(record.get("checkpoint"), str):
                    try:
                        self._notes.append(record["checkpoint"].encode("utf-8"))
                    except UnicodeEncodeError:
                        raise SourceError(f"export: the checkpoint at byte {at} is not text") from None
                else:
                    raise SourceError(f"export: unknown record at byte {at}")

    def checkpoints(self) -> list[bytes]:
        return list(self._notes)

    def jobs(self, size: int) -> Iterator[Job]:
        try:
            end = self.path.stat().st_size
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror}") from None
        for start in range(self._entries_at, end, _BLOCK):
            yield "export", (str(self.path), start, min(start + _BLOCK, end), start == self._entries_at)

    def stored_leaf_hashes(self, start: int, end: int) -> list[bytes] | None:
        return None  # each entry line carries its stored hash; compared as it is read

    def hash_tiles(self, size: int) -> Iterator[Tile] | None:
        return None


class UrlSource:
    """A running gateway's public read API."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        self.name = url.rstrip("/")
        self._timeout = timeout

    def _get(self, path: str) -> bytes:
        url = self.name + path
        try:
            with urllib.request.urlopen(url, timeout=self._timeout) as resp:
                body: bytes = resp.read()
                return body
        except urllib.error.HTTPError as exc:
            raise SourceError(f"GET {url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SourceError(f"GET {url}: {getattr(exc, 'reason', exc)}") from None

    def _json(self, path: str) -> Any:
        try:
            return json.loads(self._get(path))
        except (ValueError, RecursionError):
            raise SourceError(f"GET {self.name}{path}: not JSON") from None

    def verifier_key(self) -> str:
        """The key the server publishes (an auditor should compare it with the one they trust)."""
        try:
            return self._get("/log/key").decode().strip()
        except UnicodeDecodeError:
            raise SourceError(f"GET {self.name}/log/key: not text") from None

    def checkpoints(self) -> list[bytes]:
        return [self._get("/log/checkpoint")]

    def _page(self, start: int, end: int) -> Job:
        page = self._json(f"/log/entries?start={start}&end={end}")
        texts_page = self._json(f"/log/texts?start={start}&end={end}")
        items: list[Item] = []
        records = page.get("entries") if isinstance(page, dict) else None
        if not isinstance(records, list):
            raise SourceError(f"GET {self.name}/log/entries: the answer holds no list of entries")
        for record in records:
            try:
                items.append((int(record["index"]), base64.b64decode(record["leaf"], validate=True), None, None, None))
            except (KeyError, TypeError, ValueError, binascii.Error):
                items.append((None, None, None, "the server sent a malformed entry", None))
        texts: Texts = {}
        listed = texts_page.get("texts", []) if isinstance(texts_page, dict) else []
        for t in listed if isinstance(listed, list) else []:
            if not isinstance(t, dict) or not isinstance(t.get("hash"), str):
                continue
            if t.get("withheld") is True and t.get("text") is None:
                # The words of a post that never went out, kept from the public with their salt:
                # neither checked nor erased (an auditor's token sees them).
                texts[t["hash"]] = (WITHHELD, None)
            elif isinstance(t.get("salt"), str):
                texts[t["hash"]] = (t["salt"], t.get("text") if isinstance(t.get("text"), str) else None)
        return ("items", (items, texts))

    def jobs(self, size: int) -> Iterator[Job]:
        from concurrent.futures import ThreadPoolExecutor

        starts = list(range(0, size, _PAGE))
        with ThreadPoolExecutor(max_workers=4) as pool:
            ahead: deque[Any] = deque()
            for start in starts:
                ahead.append(pool.submit(self._page, start, min(start + _PAGE, size)))
                if len(ahead) > 8:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()

    def stored_leaf_hashes(self, start: int, end: int) -> list[bytes] | None:
        out: list[bytes] = []
        for tile in range(start // tiles.WIDTH, (end + tiles.WIDTH - 1) // tiles.WIDTH):
            try:
                data = self._get("/log/" + tiles.tile_url(0, tile, min(tiles.WIDTH, end - tile * tiles.WIDTH)))
            except SourceError:
                return None
            out.extend(data[i : i + 32] for i in range(0, len(data), 32))
        return out[start % tiles.WIDTH :][: end - start] if out else None

    def _tile(self, level: int, index: int, width: int) -> Tile:
        try:
            return level, index, width, self._get("/log/" + tiles.tile_url(level, index, width))
        except SourceError as exc:
            return level, index, width, str(exc)

    def hash_tiles(self, size: int) -> Iterator[Tile] | None:
        return self._tiles(size)

    def _tiles(self, size: int) -> Iterator[Tile]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=4) as pool:
            ahead: deque[Any] = deque()
            for level, index, width in tiles.tiles_for(size):
                ahead.append(pool.submit(self._tile, level, index, width))
                if len(ahead) > 16:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
