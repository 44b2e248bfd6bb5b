from fastapi import APIRouter, Response, status

from app.api.deps import CookieSignerDep, CurrentUser, DbSession, SessionToken, SettingsDep
from app.core.rate_limit import rate_limit_scope
from app.schemas.auth import LoginIn, MeOut, MyOrganization, RegisterIn, UserOut
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
    "the other requests of this page.",
    responses=error_responses("invalid_credentials", "validation_error", "rate_limited"),
)
@rate_limit_scope("login")
async def login(
    body: LoginIn,
    db: DbSession,
    settings: SettingsDep,
    signer: CookieSignerDep,
    response: Response,
) -> UserOut:
    user, token = await auth_service.login(
        db, body.username, body.password, settings.session_max_age
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


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the session and clear the cookie",
    responses=error_responses("not_authenticated", "rate_limited"),
)
async def logout(
    _user: CurrentUser, token: SessionToken, db: DbSession, settings: SettingsDep
) -> Response:
    if token is not None:
        await auth_service.logout(db, token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        settings.session_cookie_name,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    return response


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
