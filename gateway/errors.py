"""The gateway's errors, and the only place HTTP statuses are chosen.

Services and storage raise ``BylineError`` with a ``Code`` for a request's refusals, and storage
raises ``DatabaseUnavailable`` for its outage; both are a :class:`Failure`, which the HTTP
middleware turns into ``{"error": code, "message": ...}`` with the status the code maps to.
Anything else is a bug: logged with its traceback and answered as a generic 500.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Code(StrEnum):
    """Machine-readable error codes; clients branch on these."""

    BAD_REQUEST = "bad_request"
    INVALID_JSON = "invalid_json"
    VALIDATION = "validation_failed"
    TEXT_EMPTY = "text_empty"
    TEXT_TOO_LONG = "text_too_long"
    RULE_BLOCKED = "rule_blocked"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    UNKNOWN_ACCOUNT = "unknown_account"
    CONFLICT = "conflict"
    INVALID_TRANSITION = "invalid_transition"
    ALREADY_DECIDED = "already_decided"
    STALE_VERSION = "stale_version"
    VERSION_REQUIRED = "version_required"
    NO_APPROVERS_LEFT = "no_approvers_left"
    NO_POLICY = "no_policy_in_force"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TIMEOUT = "request_timeout"
    TOO_MANY_REQUESTS = "too_many_requests"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal_error"


STATUS: dict[Code, int] = {
    Code.BAD_REQUEST: 400,
    Code.INVALID_JSON: 400,
    Code.VALIDATION: 422,
    Code.TEXT_EMPTY: 422,
    Code.TEXT_TOO_LONG: 422,
    Code.RULE_BLOCKED: 422,
    Code.UNAUTHENTICATED: 401,
    Code.FORBIDDEN: 403,
    Code.NOT_FOUND: 404,
    Code.UNKNOWN_ACCOUNT: 404,
    Code.CONFLICT: 409,
    Code.INVALID_TRANSITION: 409,
    Code.ALREADY_DECIDED: 409,
    Code.STALE_VERSION: 409,
    Code.VERSION_REQUIRED: 428,
    Code.NO_APPROVERS_LEFT: 409,
    Code.NO_POLICY: 409,
    Code.PAYLOAD_TOO_LARGE: 413,
    Code.UNSUPPORTED_MEDIA_TYPE: 415,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.REQUEST_TIMEOUT: 408,
    Code.TOO_MANY_REQUESTS: 429,
    Code.UNAVAILABLE: 503,
    Code.INTERNAL: 500,
}


class Failure(Exception):
    """A failure answered to whoever asked, with a code, a message and details: the request's
    own (:class:`BylineError`), or Byline's, which passes (the database gone:
    ``gateway.storage.db.DatabaseUnavailable``). Only what answers (each surface's error
    middleware, the pages, the commands) catches a ``Failure``; code that handles a request's
    refusals catches ``BylineError``, which an outage is not, so no such handler takes the
    database gone for a refusal (a 404, a 400, a post's failure) without meaning to.

    ``details`` carries structured context (a rule's name and reason, the allowed states)
    that the client may show; it must never hold a secret.
    """

    def __init__(self, code: Code, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        """The HTTP status this error is answered with."""
        return STATUS[self.code]

    def to_json(self) -> dict[str, Any]:
        """The error body sent to clients."""
        body: dict[str, Any] = {"error": self.code.value, "message": self.message}
        body.update(self.details)
        return body


class BylineError(Failure):
    """A failure the client can understand and act on: its request's own (see :class:`Failure`)."""
