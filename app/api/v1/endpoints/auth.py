from fastapi import APIRouter, Response, status

from app.api.deps import (
    CookieSignerDep,
    CurrentPerson,
    CurrentSessionToken,
    CurrentUser,
    DbSession,
    SessionToken,
    SettingsDep,
)
from app.core.config import Settings
from app.core.rate_limit import rate_limit_scope
from app.schemas.auth import (
    LoginIn,
    MeOut,
    MyOrganization,
    PasswordChangeIn,
    RegisterIn,
    UserOut,
)
from app.schemas.common import error_responses
from app.services import auth as auth_service

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account",
    responses=error_responses("username_taken", "email_taken", "validation_error", "rate_limited"),
)
async def register(body: RegisterIn, db: DbSession) -> UserOut:
    user = await auth_service.register(db, body.username, str(body.email), body.password)
    return UserOut.model_validate(user)


@router.post(
    "/login",
    summary="Sign in and receive the session cookie",
    description="Sets the session cookie (`HttpOnly`, `SameSite=Lax`), which authenticates every "
    "other call. In Swagger UI, sign in here first: the browser keeps the cookie and sends it with "
    "the other requests of this page. A session cookie this browser already holds is revoked on "
    "the server when the new one is issued (whoever signs in): signing in again rotates the "
    "session. A failed sign-in revokes nothing.",
    responses=error_responses("invalid_credentials", "validation_error", "rate_limited"),
)
@rate_limit_scope("login")
async def login(
    body: LoginIn,
    db: DbSession,
    settings: SettingsDep,
    signer: CookieSignerDep,
    response: Response,
    previous: SessionToken,
) -> UserOut:
    user, token = await auth_service.login(
        db, body.username, body.password, settings.session_max_age, replacing=previous
    )
    response.set_cookie(
        settings.session_cookie_name,
        signer.sign(token),
        max_age=settings.session_max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    return UserOut.model_validate(user)


def _cookie_cleared(settings: Settings) -> Response:
    """204, with a cookie that expires at once."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        settings.session_cookie_name,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    return response


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the session and clear the cookie",
    responses=error_responses("not_authenticated", "forbidden", "rate_limited"),
)
async def logout(token: CurrentSessionToken, db: DbSession, settings: SettingsDep) -> Response:
    await auth_service.logout(db, token)
    return _cookie_cleared(settings)


@router.delete(
    "/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out everywhere: revoke all your sessions",
    description="Deletes every session of the signed-in user on the server, this one included, and "
    "clears this browser's cookie: every cookie of this account, in any browser, is then 401 "
    "`not_authenticated`.",
    responses=error_responses("not_authenticated", "forbidden", "rate_limited"),
)
async def logout_everywhere(user: CurrentPerson, db: DbSession, settings: SettingsDep) -> Response:
    await auth_service.logout_everywhere(db, user.id)
    return _cookie_cleared(settings)


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change your password; signs out your other sessions",
    description="Needs the current password: a wrong one is 403 `wrong_password` (not 401: this "
    "session is still signed in) and counts against the same per-address limit as sign-ins. "
    "Every other session of the account is revoked; the one that made the change stays signed in.",
    responses=error_responses(
        "not_authenticated", "forbidden", "wrong_password", "validation_error", "rate_limited"
    ),
)
@rate_limit_scope("login")
async def change_password(
    body: PasswordChangeIn, user: CurrentPerson, token: CurrentSessionToken, db: DbSession
) -> Response:
    await auth_service.change_password(db, user.id, token, body.current_password, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/me",
    summary="The signed-in user and their organizations",
    responses=error_responses("not_authenticated", "rate_limited"),
)
async def me(user: CurrentUser) -> MeOut:
    return MeOut(
        id=user.id,
        username=user.username,
        email=user.email,
        created_at=user.created_at,
        organizations=[
            MyOrganization(id=m.id, name=m.name, role=m.role) for m in user.organizations
        ],
    )
