import uuid
from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

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
    "preempting_count": 0,
    "preemption_grace_seconds": 0,
    "created_at": "2026-11-29T12:00:00Z",
}


_CAPACITY = "The cluster's capacity; the body of a cluster answers it as `capacity` too."
_RESOURCES = "The former name of `capacity`, still accepted: give one of the two, not both."


class _CapacityIn(RequestBody):
    """`capacity` in and out; `resources`, its former name on input, is still accepted."""

    capacity: ResourcesIn | None = Field(default=None, description=_CAPACITY)
    resources: ResourcesIn | None = Field(default=None, description=_RESOURCES)

    @model_validator(mode="after")
    def _one_name(self) -> Self:
        if self.capacity is not None and self.resources is not None:
            raise ValueError("give `capacity` or its former name `resources`, not both")
        return self

    @property
    def given_capacity(self) -> ResourcesIn | None:
        return self.capacity if self.capacity is not None else self.resources


GraceSeconds = Annotated[int, Field(ge=0, le=86_400, strict=True)]


class ClusterIn(_CapacityIn):
    name: Name
    preemption_strategy: str = Field(
        default="priority",
        max_length=64,
        description="A name from `GET /api/v1/scheduling/strategies`: `priority` (evict strictly "
        "lower priorities to make room) or `none` (never evict); anything else is 422 "
        "`unknown_strategy`.",
    )
    preemption_grace_seconds: GraceSeconds = Field(
        default=0,
        description="0 (the default): evictions are immediate. Otherwise a victim first becomes "
        "`preempting` for this many seconds (at most 86,400): it keeps its resources, takes no "
        "new predictions and lets running ones finish; then it goes back to the queue and its "
        "preemptor starts.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "gpu-pool-a",
                    "capacity": {"cpu": 64, "ram_gb": 256, "gpu": 8},
                    "preemption_strategy": "priority",
                    "preemption_grace_seconds": 60,
                }
            ]
        }
    )

    @model_validator(mode="after")
    def _capacity_given(self) -> Self:
        if self.given_capacity is None:
            raise ValueError("`capacity` is required")
        return self

    @property
    def required_capacity(self) -> ResourcesIn:
        if self.given_capacity is None:  # cannot happen: `_capacity_given` refused it
            raise ValueError("`capacity` is required")
        return self.given_capacity


class ClusterPatch(_CapacityIn):
    name: Name | None = None
    preemption_strategy: str | None = Field(default=None, max_length=64)
    preemption_grace_seconds: GraceSeconds | None = Field(
        default=None,
        description="Applies to evictions decided from now on; victims already `preempting` "
        "keep their time.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"capacity": {"cpu": 128, "ram_gb": 512, "gpu": 8}},
                {"preemption_grace_seconds": 120},
            ]
        }
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
    preempting_count: int = Field(
        description="Deployments being evicted gracefully; they still hold their resources."
    )
    preemption_grace_seconds: int
    created_at: datetime


class StrategyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "priority", "description": "Evicts lower priorities."}]
        }
    )

    name: str
    description: str
