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
from app.models.user import User
from app.services import auth as auth_service
from app.services.pagination import Page
from app.services.tenancy import Scoped, load_scoped


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in session_scope(request.app.state.sessionmaker):
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbSession = Annotated[AsyncSession, Depends(get_db)]


def get_cookie_signer(request: Request) -> CookieSigner:
    signer: CookieSigner = request.app.state.cookie_signer
    return signer


CookieSignerDep = Annotated[CookieSigner, Depends(get_cookie_signer)]


def session_token(request: Request, settings: SettingsDep, signer: CookieSignerDep) -> str | None:
    """The verified session token from the cookie, or None when absent or tampered with."""
    cookie = request.cookies.get(settings.session_cookie_name)
    return signer.unsign(cookie) if cookie else None


SessionToken = Annotated[str | None, Depends(session_token)]


async def optional_user(request: Request, db: DbSession, token: SessionToken) -> User | None:
    if token is None:
        return None
    user = await auth_service.user_for_session(db, token)
    if user is not None:
        request.state.user_id = user.id  # rate limits key on this
    return user


async def enforce_rate_limit(
    request: Request, _user: Annotated[User | None, Depends(optional_user)]
) -> None:
    """Runs on every API route after the session is resolved, so limits key by user."""
    await request.app.state.rate_limits.check(request)


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise NotAuthenticated()
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def org_access(role: Role) -> Callable[..., Coroutine[Any, Any, Scoped[Organization]]]:
    """Load `{org_id}` through the tenancy helper (outsiders: 404), then require `role` (403)."""

    async def dependency(org_id: str, user: CurrentUser, db: DbSession) -> Scoped[Organization]:
        access = await load_scoped(db, Organization, org_id, user.id, "organization")
        return access.require(role)

    return dependency


OrgForViewer = Annotated[Scoped[Organization], Depends(org_access(Role.viewer))]
OrgForAdmin = Annotated[Scoped[Organization], Depends(org_access(Role.admin))]


def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (1-200).")] = 50,
    offset: Annotated[int, Query(ge=0, description="Rows to skip.")] = 0,
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
