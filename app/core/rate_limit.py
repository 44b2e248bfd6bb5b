"""Rate limits through slowapi, checked in a dependency so that signed-in callers are keyed by user.

slowapi's own middleware runs before authentication, so it could only key by address. Instead every
API route depends on `enforce_rate_limit`, which runs after the session is resolved. A route opts
into a stricter named limit with `@rate_limit_scope("login")`; the default limit applies as well.
"""

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from slowapi import Limiter
from starlette.requests import Request

from app.core.config import Settings

F = TypeVar("F", bound=Callable[..., Any])
_SCOPE_ATTRIBUTE = "__rate_limit_scope__"
DEFAULT_SCOPE = "default"


def rate_limit_scope(scope: str) -> Callable[[F], F]:
    """Mark an endpoint with a named limit (`login`, `join`, `predict`)."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _SCOPE_ATTRIBUTE, scope)
        return endpoint

    return mark


def address_key(request: Request) -> str:
    client = request.client
    return f"addr:{client.host if client else 'unknown'}"


def rate_limit_key(request: Request) -> str:
    """Synchronous on purpose: slowapi never awaits an async key function (so it never limits)."""
    user_id = getattr(request.state, "user_id", None)
    return f"user:{user_id}" if user_id is not None else address_key(request)


# slowapi calls `inspect.signature(key_func)` for every limit on every request; a precomputed
# `__signature__` makes that a lookup instead of a rebuild.
for _key_func in (address_key, rate_limit_key):
    _key_func.__signature__ = inspect.signature(_key_func)  # type: ignore[attr-defined]

# Login guesses are limited by address whoever is signed in: keyed by user, every account an
# attacker registers would bring a fresh budget of guesses at other people's passwords.
_KEY_FUNCS = {"login": address_key}


class RateLimits:
    """One slowapi Limiter per app, and one checker per named scope."""

    def __init__(self, settings: Settings) -> None:
        self.limiter = Limiter(
            key_func=rate_limit_key,
            default_limits=[settings.rate_limit_default],
            storage_uri=settings.rate_limit_storage_uri,
            enabled=settings.rate_limit_enabled,
            key_style="endpoint",
            # Both are needed: with only one of them, an unreachable Redis still gives 500s.
            swallow_errors=True,
            in_memory_fallback_enabled=True,
        )
        named = {
            "login": settings.rate_limit_login,
            "join": settings.rate_limit_join,
            "predict": settings.rate_limit_predict,
        }
        self._checkers: dict[str, Callable[..., Awaitable[None]]] = {
            DEFAULT_SCOPE: self._checker(DEFAULT_SCOPE, settings.rate_limit_default, True)
        }
        for scope, limit in named.items():
            # override_defaults=False: the named limit is checked together with the default.
            self._checkers[scope] = self._checker(scope, limit, False)

    def _checker(self, scope: str, limit: str, override: bool) -> Callable[..., Awaitable[None]]:
        async def check(request: Request) -> None:
            return None

        # slowapi keys its buckets by the function's qualified name: one bucket set per scope.
        check.__name__ = check.__qualname__ = f"scope_{scope}"
        check.__module__ = __name__
        decorated: Callable[..., Awaitable[None]] = self.limiter.limit(
            limit, key_func=_KEY_FUNCS.get(scope), override_defaults=override
        )(check)
        return decorated

    async def check(self, request: Request) -> None:
        route = request.scope.get("route")
        scope = getattr(getattr(route, "endpoint", None), _SCOPE_ATTRIBUTE, DEFAULT_SCOPE)
        await self._checkers[scope](request=request)

    def retry_after(self, request: Request) -> int:
        """Seconds until the limit that was hit lets a request through again."""
        view_limit = getattr(request.state, "view_rate_limit", None)
        if not view_limit:
            return 1
        limit, args = view_limit
        reset_at, _remaining = self.limiter.limiter.get_window_stats(limit, *args)
        return max(1, int(reset_at - time.time()) + 1)
