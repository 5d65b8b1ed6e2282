"""The ``byline log …`` and ``byline audit …`` commands.

- ``byline log keygen [--out FILE] [--origin NAME]``: a new signing key file; prints the verifier key
- ``byline log key``: print the verifier key of the configured signing key
- ``byline audit verify --key VKEY (--url URL | --export FILE) [--state FILE] [--require-signed]``
- ``byline audit export [--out FILE] [--url URL]``: the log (of the configured database, or of
  a gateway's public API) as one file
- ``byline audit who --post ID|URL [--url URL | --export FILE]``

Exit codes: 0 when all holds, 1 when verification found a problem (or a key file exists), 2
when the input could not be read at all.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.audit.verify import ExportSource, UrlSource


def _state_default() -> Path:
    from gateway.audit.verify import default_state_path

    return default_state_path()


def _settings() -> Any:
    from pydantic import ValidationError

    from gateway.settings import Settings, describe_error

    try:
        return Settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError("must be an http:// or https:// URL")
    return value


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds") from None
    if not 0 <= seconds < 10**9:
        raise argparse.ArgumentTypeError("must be a number of seconds, 0 or more")
    return seconds


def _cmd_keygen(args: argparse.Namespace) -> int:
    from gateway.audit.keys import write_new_key
    from gateway.audit.note import NoteError

    path = Path(args.out) if args.out else Path(_settings().log_key_file)
    origin = str(args.origin or _settings().log_origin)
    try:
        signer = write_new_key(path, origin)
    except FileExistsError:
        print(f"error: {path} exists; a log keeps its key (move it away first to replace it)",
              file=sys.stderr)
        return 1
    except NoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote the signing key for {origin} to {path} (keep it secret; it never leaves that "
          "file); the verifier key to publish is:", file=sys.stderr)
    print(signer.verifier().to_text())
    return 0


def _cmd_key(args: argparse.Namespace) -> int:
    from gateway.audit.keys import LogKeyError, load_signer

    settings = _settings()
    try:
        signer = load_signer(settings.log_key_file, origin=settings.log_origin)
    except LogKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(signer.verifier().to_text())
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from gateway.audit.verify import ExportSource, SourceError, UrlSource, load_key, verify

    try:
        key = load_key(args.key)
        source: ExportSource | UrlSource = (
            ExportSource(Path(args.export)) if args.export else UrlSource(args.url)
        )
        if isinstance(source, UrlSource) and source.verifier_key() != key.to_text():
            print("note: the server publishes another verifier key than the one given; "
                  "checking against the one given", file=sys.stderr)
        workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
        progress = not args.no_progress and sys.stderr.isatty()
        state = None if args.no_state else Path(args.state) if args.state else _state_default()
        report = verify(source, key, state_path=state, workers=workers, progress=progress,
                        policy_grace=args.policy_grace, due_grace=args.due_grace,
                        require_signed=args.require_signed)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.ok else 1


def _db_entries(settings: Any) -> Any:
    from gateway.storage import log as log_sql
    from gateway.storage.db import open_database

    async def load(post: str | None) -> list[tuple[int, bytes]]:
        db = await open_database(settings.database_url, create=False)
        try:
            async with db.read() as txn:
                if post is None:
                    rows = await log_sql.entries_of_type(txn, "post.published")
                else:
                    rows = await log_sql.post_entries(txn, post)
        finally:
            await db.close()
        return [(int(r["idx"]), bytes(r["entry"])) for r in rows]

    import asyncio

    return lambda post: asyncio.run(load(post))


def _scan(source: ExportSource | UrlSource, size: int) -> list[tuple[int, bytes]]:
    from gateway.audit.verify import ExportSource, parse_export_line

    out: list[tuple[int, bytes]] = []
    if isinstance(source, ExportSource):
        with source.path.open("rb") as f:
            for line in f:
                if line[:1].isdigit():
                    index, raw, *_ = parse_export_line(line)
                    if index is not None and raw is not None:
                        out.append((index, raw))
        return out
    for job in source.jobs(size):
        out.extend((i, raw) for i, raw, *_ in job[1][0] if i is not None and raw is not None)
    return out


def _cmd_who(args: argparse.Namespace) -> int:
    from gateway.audit.verify import ExportSource, SourceError, UrlSource
    from gateway.audit.who import who

    try:
        if args.export or args.url:
            source: ExportSource | UrlSource = (
                ExportSource(Path(args.export)) if args.export else UrlSource(args.url)
            )
            size = 0
            if isinstance(source, UrlSource):
                size = int(source.checkpoints()[0].split(b"\n", 2)[1])
            everything = _scan(source, size)

            def entries_of(post: str | None) -> Iterable[tuple[int, bytes]]:
                if post is None:
                    return everything
                needle = f'"post":"{post}"'.encode()
                return [(i, raw) for i, raw in everything if needle in raw]

            lines = who(entries_of, args.post)
        else:
            lines = who(_db_entries(_settings()), args.post)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not lines:
        print(f"no post {args.post} in the log", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from gateway.audit.export import export_url
    from gateway.audit.verify import SourceError

    out = Path(args.out)
    try:
        if args.url:
            count = export_url(args.url, out)
        else:
            settings = _settings()
            import asyncio

            count = asyncio.run(_export_db(settings, out))
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {count} entries to {out}", file=sys.stderr)
    return 0


async def _export_db(settings: Any, out: Path) -> int:
    from gateway.audit.export import export_database
    from gateway.storage.db import open_database

    db = await open_database(settings.database_url, create=False)
    try:
        return await export_database(db, out, origin=settings.log_origin)
    finally:
        await db.close()


def add_commands(sub: Any) -> None:
    """Register ``log`` and ``audit`` on the ``byline`` parser's subcommands."""
    log = sub.add_parser("log", help="the audit log's signing key").add_subparsers(
        dest="action", required=True
    )
    keygen = log.add_parser("keygen", help="make a new checkpoint signing key file")
    keygen.add_argument("--out", help="key file to write (default: BYLINE_LOG_KEY_FILE)")
    keygen.add_argument("--origin", help="the log's name (default: BYLINE_LOG_ORIGIN)")
    keygen.set_defaults(func=_cmd_keygen)
    key = log.add_parser("key", help="print the verifier key of BYLINE_LOG_KEY_FILE")
    key.set_defaults(func=_cmd_key)

    audit = sub.add_parser("audit", help="verify and read the audit log").add_subparsers(
        dest="action", required=True
    )
    ver = audit.add_parser("verify", help="rebuild and check the whole log offline")
    ver.add_argument("--key", required=True, help="the log's verifier key, or a file holding it")
    where = ver.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", type=_url, help="a gateway's base URL (its public /log API)")
    where.add_argument("--export", help="a file written by `byline audit export`")
    ver.add_argument("--state", help="checkpoints seen before (default: ~/.local/state/byline/audit-state.json)")
    ver.add_argument("--no-state", action="store_true", help="neither read nor write a state file")
    ver.add_argument("--workers", type=int, help="processes for per-entry checks (default: 2)")
    ver.add_argument("--no-progress", action="store_true", help="no progress bar")
    ver.add_argument("--require-signed", action="store_true",
                     help="fail when entries after the latest checkpoint are not yet signed (by default "
                          "they are checked, counted and said, but do not fail)")
    ver.add_argument("--policy-grace", type=_seconds, default=300.0, metavar="SECONDS",
                     help="how long after a policy change an action may still name the policy it "
                          "replaced: the time the gateways take to see a change (default: 300)")
    ver.add_argument("--due-grace", type=_seconds, default=2.0, metavar="SECONDS",
                     help="how much earlier than the time the log says a post is due (its publish_at) "
                          "its claim may be, and how much later than its hold's deadline (its expires_at) "
                          "an approval may be: a margin, as an honest one never is (default: 2)")
    ver.set_defaults(func=_cmd_verify)

    exp = audit.add_parser("export", help="write the log (entries, checkpoints, texts) to a file")
    exp.add_argument("--out", default="byline-log.export", help="file to write")
    exp.add_argument("--url", type=_url, help="export from a gateway's public API instead of the database")
    exp.set_defaults(func=_cmd_export)

    w = audit.add_parser("who", help="who wrote, edited and approved a post")
    w.add_argument("--post", required=True, help="a post id, or the URL it has on its platform")
    src = w.add_mutually_exclusive_group()
    src.add_argument("--url", type=_url, help="read a gateway's public API instead of the database")
    src.add_argument("--export", help="read an export file instead of the database")
    w.set_defaults(func=_cmd_who)
