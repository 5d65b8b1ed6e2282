"""``GET /metrics`` (Prometheus text format) and the middleware that counts and times requests.

The page needs no token, as Prometheus scrapes it: it holds counts by route pattern, tier,
platform and outcome, and never an account, a person, a post or a token (see
``gateway.metrics``). ``BYLINE_METRICS=off`` turns both the page and the middleware off.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.appkeys import METRICS
from gateway.metrics import CONTENT_TYPE, Metrics

routes = web.RouteTableDef()

UNMATCHED = "unmatched"
"""The route label of a request no route matched (a 404 or 405): its path is never a label."""


@routes.get("/metrics")
async def metrics_page(request: web.Request) -> web.Response:
    """The gateway's metrics, in the Prometheus text exposition format."""
    body = await request.app[METRICS].scrape()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def counting(metrics: Metrics) -> Middleware:
    """A middleware that counts each request by method, route pattern and status, and times it.

    It goes first, outside the error middleware, so that it sees the status a client gets. A
    request whose client went away before the answer (cancelled) is not counted.
    """
    clock = time.perf_counter
    observe = metrics.request

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = clock()
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # a redirect, or an answer the error middleware let by
            _observe(observe, request, exc.status, clock() - started)
            raise
        _observe(observe, request, response.status, clock() - started)
        return response

    return count


def _observe(
    observe: Callable[[str, str, int, float], None], request: web.Request, status: int, seconds: float
) -> None:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else UNMATCHED
    observe(request.method, route, status, seconds)
