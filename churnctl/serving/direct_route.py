"""`DirectRoute`: a FastAPI route whose endpoint takes the Request and returns a Response, run
without FastAPI's per-request machinery.

The scoring endpoints validate bodies themselves against the served model's request models
(app.py says why), so FastAPI's request handler has nothing to do for them, yet it costs more
than scoring one customer: dependency solving, two AsyncExitStacks and a per-route exception
wrapper, ~25-40 µs of a ~120 µs /predict in-process (cProfile; bench/results/feast.json has
the HTTP figures). A DirectRoute keeps what the route is to FastAPI (it stays an APIRoute in
`app.routes`, so OpenAPI, `scope["route"]` for the server span and 405s are unchanged) and
replaces only the ASGI callable that runs the endpoint. Exceptions propagate to the app's
ExceptionMiddleware, which answers them with the same registered handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoute(APIRoute):
    def __init__(self, path: str, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            response = await endpoint(Request(scope, receive, send))
            await response(scope, receive, send)

        self.app = app
