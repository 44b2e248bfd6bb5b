import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.schemas.common import Name, RequestBody
from app.schemas.resources import ResourcesIn, ResourcesOut

_CLUSTER_EXAMPLE: dict[str, JsonValue] = {
    "id": "9a1c0f7e-1111-4c3b-8a55-5b6e2d4f7a10",
    "organization_id": "5c1f2f4e-2a7b-4f8e-bb51-0d7f4c5e9a10",
    "name": "gpu-pool-a",
    "capacity": {"cpu": 64, "ram_gb": 256, "gpu": 8},
    "allocated": {"cpu": 8.5, "ram_gb": 32, "gpu": 2},
    "available": {"cpu": 55.5, "ram_gb": 224, "gpu": 6},
    "preemption_strategy": "priority",
    "pending_count": 1,
    "running_count": 3,
    "created_at": "2026-11-29T12:00:00Z",
}


class ClusterIn(RequestBody):
    name: Name
    resources: ResourcesIn
    preemption_strategy: str = Field(default="priority", max_length=64)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "gpu-pool-a",
                    "resources": {"cpu": 64, "ram_gb": 256, "gpu": 8},
                    "preemption_strategy": "priority",
                }
            ]
        }
    )


class ClusterPatch(RequestBody):
    name: Name | None = None
    resources: ResourcesIn | None = None
    preemption_strategy: str | None = Field(default=None, max_length=64)

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"resources": {"cpu": 128, "ram_gb": 512, "gpu": 8}}]}
    )


class ClusterOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_CLUSTER_EXAMPLE]})

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    capacity: ResourcesOut
    allocated: ResourcesOut
    available: ResourcesOut
    preemption_strategy: str
    pending_count: int
    running_count: int
    created_at: datetime


class StrategyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "priority", "description": "Evicts lower priorities."}]
        }
    )

    name: str
    description: str
