from fastapi import APIRouter, Response, status

from app.api.deps import ApiKeyForRevocation, DbSession, OrgForApiKeys, PageParams
from app.models.api_key import ApiKey
from app.models.organization import Role
from app.schemas.api_key import ApiKeyIn, ApiKeyOut, NewApiKeyOut
from app.schemas.common import error_responses
from app.services import api_keys as api_key_service

router = APIRouter(tags=["api keys"])


def api_key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        role=key.role,
        prefix=key.prefix,
        created_by=key.created_by,
        service_account_id=key.user_id,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


@router.post(
    "/organizations/{org_id}/api-keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (its secret is shown this once)",
    description="For organization admins. The key authenticates as `Authorization: Bearer <key>` "
    "on every route its role allows, in this organization only.",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "organization_not_found",
        "validation_error",
        "rate_limited",
    ),
)
async def create_api_key(body: ApiKeyIn, access: OrgForApiKeys, db: DbSession) -> NewApiKeyOut:
    key, secret = await api_key_service.create(
        db, access, body.name, Role(body.role), body.expires_at
    )
    return NewApiKeyOut(**api_key_out(key).model_dump(), key=secret)


@router.get(
    "/organizations/{org_id}/api-keys",
    summary="List the organization's API keys (never their secrets)",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "organization_not_found",
        "validation_error",
        "rate_limited",
    ),
)
async def list_api_keys(
    access: OrgForApiKeys, db: DbSession, page: PageParams, response: Response
) -> list[ApiKeyOut]:
    keys, total = await api_key_service.list_for_org(db, access, page)
    response.headers["X-Total-Count"] = str(total)
    return [api_key_out(key) for key in keys]


@router.delete(
    "/api-keys/{api_key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key (at once, in every process)",
    responses=error_responses(
        "not_authenticated", "forbidden", "api_key_not_found", "rate_limited"
    ),
)
async def revoke_api_key(access: ApiKeyForRevocation, db: DbSession) -> None:
    await api_key_service.revoke(db, access)
