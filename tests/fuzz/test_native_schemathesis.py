"""Schemathesis against a live gateway, from the OpenAPI document it serves, on both databases.

Every operation of the native API, the log API and the health checks gets generated requests,
valid and invalid, sent with a real token (of a random person) so they get past
authentication. Each answer must not be a 5xx, must have a status the document names for the
operation, must be of the content type it names, and must match its response schema; an
operation that needs a token must refuse a request without one.

Random names and ids would almost never hit anything that exists, so the generated path ids,
accounts and post bodies are sometimes swapped for the posts and accounts the module made at
the start (every state a post can wait in): the fuzzing then reaches edits, approvals,
adoptions, proofs and policies, not only 404s.

``BYLINE_TEST_FUZZ_OPENAPI_EXAMPLES`` sets the examples per operation (`make fuzz` runs more).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.http.openapi import document
from tests.conftest import BACKENDS, TEST_POLICIES, USERS, make_policy_dir
from tests.fuzz.live import Live, examples, live_gateway

# A request over the gateway's body limit is refused as too large (413) before it is read.
REFUSALS = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428]
schema = schemathesis.openapi.from_dict(document(), config=SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}
))
CHECKS = [
    not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
    ignored_auth, negative_data_rejection,
]
ACCOUNTS = (*TEST_POLICIES, "nobody")


class Seeds:
    """What the module made before fuzzing: tokens and posts the generated requests may name."""

    tokens: ClassVar[dict[str, str]] = {}
    posts: ClassVar[list[str]] = []


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One gateway for the whole module on each database, with a post in every waiting state."""
    root: Path = tmp_path_factory.mktemp(f"openapi-{request.param}")
    with live_gateway(request.param, root, make_policy_dir(root, TEST_POLICIES)) as gw:
        Seeds.tokens = dict(gw.gateway.tokens)
        Seeds.posts = _seed(gw)
        yield gw


def _seed(gw: Live) -> list[str]:
    made = []
    for user, account, text in [
        ("alice", "direct", "Published at once"),
        ("alice", "direct", "The CEO was fired"),  # held by a rule
        ("bob", "delayed", "Waits ten minutes"),
        ("alice", "cosigned", "Needs two approvals"),
        ("dave", "managed", "A suggestion from the owner"),
        ("carol", "managed", "Written by the team"),
    ]:
        made.append(gw.run(gw.gateway.submit(user, account, text))["id"])
    gw.run(gw.gateway.tick())
    return made


def _dress(case: Any, pick: int, account_pick: int) -> Any:
    """The generated case, naming a made post or account when the picks say so."""
    if case.path_parameters and "id" in case.path_parameters and pick < len(Seeds.posts):
        case.path_parameters = {**case.path_parameters, "id": Seeds.posts[pick]}
    if account_pick < len(ACCOUNTS):
        if case.path_parameters and "account" in case.path_parameters:
            case.path_parameters = {**case.path_parameters, "account": ACCOUNTS[account_pick]}
        if isinstance(case.body, dict) and isinstance(case.body.get("account"), str):
            case.body = {**case.body, "account": ACCOUNTS[account_pick]}
        if case.query and isinstance(case.query.get("account"), str):
            case.query = {**case.query, "account": ACCOUNTS[account_pick]}
    return case


@schema.hook
def flatmap_case(context: Any, case: Any) -> Any:
    """Often name things that exist: a made post, an account with a policy."""
    return st.builds(_dress, st.just(case), st.integers(0, 2 * len(Seeds.posts)), st.integers(0, 2 * len(ACCOUNTS)))


@schema.parametrize()
@schema.given(user=st.sampled_from(USERS))
@settings(
    max_examples=examples("OPENAPI_EXAMPLES", 20), deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_native_api_holds_to_its_document(case: Any, user: str, live: Live) -> None:
    """No 5xx, only documented statuses and content types, bodies as documented, auth enforced."""
    auth = {"Authorization": f"Bearer {Seeds.tokens[user]}"}
    case.call_and_validate(base_url=live.base_url, headers=auth, checks=CHECKS)
