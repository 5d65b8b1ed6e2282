"""``GET /openapi.json``: an OpenAPI 3.1 description of the native API, the log API and health.

Request bodies come from the handlers' own pydantic models, so the document cannot drift from
what they accept; responses are written out here, next to the shapes the services return. A
test compares its paths and methods with the application's router, and the fuzz tests
(schemathesis) hold the running gateway to it: every status and every body it answers with
must be one this document names.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from gateway.http import native
from gateway.http.common import base_url
from gateway.lifecycle import State
from gateway.policy.models import Policy

routes = web.RouteTableDef()

JSON = "application/json"
_REF = "#/components/schemas/{model}"

# What each kind of caller mistake is answered with (gateway/errors.py chooses the statuses):
# a missing or bad token; a body that cannot be read or validated; an action on a post.
_AUTH = "401"
_BODY = "400 413 415 422"
_POST_ACTION = "403 404 409"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_STRING = {"type": "string"}
_INT = {"type": "integer"}
_TIME = _nullable({"type": "string", "format": "date-time"})
_NAMES = {"type": "array", "items": _STRING}
_OBJECT = {"type": "object"}


def _model_schemas(*models: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    """The JSON Schemas of pydantic models, their nested definitions hoisted to components."""
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(by_alias=True, ref_template=_REF, mode=mode)
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def _schemas() -> dict[str, Any]:
    policy = _model_schemas(Policy, mode="serialization")
    # The API never shows the credential reference, only whether one is set.
    policy["Policy"]["properties"]["credentials"] = _nullable({"const": "(set)"})
    bodies = _model_schemas(
        native.SubmitBody, native.EditBody, native.DecisionBody, native.RejectBody,
        native.ReasonBody, native.EmptyBody, native.AdoptBody,
    )
    post_properties: dict[str, Any] = {
        "id": _STRING, "account": _STRING, "author": _STRING, "editors": _NAMES,
        "state": {"type": "string", "enum": [s.value for s in State]},
        "text": _STRING, "display_text": _STRING,
        "sent_text": _nullable({**_STRING, "description": (
            "What an earlier send of a post not out went out with, where that is not display_text (edited "
            "since it was sent, and the platform's answer then lost or a failure): it may be on the platform "
            "already; approvers approve display_text. Null otherwise.")}),
        "version": {"type": "integer", "minimum": 1},
        "options": _OBJECT, "publish_at": _TIME, "expires_at": _TIME,
        "reasons": {"type": "array", "items": _OBJECT}, "approvers": _NAMES,
        "approvals_required": {"type": "integer", "minimum": 0},
        "approvals_needed": {"type": "integer", "minimum": 0},
        "approved_by": {**_NAMES, "description": (
            "Who approved the words a held post goes out with now, and counts toward its release: an approval "
            "given for other words (the disclosure line changed since) is not among them. Empty otherwise.")},
        "remote": _nullable({
            "type": "object", "required": ["id", "url"],
            "properties": {"id": _STRING, "url": _nullable(_STRING)},
        }),
        "suggested_by": _nullable(_STRING), "adopted_from": _nullable(_STRING),
        "adopted_into": _nullable(_STRING), "revises": _nullable(_STRING),
        "attempts": {"type": "integer", "minimum": 0},
        "last_error": _nullable(_STRING), "created_at": _TIME, "updated_at": _TIME,
    }
    post_summary: dict[str, Any] = {
        "type": "object", "required": list(post_properties), "properties": post_properties,
        "description": "A post as listed: without its versions, approvals and events.",
    }
    post: dict[str, Any] = copy.deepcopy(post_summary)
    post["description"] = "A post with its versions, approvals and log events."
    post["required"] = [*post_properties, "versions", "approvals", "events"]
    post["properties"].update({
        "versions": {"type": "array", "items": {
            "type": "object", "required": ["version", "text", "editor", "at"],
            "properties": {"version": _INT, "text": _STRING, "editor": _STRING, "at": _TIME},
        }},
        "approvals": {"type": "array", "items": {
            "type": "object", "required": ["approver", "decision", "reason", "version", "at", "current"],
            "properties": {
                "approver": _STRING, "decision": {"type": "string", "enum": ["approve", "reject"]},
                "reason": _nullable(_STRING), "version": _INT, "at": _TIME, "current": {"type": "boolean"},
            },
        }},
        "events": {"type": "array", "items": {
            "type": "object", "required": ["index", "type", "actor", "ts", "data"],
            "properties": {"index": _INT, "type": _STRING, "actor": _STRING, "ts": {}, "data": {}},
        }},
    })
    issue = {
        "type": "object", "required": ["file", "line", "key", "message"],
        "properties": {"file": _STRING, "line": _nullable(_INT), "key": _STRING, "message": _STRING},
    }
    b64 = {"type": "string", "contentEncoding": "base64"}
    return {
        **bodies,
        **policy,
        "Error": {
            "type": "object", "required": ["error", "message"],
            "description": "Every refusal: a code to branch on, a message to show, and any details "
                           "(the fields at fault, a rule and its reason, the current version…).",
            "properties": {"error": _STRING, "message": _STRING},
        },
        "PostSummary": post_summary,
        "Post": post,
        "PostList": {"type": "object", "required": ["posts"],
                     "properties": {"posts": {"type": "array", "items": _ref("PostSummary")}}},
        "Account": {
            "type": "object",
            "required": ["account", "platform", "handle", "tier", "roles", "healthy", "problem", "warning"],
            "properties": {
                "account": _STRING, "platform": _STRING, "handle": _STRING, "tier": _STRING,
                "roles": _NAMES, "healthy": {"type": "boolean"}, "problem": _nullable(_STRING),
                "warning": _nullable(_STRING),
            },
        },
        "AccountList": {"type": "object", "required": ["accounts"],
                        "properties": {"accounts": {"type": "array", "items": _ref("Account")}}},
        "PolicyIssue": issue,
        "AccountPolicy": {
            "type": "object", "required": ["account", "sha256", "file", "policy", "summary", "refused"],
            "properties": {
                "account": _STRING, "sha256": _STRING, "file": _STRING, "policy": _ref("Policy"),
                "summary": _OBJECT, "refused": {"type": "array", "items": _ref("PolicyIssue")},
            },
        },
        "PolicyErrors": {"type": "object", "required": ["errors"],
                         "properties": {"errors": {"type": "array", "items": _ref("PolicyIssue")}}},
        "PostProofs": {
            "type": "object", "required": ["post", "checkpoint", "events"],
            "properties": {
                "post": _STRING, "checkpoint": _nullable(_STRING),
                "events": {"type": "array", "items": {
                    "type": "object", "required": ["index", "type", "leaf", "proof", "problem"],
                    "properties": {"index": _INT, "type": _nullable(_STRING), "leaf": b64,
                                   "proof": _nullable(_STRING), "problem": _nullable(_STRING)},
                }},
            },
        },
        "LogEntries": {"type": "object", "required": ["entries"], "properties": {"entries": {
            "type": "array", "items": {"type": "object", "required": ["index", "leaf"],
                                       "properties": {"index": _INT, "leaf": b64}},
        }}},
        "LogTexts": {"type": "object", "required": ["texts"], "properties": {"texts": {
            "type": "array", "items": {
                "type": "object", "required": ["hash", "salt", "text", "withheld"],
                "properties": {"hash": _STRING, "salt": _nullable(_STRING), "text": _nullable(_STRING),
                               "withheld": {"type": "boolean"}},
            },
        }}},
        "InclusionProof": {"type": "object", "required": ["index", "size", "proof"], "properties": {
            "index": _INT, "size": _INT, "proof": {"type": "array", "items": b64}}},
        "ConsistencyProof": {"type": "object", "required": ["old", "new", "proof"], "properties": {
            "old": _INT, "new": _INT, "proof": {"type": "array", "items": b64}}},
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
        "Readiness": {
            "type": "object",
            "required": ["status", "problems", "accounts_unhealthy", "policy_errors", "policy_drift"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]}, "problems": _OBJECT,
                "accounts_unhealthy": _NAMES, "policy_errors": {"type": "integer", "minimum": 0},
                "profile_bylines_failing": _NAMES,
                "account_problems": {"type": "object", "additionalProperties": _STRING},
                "account_warnings": {"type": "object", "additionalProperties": _STRING},
                "gate_changes_stranded": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
                "post_changes_stranded": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
                "policy_drift": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["file_sha256", "version_in_force", "sha256_in_force"],
                    "properties": {"file_sha256": {"type": ["string", "null"]},
                                   "version_in_force": {"type": ["integer", "null"]},
                                   "sha256_in_force": {"type": ["string", "null"]}}}},
            },
        },
    }


_DESCRIPTIONS = {
    "400": "The body is not JSON, or not a JSON object",
    "401": "No token, or an unknown, revoked or expired one",
    "403": "The caller has no role for this",
    "404": "No such thing, or not one the caller may see",
    "409": "The post is not in a state that allows this, or changed meanwhile",
    "413": "The body is too large",
    "415": "The body is not sent as application/json",
    "422": "A field is missing, unknown or invalid, or a rule blocks the text",
    "428": "An approval or rejection that names no version",
    "503": "The platform or the log cannot answer now",
}


def _error(status: str) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS[status], "content": {JSON: {"schema": _ref("Error")}}}


def _operation(
    summary: str, *, ok: str, schema: dict[str, Any] | None, errors: str,
    body: str | None = None, body_required: bool = True, parameters: list[dict[str, Any]] | None = None,
    public: bool = False, optional_auth: bool = False, media: str = JSON, ok_description: str = "OK",
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": {JSON: {"schema": _ref(body)}}}
    ok_response: dict[str, Any] = {"description": ok_description}
    if schema is not None:
        ok_response["content"] = {media: {"schema": schema}}
    op["responses"] = {ok: ok_response, **{status: _error(status) for status in sorted(set(errors.split()))}}
    if public:
        op["security"] = []
    elif optional_auth:
        op["security"] = [{}, {"bearer": []}]
    return op


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or _STRING}


def _query(name: str, description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_POST_ID = _path("id", "The post's id", {"type": "string", "pattern": "^[0-9]{1,24}$"})
_INDEX = {"type": "integer", "minimum": 0, "maximum": (1 << 63) - 1}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
             "description": 'The version the approver (or the adopting writer) read, '
                            'as the ETag of GET /v1/posts/{id} ("3")',
             "schema": {"type": "string", "pattern": '^"[1-9][0-9]{0,17}"$'}}


def _action(summary: str, body: str, *, status: str = "200", extra: str = "") -> dict[str, Any]:
    params = [_POST_ID]
    if body in ("DecisionBody", "RejectBody", "AdoptBody"):
        params.append(_IF_MATCH)
    return _operation(summary, ok=status, schema=_ref("Post"), body=body, body_required=False,
                      parameters=params, errors=f"{_AUTH} {_BODY} {_POST_ACTION} {extra}")


def _paths() -> dict[str, Any]:
    text = "text/plain"
    return {
        "/healthz": {"get": _operation("The process is up", ok="200", schema=_ref("Health"), errors="",
                                       public=True)},
        "/readyz": {"get": {
            "summary": "Ready to take posts: the database answers and policies are loaded",
            "security": [],
            "responses": {
                "200": {"description": "Ready", "content": {JSON: {"schema": _ref("Readiness")}}},
                "503": {"description": "Not ready: problems says why",
                        "content": {JSON: {"schema": _ref("Readiness")}}},
            },
        }},
        "/openapi.json": {"get": _operation("This document", ok="200", schema=_OBJECT, errors="", public=True)},
        "/v1/posts": {
            "post": _operation("Submit a post for an account", ok="201", schema=_ref("Post"), body="SubmitBody",
                               errors=f"{_AUTH} {_BODY} 403 404 409", ok_description="The post"),
            "get": _operation(
                "Posts the caller may see, newest first", ok="200", schema=_ref("PostList"),
                errors=f"{_AUTH} 403 404 422", parameters=[
                    _query("account", "Only this account's posts", _STRING),
                    _query("state", "Only posts in this state", {"type": "string", "enum": [s.value for s in State]}),
                    _query("limit", "How many (default 50)", {"type": "integer", "minimum": 1, "maximum": 200}),
                    _query("before", "Only posts whose id sorts before this one", _STRING),
                ],
            ),
        },
        "/v1/posts/{id}": {
            "get": _operation("One post, with versions, approvals, reasons and events; its version is the ETag",
                              ok="200", schema=_ref("Post"), parameters=[_POST_ID], errors=f"{_AUTH} 403 404"),
            "patch": _operation("A new version of the text; of a published post, edited on its platform at once, "
                                "or answered with its pending revision where its policy holds the words",
                                ok="200", schema=_ref("Post"), body="EditBody",
                                parameters=[_POST_ID], errors=f"{_AUTH} {_BODY} {_POST_ACTION} 503"),
            "delete": _operation("Delete a published post on its platform; the record stays", ok="200",
                                 schema=_ref("Post"), parameters=[_POST_ID],
                                 errors=f"{_AUTH} {_POST_ACTION} 503"),
        },
        "/v1/posts/{id}/approve": {"post": _action("Approve the version read", "DecisionBody", extra="428")},
        "/v1/posts/{id}/reject": {"post": _action("Reject the version read, with a reason", "RejectBody",
                                                  extra="428")},
        "/v1/posts/{id}/cancel": {"post": _action("The author takes the post back", "EmptyBody")},
        "/v1/posts/{id}/adopt": {"post": _action("A writer adopts a suggestion: the new post", "AdoptBody",
                                                 status="201", extra="428")},
        "/v1/posts/{id}/dismiss": {"post": _action("A writer declines a suggestion", "ReasonBody")},
        "/v1/posts/{id}/retry": {"post": _action("Put a failed post back in the queue", "EmptyBody")},
        "/v1/posts/{id}/proof": {"get": _operation(
            "A c2sp.org/tlog-proof bundle for each logged event of the post", ok="200",
            schema=_ref("PostProofs"), parameters=[_POST_ID], errors=f"{_AUTH} 403 404 503",
        )},
        "/v1/accounts": {"get": _operation("The accounts the caller has a role on", ok="200",
                                           schema=_ref("AccountList"), errors=_AUTH)},
        "/v1/accounts/{account}/policy": {"get": _operation(
            "The policy in force for an account, and any refused newer version of its file", ok="200",
            schema=_ref("AccountPolicy"), parameters=[_path("account", "The account's name")],
            errors=f"{_AUTH} 403 404 409",
        )},
        "/v1/policies/errors": {"get": _operation("Policy files that were refused, with every problem named",
                                                  ok="200", schema=_ref("PolicyErrors"), errors=_AUTH)},
        "/log/key": {"get": _operation("The verifier key of the log's checkpoints", ok="200", schema=_STRING,
                                       media=text, errors="", public=True)},
        "/log/checkpoint": {"get": _operation("The latest signed checkpoint note", ok="200", schema=_STRING,
                                              media=text, errors="503", public=True)},
        "/log/entries": {"get": _operation(
            "Entries start <= index < end (at most 1000), as the exact bytes that were hashed", ok="200",
            schema=_ref("LogEntries"), errors="422", public=True,
            parameters=[_query("start", "First index", _INDEX, required=True),
                        _query("end", "One past the last index", _INDEX, required=True)],
        )},
        "/log/texts": {"get": _operation(
            "The texts and salts those entries commit to; withheld ones are null unless the caller "
            "has a role on the account or audits", ok="200", schema=_ref("LogTexts"),
            errors=f"{_AUTH} 422", optional_auth=True,
            parameters=[_query("start", "First index", _INDEX, required=True),
                        _query("end", "One past the last index", _INDEX, required=True)],
        )},
        "/log/proof/inclusion": {"get": _operation(
            "The RFC 9162 inclusion proof of an entry in a tree size", ok="200", schema=_ref("InclusionProof"),
            errors="422 503", public=True,
            parameters=[_query("index", "The entry", _INDEX, required=True),
                        _query("size", "The tree size", _INDEX, required=True)],
        )},
        "/log/proof/consistency": {"get": _operation(
            "The RFC 9162 consistency proof between two tree sizes", ok="200", schema=_ref("ConsistencyProof"),
            errors="422 503", public=True,
            parameters=[_query("old", "The older tree size", _INDEX, required=True),
                        _query("new", "The newer tree size", _INDEX, required=True)],
        )},
        "/log/tile/{path}": {"get": _operation(
            "A c2sp.org/tlog-tiles hash tile (LEVEL/N[.p/W]) or entry bundle (entries/N[.p/W])", ok="200",
            schema={"type": "string", "format": "binary"}, media="application/octet-stream",
            errors="404", public=True, parameters=[_path("path", "The tile's path, slashes included")],
        )},
    }


@functools.cache
def _static_document() -> dict[str, Any]:
    try:
        version = importlib.metadata.version("byline")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        version = "0"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Byline",
            "version": version,
            "description": "The native API of the Byline posting gateway, its public audit log and its "
                           "health checks. Every error is JSON: {\"error\": code, \"message\": …}.",
        },
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "A token made by `byline token create --user NAME`",
            }},
            "schemas": _schemas(),
        },
    }


def document(server: str | None = None) -> dict[str, Any]:
    """The OpenAPI document, naming ``server`` as the base URL when given."""
    doc = copy.deepcopy(_static_document())
    if server is not None:
        doc["servers"] = [{"url": server}]
    return doc


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of the native API, the log API and the health checks."""
    return web.json_response(document(base_url(request)))
