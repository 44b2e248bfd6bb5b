from fastapi import APIRouter, Depends

from app.api.deps import enforce_rate_limit
from app.api.v1.endpoints import auth, organizations

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(enforce_rate_limit)])
api_router.include_router(auth.router)
api_router.include_router(organizations.router)
