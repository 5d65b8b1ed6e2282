"""What the adapter tests of every platform share."""

from __future__ import annotations

import traceback
from typing import Any

from adapters.base import AdapterError, OutboundPost


def post(text: str = "Hello from Byline", key: str = "post-1:v1", **fields: Any) -> OutboundPost:
    """An outbound post with a fixed idempotency key (``<post id>:<version>``)."""
    return OutboundPost(post_id=key.split(":")[0], idempotency_key=key, text=text, **fields)


def texts_of(error: AdapterError) -> str:
    """Everything an adapter error can show: str, repr, message, detail and traceback."""
    return "\n".join([str(error), repr(error), error.message, error.detail or "",
                      *traceback.format_exception(error)])
