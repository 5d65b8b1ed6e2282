"""Bad input gets a clear 4xx JSON error and changes nothing, on both databases."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import Gateway


async def _refused(gateway: Gateway, user: str | None, method: str, path: str, status: int,
                   error: str, **kwargs: Any) -> dict[str, Any]:
    before = await gateway.snapshot()
    log_before = await gateway.log_size()
    got, body = await gateway.call(user, method, path, **kwargs)
    assert got == status, body
    assert isinstance(body, dict) and body["error"] == error, body
    assert body["message"] and "Traceback" not in body["message"]
    assert await gateway.snapshot() == before
    assert await gateway.log_size() == log_before
    return body


async def test_malformed_json(gateway: Gateway) -> None:
    """A body that is not JSON is a 400 saying so."""
    body = await _refused(gateway, "alice", "POST", "/v1/posts", 400, "invalid_json",
                          data=b'{"account": "direct", "text": ', headers={"Content-Type": "application/json"})
    assert "not valid JSON" in body["message"]


async def test_json_that_is_not_an_object(gateway: Gateway) -> None:
    """A JSON array or string is not a request body."""
    await _refused(gateway, "alice", "POST", "/v1/posts", 400, "invalid_json", json=["direct", "hi"])


async def test_wrong_content_type(gateway: Gateway) -> None:
    """A form post to the JSON API is a 415."""
    await _refused(gateway, "alice", "POST", "/v1/posts", 415, "unsupported_media_type",
                   data={"account": "direct", "text": "hi"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"account": "direct", "text": 42}, "text"),
        ({"account": "direct"}, "text"),
        ({"text": "hi"}, "account"),
        ({"account": ["direct"], "text": "hi"}, "account"),
        ({"account": "direct", "text": "hi", "publish_at": "tomorrow"}, "publish_at"),
        ({"account": "direct", "text": "hi", "publish_at": "2030-01-01T10:00:00"}, "publish_at"),
        ({"account": "direct", "text": "hi", "visibility": "everyone"}, "visibility"),
        ({"account": "direct", "text": "hi", "colour": "red"}, "colour"),
        ({"account": "direct", "text": "hi", "sensitive": "yes"}, "sensitive"),
    ],
)
async def test_wrong_types_and_unknown_fields(gateway: Gateway, body: dict[str, Any], field: str) -> None:
    """Each wrong type, missing field or unknown field is a 422 naming the field."""
    answer = await _refused(gateway, "alice", "POST", "/v1/posts", 422, "validation_failed", json=body)
    assert field in [f["field"] for f in answer["fields"]], answer


async def test_empty_text(gateway: Gateway) -> None:
    """Empty or blank text is a 422."""
    for text in ("", "   \n"):
        await _refused(gateway, "alice", "POST", "/v1/posts", 422, "text_empty",
                       json={"account": "direct", "text": text})


async def test_oversized_text(gateway: Gateway) -> None:
    """Text over the account's limit (with its disclosure) is a 422 giving the limit."""
    body = await _refused(gateway, "alice", "POST", "/v1/posts", 422, "text_too_long",
                          json={"account": "direct", "text": "x" * 501})
    assert body["limit"] == 500 and body["length"] == 501
    # On an account with a disclosure line, the line counts too.
    body = await _refused(gateway, "carol", "POST", "/v1/posts", 422, "text_too_long",
                          json={"account": "cosigned", "text": "x" * 495})
    assert body["length"] == 495 + len("\n\n—carol")


async def test_body_too_large(gateway: Gateway) -> None:
    """A body over the size limit is a 413."""
    await _refused(gateway, "alice", "POST", "/v1/posts", 413, "payload_too_large",
                   data=io.BytesIO(b'{"text": "' + b"x" * 2_000_000 + b'"}'),
                   headers={"Content-Type": "application/json"})


