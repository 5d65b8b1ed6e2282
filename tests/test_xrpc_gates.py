"""A threadgate or postgate goes out with its post but without its approvals: it says who may
reply or quote, in the fields its lexicon names, and carries nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.services.xrpc_gates import POSTGATE, THREADGATE, GateError, check_gate

POST_URI = "at://did:plc:abc/app.bsky.feed.post/3kabcdefghij2"
STAMP = "2026-12-05T10:00:00.000Z"


def _threadgate(**more: Any) -> dict[str, Any]:
    return {"$type": THREADGATE, "post": POST_URI, "createdAt": STAMP,
            "allow": [{"$type": f"{THREADGATE}#mentionRule"}], **more}


def test_a_gate_as_the_app_sends_it_is_kept_as_it_is() -> None:
    """Every field the lexicons name, listRule's list included, passes unchanged."""
    gate = _threadgate(allow=[{"$type": f"{THREADGATE}#listRule", "list": "at://did:plc:abc/app.bsky.graph.list/1"}],
                       hiddenReplies=["at://did:plc:x/app.bsky.feed.post/1"])
    assert check_gate(THREADGATE, gate, post_uri=POST_URI) == gate
    postgate = {"$type": POSTGATE, "post": POST_URI, "createdAt": STAMP,
                "embeddingRules": [{"$type": f"{POSTGATE}#disableRule"}], "detachedEmbeddingUris": []}
    assert check_gate(POSTGATE, postgate, post_uri=POST_URI) == postgate


@pytest.mark.parametrize(("gate", "where"), [
    (_threadgate(text="UNAPPROVED: we are shutting down tomorrow"), "Record/text"),
    (_threadgate(embed={"$type": "app.bsky.embed.external", "external": {"uri": "https://evil.example"}}),
     "Record/embed"),
    (_threadgate(allow=[{"$type": f"{THREADGATE}#mentionRule", "note": "words"}]), "Record/allow/0/note"),
    ({"$type": POSTGATE, "post": POST_URI, "createdAt": STAMP, "embeddingRules": [], "text": "words"}, "Record/text"),
])
def test_a_field_the_lexicon_does_not_name_is_refused(gate: dict[str, Any], where: str) -> None:
    """Words of the writer's choosing in a gate would reach the account's public repository
    past the approvers: such a gate is refused, naming the field."""
    with pytest.raises(GateError, match=f"^{where} is not part of"):
        check_gate(str(gate["$type"]), gate, post_uri=POST_URI)


@pytest.mark.parametrize(("gate", "where"), [
    (_threadgate(hiddenReplies=["at://not an address"]), "Record/hiddenReplies/0"),
    (_threadgate(hiddenReplies=[f"{POST_URI}\n"]), "Record/hiddenReplies/0"),
    (_threadgate(allow=[{"$type": f"{THREADGATE}#listRule", "list": "at://did:plc:abc/not-a-collection/1"}]),
     "Record/allow/0/list"),
    ({"$type": POSTGATE, "post": POST_URI, "createdAt": STAMP, "detachedEmbeddingUris": ["at://x/y/z"]},
     "Record/detachedEmbeddingUris/0"),
])
def test_an_address_the_pds_would_refuse_is_refused(gate: dict[str, Any], where: str) -> None:
    """A string that starts "at://" but is no AT-URI (its authority neither a handle nor a DID,
    its collection no NSID, a newline after it): the PDS would refuse the gate's whole commit,
    the post it goes with included, so it is refused as it is sent."""
    with pytest.raises(GateError, match=f"^{where} must be an at:// URI$"):
        check_gate(str(gate["$type"]), gate, post_uri=POST_URI)
