from fastapi import APIRouter

from app.api.deps import CurrentUser, SettingsDep
from app.schemas.common import error_responses
from app.schemas.prediction import ModelOut
from app.services import models as model_service

router = APIRouter(tags=["models"])


@router.get(
    "/models",
    summary="The models deployments can use, and whether each can serve now",
    responses=error_responses("not_authenticated", "rate_limited"),
)
async def list_models(_user: CurrentUser, settings: SettingsDep) -> list[ModelOut]:
    return [
        ModelOut(
            name=m.name,
            runtime=m.runtime,
            task=m.task,
            description=m.description,
            available=m.available,
            detail=m.detail,
        )
        for m in await model_service.catalog(settings)
    ]
