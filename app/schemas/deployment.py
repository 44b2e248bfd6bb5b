import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.models.deployment import DeploymentStatus, PreemptionPolicy
from app.schemas.common import Name, RequestBody
from app.schemas.resources import ResourcesIn, ResourcesOut

_DEPLOYMENT_EXAMPLE: dict[str, JsonValue] = {
    "id": "3f2b8c1d-2222-4e6f-9a10-7b8c9d0e1f20",
    "organization_id": "5c1f2f4e-2a7b-4f8e-bb51-0d7f4c5e9a10",
    "cluster_id": "9a1c0f7e-1111-4c3b-8a55-5b6e2d4f7a10",
    "name": "sentiment-v2",
    "model": "distilbert-sst2",
    "resources": {"cpu": 2, "ram_gb": 4, "gpu": 0},
    "priority": 10,
    "preemption_policy": "preempt_lower_priority",
    "depends_on": [],
    "status": "running",
    "status_reason": None,
    "queue_position": None,
    "preemption_count": 0,
    "created_by": "0b8f9a3e-6f1d-4b8e-9a53-2f0c8f4b1c2d",
    "created_at": "2026-11-29T12:00:00Z",
    "started_at": "2026-11-29T12:00:00Z",
    "finished_at": None,
}


class DeploymentIn(RequestBody):
    name: Name
    model: str = Field(default="mock", max_length=64)
    resources: ResourcesIn
    priority: Annotated[int, Field(ge=0, le=1000, strict=True)] = 0
    preemption_policy: PreemptionPolicy = PreemptionPolicy.preempt_lower_priority
    depends_on: list[str] = Field(default_factory=list, max_length=32)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "sentiment-v2",
                    "model": "distilbert-sst2",
                    "resources": {"cpu": 2, "ram_gb": 4, "gpu": 0},
                    "priority": 10,
                    "preemption_policy": "preempt_lower_priority",
                    "depends_on": [],
                }
            ]
        }
    )


class DeploymentOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_DEPLOYMENT_EXAMPLE]})

    id: uuid.UUID
    organization_id: uuid.UUID
    cluster_id: uuid.UUID
    name: str
    model: str
    resources: ResourcesOut
    priority: int
    preemption_policy: PreemptionPolicy
    depends_on: list[uuid.UUID]
    status: DeploymentStatus
    status_reason: str | None
    queue_position: int | None
    preemption_count: int
    created_by: uuid.UUID
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class EventOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "at": "2026-11-29T12:00:00Z",
                    "type": "preempted",
                    "detail": {"preempted_by": "3f2b8c1d-2222-4e6f-9a10-7b8c9d0e1f20"},
                }
            ]
        }
    )

    at: datetime
    type: str
    detail: dict[str, Any]
