"""Routes whose JSON bodies carry quantities read their numbers exactly as sent.

FastAPI parses a JSON body with `json.loads`, which reads 0.1000000000000000000001 as the float
0.1 before any validator runs, so the 3-decimal rule on cpu and ram_gb would be applied to a
rounded number. The routers of clusters and deployments use this route class instead (FastAPI's
documented way to change how a request is read): fractions become `Decimal`, integers stay `int`.
Other routes keep floats, since prediction inputs are free JSON that a model receives as such."""

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class _ExactNumbersRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class ExactNumbersRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_numbers_handler(request: Request) -> Response:
            return await handler(_ExactNumbersRequest(request.scope, request.receive))

        return exact_numbers_handler
