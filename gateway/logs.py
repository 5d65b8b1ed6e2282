"""structlog set-up: key-value events, one line each; secrets are never passed in."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson
import structlog

from gateway import workers
from gateway.types import iso


def _orjson_line(event: Any, **kw: Any) -> bytes:
    return orjson.dumps(event, default=kw.get("default"), option=orjson.OPT_NON_STR_KEYS)


def _orjson_text(event: Any, **kw: Any) -> str:
    return _orjson_line(event, **kw).decode()


class _ConsoleBytes:
    """structlog's console renderer, its lines as UTF-8 bytes."""

    def __init__(self) -> None:
        self._render = structlog.dev.ConsoleRenderer(colors=False)

    def __call__(self, logger: Any, method: str, event: Any) -> bytes:
        return str(self._render(logger, method, event)).encode()


def _timestamp(_logger: Any, _method: str, event: Any) -> Any:
    """When, in RFC 3339 UTC with microseconds and a Z (``gateway.types.iso``: the lines of a
    second share its text, where structlog's TimeStamper formats each whole)."""
    event["timestamp"] = iso(time.time_ns() // 1000)
    return event


def _exc_info(logger: Any, method: str, event: Any) -> Any:
    """structlog's ``format_exc_info`` for the lines that carry an exception: it takes
    ``exc_info`` out and writes the ``exception``, and leaves a line without one as it is, but
    after five calls (two lines a post, neither with one)."""
    if "exc_info" not in event:
        return event
    return structlog.processors.format_exc_info(logger, method, event)


def _worker(_logger: Any, _method: str, event: Any) -> Any:
    """Which worker logged the line, when ``byline serve`` runs several (``gateway.workers``)."""
    if workers.current is not None:
        event.setdefault("worker", workers.current.index)
    return event


def configure(*, level: str = "info", fmt: str = "console") -> None:
    """Configure structlog and the standard library's logging to write to stderr."""
    numeric = getattr(logging, level.upper())
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    # Each line goes out in one write of its own, newline and all, so that the lines of several
    # workers sharing one output (gateway.workers) never run into each other; print() wrote a
    # line and its newline apart.
    binary = getattr(sys.stderr, "buffer", None)
    renderer: structlog.types.Processor
    factory: Any
    if binary is not None:
        # orjson: a line a request and more a post, each a tenth of the time of the standard
        # library's encoder; one JSON object a line as before, without spaces between fields.
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_line) if fmt == "json" else _ConsoleBytes()
        factory = structlog.BytesLoggerFactory(file=binary)
    else:  # an output of text only (a test's)
        renderer = (structlog.processors.JSONRenderer(serializer=_orjson_text) if fmt == "json"
                    else structlog.dev.ConsoleRenderer(colors=False))
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _worker,
            structlog.processors.add_log_level,
            _timestamp,
            _exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
