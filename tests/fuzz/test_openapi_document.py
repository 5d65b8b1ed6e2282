"""The OpenAPI document: valid OpenAPI 3.1, served, and exactly as wide as the routes it describes."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web
from openapi_spec_validator import validate

from gateway.app import make_app
from gateway.http.openapi import document
from tests.conftest import Gateway, make_settings

_DOCUMENTED = re.compile(r"^(/v1/|/log/|/healthz$|/readyz$|/openapi\.json$)")
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def routed(app: web.Application) -> set[tuple[str, str]]:
    """(path, method) of every native, log and health route the app serves, in OpenAPI's spelling."""
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path is None or not _DOCUMENTED.match(path) or route.method == "HEAD":
            continue
        out.add((_PARAM.sub(r"{\1}", path), route.method.lower()))
    return out


def documented() -> set[tuple[str, str]]:
    """(path, method) of every operation in the document."""
    return {(path, method) for path, item in document()["paths"].items() for method in item}


def test_the_document_is_valid_openapi_3_1() -> None:
    """openapi-spec-validator accepts the document, references and all."""
    doc = document("http://127.0.0.1:8080")
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_every_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    """The document's paths and methods are exactly the router's native, log and health routes."""
    app = make_app(make_settings(f"sqlite:///{tmp_path / 'b.db'}", tmp_path))
    served = routed(app)
    assert ("/v1/posts/{id}/approve", "post") in served  # the comparison sees the routes at all
    assert documented() - served == set(), "documented but not routed"
    assert served - documented() == set(), "routed but not documented"


def test_request_bodies_are_the_handlers_models() -> None:
    """A request body's schema is its pydantic model's: what the handler accepts, to the field."""
    from gateway.http.native import SubmitBody

    doc = document()
    body = doc["paths"]["/v1/posts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SubmitBody"}
    schema = doc["components"]["schemas"]["SubmitBody"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(SubmitBody.model_fields)
    assert schema["required"] == ["account", "text"]


async def test_served_at_openapi_json(gateway: Gateway) -> None:
    """GET /openapi.json needs no token and names the gateway it came from as its server."""
    status, body = await gateway.call(None, "GET", "/openapi.json")
    assert status == 200
    assert body["servers"] == [{"url": str(gateway.client.make_url("")).rstrip("/")}]
    assert {k: v for k, v in body.items() if k != "servers"} == document()
