"""Dependencies: who the caller is, what they may touch. Endpoints read like their signature."""

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.errors import Forbidden, NotAuthenticated
from app.core.security import API_KEY_PREFIX, CookieSigner
from app.db.session import session_scope
from app.models.api_key import ApiKey
from app.models.cluster import Cluster
from app.models.deployment import Deployment
from app.models.organization import Organization
from app.models.prediction import Prediction
from app.services import api_keys, audit, permissions
from app.services import auth as auth_service
from app.services.auth import Principal
from app.services.pagination import Page
from app.services.permissions import Action
from app.services.tenancy import Scoped, load_scoped, parse_id

T = TypeVar("T")


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


def _bearer_key(request: Request) -> str | None:
    """The API key of `Authorization: Bearer mlops_...`, if the request carries one. A bearer
    token of another kind (a proxy's or a gateway's in front of the service) is not ours: the
    session cookie still counts then."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    key = credentials.strip()
    return key if scheme.lower() == "bearer" and key.startswith(API_KEY_PREFIX) else None


async def optional_user(request: Request) -> Principal | None:
    """Resolved once per request (before the endpoint's own dependencies), on a connection of its
    own that goes back to the pool at once: endpoints that need only the user, like /me, open no
    ORM session at all. An `Authorization: Bearer` API key is the caller when present (no cookie
    is looked at then); otherwise the session cookie is."""
    key = _bearer_key(request)
    token = None if key is not None else _verified_token(request)
    user = None
    if key is not None or token is not None:
        async with request.app.state.lookup_engine.connect() as conn:
            if key is not None:
                user = await api_keys.principal_for_key(conn, key)
            elif token is not None:
                user = await auth_service.principal_for_session(conn, token)
    if user is not None:
        request.state.user_id = user.id  # rate limits key on this: a key's service account
    audit.act_as(None if user is None else _actor(user))
    return user


def _actor(user: Principal) -> audit.Actor:
    if user.api_key is not None:
        return audit.Actor("api_key", user.api_key.id, user.api_key.name)
    return audit.Actor("user", user.id, user.username)


async def enforce_rate_limit(
    request: Request, _user: Annotated[Principal | None, Depends(optional_user)]
) -> None:
    """Runs on every API route after the session is resolved, so limits key by user."""
    await request.app.state.rate_limits.check(request)


async def current_user(
    request: Request, user: Annotated[Principal | None, Depends(optional_user)]
) -> Principal:
    if user is None:
        raise await not_authenticated(request)
    return user


async def not_authenticated(request: Request) -> NotAuthenticated:
    """Why there is no user, in words: an API key unknown, revoked or expired (and when); no
    cookie; a cookie whose session expired (and when); or one tampered with, logged out or
    unknown. Only a request about to be refused gets here, so the
    second query costs nothing to signed-in requests."""
    state = request.app.state
    key = _bearer_key(request)
    if key is not None:
        async with state.lookup_engine.connect() as conn:
            return NotAuthenticated(message=await api_keys.why_refused(conn, key))
    cookie = request.cookies.get(state.settings.session_cookie_name)
    if not cookie:
        return NotAuthenticated()
    token = _verified_token(request)
    if token is None:
        return NotAuthenticated.session_invalid()
    async with state.lookup_engine.connect() as conn:
        expired_at = await auth_service.session_expired_at(conn, token)
    if expired_at is None:
        return NotAuthenticated.session_invalid()
    return NotAuthenticated.session_expired(expired_at)


CurrentUser = Annotated[Principal, Depends(current_user)]
OptionalUser = Annotated[Principal | None, Depends(optional_user)]


def presents_credentials(request: Request) -> bool:
    """An API key or a session cookie, valid or not: a caller who sent one means to be them."""
    cookie_name = request.app.state.settings.session_cookie_name
    return _bearer_key(request) is not None or bool(request.cookies.get(cookie_name))


async def current_person(user: CurrentUser) -> Principal:
    """A signed-in person: what a session, a password or membership of several organizations
    belongs to. An API key acts inside its organization only, so it is refused here (403)."""
    if user.api_key is not None:
        raise Forbidden(message="API keys cannot use this route; sign in as a person.")
    return user


CurrentPerson = Annotated[Principal, Depends(current_person)]


async def current_session_token(request: Request, _user: CurrentPerson) -> str:
    """The token of the session that signed the caller in (for what must spare that session)."""
    token = _verified_token(request)
    if token is None:  # a signed-in caller came with a verified token: kept for the type
        raise NotAuthenticated.session_invalid()
    return token


CurrentSessionToken = Annotated[str, Depends(current_session_token)]


async def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (1-200).")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Rows to skip.")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


PageParams = Annotated[Page, Depends(page_params)]


# Access: the one place roles are checked. Each dependency loads its path's row through
# `load_scoped` (outsiders: 404), then applies `app/services/permissions.py` (403). Services trust
# what they are given. Every such dependency carries the action it enforces (`declared_action`), so
# the route table says which action each route needs (tests/api/test_access.py reads it).
_ACTION = "action"
Access = Callable[..., Coroutine[Any, Any, Scoped[T]]]


def _enforcing(action: Action, dependency: Access[T]) -> Access[T]:
    setattr(dependency, _ACTION, action)
    return dependency


def declared_action(call: object) -> Action | None:
    """The action an access dependency below enforces; None for any other callable."""
    action = getattr(call, _ACTION, None)
    return action if isinstance(action, Action) else None


def _access(
    model: type[T],
    resource: str,
    action: Action,
    check: Callable[[Scoped[T]], Scoped[T]] | None = None,
    *,
    share: bool = False,
) -> Access[T]:
    """Load the row named by the path's `<resource>_id` (`org_id` for organizations) through the
    tenancy helper (FOR SHARE with `share`), then apply `check`, by default the role `action`
    needs."""
    parameter = "org_id" if resource == "organization" else f"{resource}_id"

    async def dependency(
        raw_id: Annotated[str, Path(alias=parameter)], user: CurrentUser, db: DbSession
    ) -> Scoped[T]:
        access = await load_scoped(
            db, model, raw_id, user.id, resource, share=share, key=user.api_key
        )
        return check(access) if check else permissions.require(access, action)

    return _enforcing(action, dependency)


def org_access(action: Action) -> Access[Organization]:
    return _access(Organization, "organization", action)


def cluster_access(action: Action) -> Access[Cluster]:
    return _access(Cluster, "cluster", action)


def deployment_access(action: Action) -> Access[Deployment]:
    return _access(Deployment, "deployment", action)


def prediction_access(action: Action) -> Access[Prediction]:
    return _access(Prediction, "prediction", action)


async def _org_for_member_removal(
    org_id: str, user_id: str, user: CurrentUser, db: DbSession
) -> Scoped[Organization]:
    access = await load_scoped(db, Organization, org_id, user.id, "organization", key=user.api_key)
    return permissions.require_may_remove_member(access, parse_id(user_id))


OrgForReading = Annotated[Scoped[Organization], Depends(org_access(Action.read_organization))]
OrgForMemberList = Annotated[Scoped[Organization], Depends(org_access(Action.read_members))]
OrgForClusterList = Annotated[Scoped[Organization], Depends(org_access(Action.read_clusters))]
OrgForDeploymentList = Annotated[Scoped[Organization], Depends(org_access(Action.read_deployments))]
OrgForNewCluster = Annotated[Scoped[Organization], Depends(org_access(Action.create_cluster))]
OrgForInviteRotation = Annotated[
    Scoped[Organization], Depends(org_access(Action.rotate_invite_code))
]
OrgForRoleChange = Annotated[Scoped[Organization], Depends(org_access(Action.change_role))]
# Removing someone else needs `remove_member`; leaving (your own user id) needs no role.
OrgForMemberRemoval = Annotated[
    Scoped[Organization],
    Depends(_enforcing(Action.remove_member, _org_for_member_removal)),
]
OrgForDeletion = Annotated[Scoped[Organization], Depends(org_access(Action.delete_organization))]

ClusterForReading = Annotated[Scoped[Cluster], Depends(cluster_access(Action.read_clusters))]
ClusterForDeploymentList = Annotated[
    Scoped[Cluster], Depends(cluster_access(Action.read_deployments))
]
ClusterForEvents = Annotated[Scoped[Cluster], Depends(cluster_access(Action.read_events))]
ClusterForNewDeployment = Annotated[
    Scoped[Cluster], Depends(cluster_access(Action.create_deployment))
]
ClusterForUpdate = Annotated[Scoped[Cluster], Depends(cluster_access(Action.update_cluster))]
ClusterForDeletion = Annotated[Scoped[Cluster], Depends(cluster_access(Action.delete_cluster))]

DeploymentForReading = Annotated[
    Scoped[Deployment], Depends(deployment_access(Action.read_deployments))
]
DeploymentForEvents = Annotated[Scoped[Deployment], Depends(deployment_access(Action.read_events))]
# FOR SHARE: a complete or cancel (which updates the deployment) waits for the prediction's insert
# to commit, then fails it with the others; or it went first and the status read says so.
DeploymentForPrediction = Annotated[
    Scoped[Deployment],
    Depends(_access(Deployment, "deployment", Action.run_prediction, share=True)),
]
DeploymentForPredictionList = Annotated[
    Scoped[Deployment], Depends(deployment_access(Action.read_predictions))
]
# Ending (complete, cancel) your own deployment needs `end_own_deployment`, anyone's
# `end_any_deployment` (`permissions.require_may_end`).
DeploymentForEnding = Annotated[
    Scoped[Deployment],
    Depends(
        _access(Deployment, "deployment", Action.end_own_deployment, permissions.require_may_end)
    ),
]

PredictionForReading = Annotated[
    Scoped[Prediction], Depends(prediction_access(Action.read_predictions))
]
# Cancelling your own prediction needs `cancel_own_prediction`, anyone's `cancel_any_prediction`.
PredictionForCancel = Annotated[
    Scoped[Prediction],
    Depends(
        _access(
            Prediction, "prediction", Action.cancel_own_prediction, permissions.require_may_cancel
        )
    ),
]

OrgForApiKeys = Annotated[Scoped[Organization], Depends(org_access(Action.manage_api_keys))]
ApiKeyForRevocation = Annotated[
    Scoped[ApiKey], Depends(_access(ApiKey, "api_key", Action.manage_api_keys))
]
OrgForAudit = Annotated[Scoped[Organization], Depends(org_access(Action.read_audit))]
OrgForWebhookSecret = Annotated[Scoped[Organization], Depends(org_access(Action.manage_webhooks))]
