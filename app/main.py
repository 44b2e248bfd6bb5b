"""The ASGI application: `create_app(settings)` builds it; `app.main:app` is the default one."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.api.classic import router as classic_router
from app.api.errors import install_error_handlers
from app.api.openapi import install_docs, install_openapi
from app.api.operations import router as operations_router
from app.api.v1.router import api_router
from app.console.pages import install_console
from app.core.config import Settings
from app.core.logging import configure_logging
from app.core.middleware import EdgeMiddleware, is_sane_request_id
from app.core.rate_limit import RateLimits
from app.core.security import CookieSigner, use_password_cost
from app.db.session import create_engine, create_sessionmaker, single_statement_engine
from app.workers import lifecycle as background

DESCRIPTION = """
Multi-tenant MLOps platform: organizations, clusters with CPU/RAM/GPU capacity, a
priority-preemption scheduler for model deployments, and predictions.

Sign in with `POST /api/v1/auth/login`; the session cookie authenticates every other call.
Errors always have the shape `{"error": "...", "code": "..."}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.warn_if_insecure()
    use_password_cost(settings.password_hash_memory_kib, settings.password_hash_time_cost)
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # What exists by now (modules, routes, schemas: some 150k objects) lives as long as the
        # process. Frozen, it is no longer scanned by full collections, which took 50-100 ms each
        # and stalled every request in flight.
        gc.freeze()
        await background.start(app)
        try:
            yield
        finally:
            await background.stop(app)
            await engine.dispose()

    app = FastAPI(
        title="MLOps Platform API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs and /redoc are `install_docs`'s: on assets shipped in the package, not a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_tags=[
            {"name": "auth", "description": "Accounts and session cookies."},
            {"name": "organizations", "description": "Organizations, invite codes, members."},
            {"name": "clusters", "description": "Pools of CPU/RAM/GPU capacity (admins)."},
            {"name": "deployments", "description": "Deployments and their scheduling."},
            {"name": "scheduling", "description": "Preemption strategies."},
            {"name": "models", "description": "The model catalog and availability."},
            {"name": "predictions", "description": "Predictions, sync or asynchronous."},
            {"name": "webhooks", "description": "Signed callbacks: secret and delivery attempts."},
            {
                "name": "classic",
                "description": "The classic single-model API (`/predict`) on the default "
                "deployment, for clients written against a one-model server.",
            },
            {"name": "operations", "description": "Health, readiness and metrics."},
        ],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.lookup_engine = single_statement_engine(engine)
    app.state.cookie_signer = CookieSigner(settings.secret_key)
    app.state.rate_limits = RateLimits(settings)
    background.attach(app, settings)

    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    app.include_router(operations_router)
    app.include_router(api_router)
    app.include_router(classic_router)
    install_console(app)

    # Added innermost first: the last one added wraps all the others.
    app.add_middleware(EdgeMiddleware)
    app.add_middleware(
        CorrelationIdMiddleware, header_name="X-Request-ID", validator=is_sane_request_id
    )
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app


def __getattr__(name: str) -> Any:
    """`app.main:app` builds the default app on first access, not at import time."""
    if name == "app":
        settings = Settings()
        configure_logging(settings.log_level)
        application = create_app(settings)
        globals()["app"] = application
        return application
    raise AttributeError(name)
