from fastapi import APIRouter, Depends

from app.api.deps import enforce_rate_limit
from app.api.v1.endpoints import (
    api_keys,
    audit,
    auth,
    clusters,
    deployments,
    models,
    organizations,
    predictions,
    scheduling,
    webhooks,
)

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(enforce_rate_limit)])
for endpoints in (
    auth,
    organizations,
    api_keys,
    audit,
    clusters,
    deployments,
    predictions,
    models,
    scheduling,
    webhooks,
):
    api_router.include_router(endpoints.router)
