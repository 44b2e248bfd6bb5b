from fastapi import APIRouter

from app.api.deps import CurrentUser
from app.scheduling import list_strategies
from app.schemas.cluster import StrategyOut
from app.schemas.common import error_responses

router = APIRouter(prefix="/scheduling", tags=["scheduling"])


@router.get(
    "/strategies",
    summary="The registered preemption strategies",
    responses=error_responses("not_authenticated", "rate_limited"),
)
async def strategies(_user: CurrentUser) -> list[StrategyOut]:
    return [StrategyOut(name=name, description=text) for name, text in list_strategies()]