async def test_publish_at_in_the_past(gateway: Gateway) -> None:
    """Scheduling into the past is a 422."""
    past = (gateway.clock.now() - timedelta(hours=1)).isoformat()
    await _refused(gateway, "alice", "POST", "/v1/posts", 422, "validation_failed",
                   json={"account": "direct", "text": "hi", "publish_at": past})


async def test_unknown_account_and_post(gateway: Gateway) -> None:
    """An account or post that does not exist is a 404."""
    await _refused(gateway, "alice", "POST", "/v1/posts", 404, "unknown_account",
                   json={"account": "nobody", "text": "hi"})
    await _refused(gateway, "alice", "GET", "/v1/posts/123456789", 404, "not_found")
    await _refused(gateway, "alice", "GET", "/v1/posts/not-a-number", 404, "not_found")
    await _refused(gateway, "alice", "POST", "/v1/posts/123456789/approve", 404, "not_found")
    await _refused(gateway, "alice", "PATCH", "/v1/posts/123456789", 404, "not_found", json={"text": "x"})
    await _refused(gateway, "alice", "GET", "/v1/accounts/nobody/policy", 404, "unknown_account")


async def test_transition_the_state_does_not_allow(gateway: Gateway) -> None:
    """Approving a scheduled post, or editing a cancelled one, is a 409 naming what is allowed."""
    post = await gateway.submit("bob", "delayed", "A delayed thought")
    body = await _refused(gateway, "bob", "POST", f"/v1/posts/{post['id']}/approve", 409, "invalid_transition")
    assert body["state"] == "scheduled" and "cancel" in body["allowed"]
    await gateway.act("bob", post["id"], "cancel")
    await _refused(gateway, "bob", "PATCH", f"/v1/posts/{post['id']}", 409, "invalid_transition",
                   json={"text": "too late"})


async def test_edit_blocked_by_rule_changes_nothing(gateway: Gateway) -> None:
    """An edit that a block rule refuses keeps the old version."""
    post = await gateway.submit("alice", "direct", "Fine words")
    await _refused(gateway, "alice", "PATCH", f"/v1/posts/{post['id']}", 422, "rule_blocked",
                   json={"text": "example-slur words"})


async def test_tokens(gateway: Gateway) -> None:
    """No token, an unknown token, a malformed header and an expired token are each a 401."""
    await _refused(gateway, None, "GET", "/v1/accounts", 401, "unauthenticated")
    await _refused(gateway, None, "GET", "/v1/accounts", 401, "unauthenticated",
                   headers={"Authorization": "Bearer byl_not-a-real-token"})
    await _refused(gateway, None, "GET", "/v1/accounts", 401, "unauthenticated",
                   headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    from gateway.appkeys import IDENTITY

    short = await gateway.app[IDENTITY].create(user="alice", expires_in=timedelta(minutes=5))
    status, _ = await gateway.call(None, "GET", "/v1/accounts", headers={"Authorization": f"Bearer {short}"})
    assert status == 200
    gateway.clock.advance(timedelta(minutes=6))
    body = await _refused(gateway, None, "POST", "/v1/posts", 401, "unauthenticated",
                          json={"account": "direct", "text": "hi"}, headers={"Authorization": f"Bearer {short}"})
    assert "expired" in body["message"]


async def test_unknown_route_and_method(gateway: Gateway) -> None:
    """Unknown paths and methods answer JSON errors too."""
    await _refused(gateway, "alice", "GET", "/v1/nothing-here", 404, "not_found")
    await _refused(gateway, "alice", "PUT", "/v1/posts", 405, "method_not_allowed")


async def test_list_filters_are_checked(gateway: Gateway) -> None:
    """A bad state or limit filter is a 422."""
    await _refused(gateway, "alice", "GET", "/v1/posts?state=lost", 422, "validation_failed")
    await _refused(gateway, "alice", "GET", "/v1/posts?limit=0", 422, "validation_failed")
    await _refused(gateway, "alice", "GET", "/v1/posts?limit=ten", 422, "validation_failed")
