"""Dependencies: who the caller is, what they may touch. Endpoints read like their signature."""

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.errors import NotAuthenticated
from app.core.security import CookieSigner
from app.db.session import session_scope
from app.models.cluster import Cluster
from app.models.deployment import Deployment
from app.models.organization import Organization, Role
from app.services import auth as auth_service
from app.services.auth import Principal
from app.services.pagination import Page
from app.services.tenancy import Scoped, load_scoped


# Dependencies are `async def` even when nothing awaits: FastAPI runs plain `def` ones in a thread
# pool, which costs more than the work they do.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in session_scope(request.app.state.sessionmaker):
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbSession = Annotated[AsyncSession, Depends(get_db)]


async def get_cookie_signer(request: Request) -> CookieSigner:
    signer: CookieSigner = request.app.state.cookie_signer
    return signer


CookieSignerDep = Annotated[CookieSigner, Depends(get_cookie_signer)]


def _verified_token(request: Request) -> str | None:
    """The session token from the cookie, or None when absent or tampered with. A plain function,
    not dependencies on settings and signer: each dependency costs FastAPI real time to solve."""
    state = request.app.state
    cookie = request.cookies.get(state.settings.session_cookie_name)
    signer: CookieSigner = state.cookie_signer
    return signer.unsign(cookie) if cookie else None


async def session_token(request: Request) -> str | None:
    """The verified session token from the cookie, or None when absent or tampered with."""
    return _verified_token(request)


SessionToken = Annotated[str | None, Depends(session_token)]


async def optional_user(request: Request) -> Principal | None:
    """Resolved once per request (before the endpoint's own dependencies), on a connection of its
    own that goes back to the pool at once: endpoints that need only the user, like /me, open no
    ORM session at all."""
    token = _verified_token(request)
    if token is None:
        return None
    async with request.app.state.lookup_engine.connect() as conn:
        user = await auth_service.principal_for_session(conn, token)
    if user is not None:
        request.state.user_id = user.id  # rate limits key on this
    return user


async def enforce_rate_limit(
    request: Request, _user: Annotated[Principal | None, Depends(optional_user)]
) -> None:
    """Runs on every API route after the session is resolved, so limits key by user."""
    await request.app.state.rate_limits.check(request)


async def current_user(user: Annotated[Principal | None, Depends(optional_user)]) -> Principal:
    if user is None:
        raise NotAuthenticated()
    return user


CurrentUser = Annotated[Principal, Depends(current_user)]


def org_access(role: Role) -> Callable[..., Coroutine[Any, Any, Scoped[Organization]]]:
    """Load `{org_id}` through the tenancy helper (outsiders: 404), then require `role` (403)."""

    async def dependency(org_id: str, user: CurrentUser, db: DbSession) -> Scoped[Organization]:
        access = await load_scoped(db, Organization, org_id, user.id, "organization")
        return access.require(role)

    return dependency


OrgForViewer = Annotated[Scoped[Organization], Depends(org_access(Role.viewer))]
OrgForAdmin = Annotated[Scoped[Organization], Depends(org_access(Role.admin))]


async def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (1-200).")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Rows to skip.")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


PageParams = Annotated[Page, Depends(page_params)]


def cluster_access(role: Role) -> Callable[..., Coroutine[Any, Any, Scoped[Cluster]]]:
    async def dependency(cluster_id: str, user: CurrentUser, db: DbSession) -> Scoped[Cluster]:
        access = await load_scoped(db, Cluster, cluster_id, user.id, "cluster")
        return access.require(role)

    return dependency


def deployment_access(role: Role) -> Callable[..., Coroutine[Any, Any, Scoped[Deployment]]]:
    async def dependency(
        deployment_id: str, user: CurrentUser, db: DbSession
    ) -> Scoped[Deployment]:
        access = await load_scoped(db, Deployment, deployment_id, user.id, "deployment")
        return access.require(role)

    return dependency


ClusterForViewer = Annotated[Scoped[Cluster], Depends(cluster_access(Role.viewer))]
ClusterForDeveloper = Annotated[Scoped[Cluster], Depends(cluster_access(Role.developer))]
ClusterForAdmin = Annotated[Scoped[Cluster], Depends(cluster_access(Role.admin))]
DeploymentForViewer = Annotated[Scoped[Deployment], Depends(deployment_access(Role.viewer))]
DeploymentForDeveloper = Annotated[Scoped[Deployment], Depends(deployment_access(Role.developer))]
