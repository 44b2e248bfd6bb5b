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
    "name": "echo",
    "model": "mock",
    "resources": {"cpu": 1, "ram_gb": 2, "gpu": 0},
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
    "serving": {"ready": True, "reason": None, "since": "2026-11-29T12:00:02Z"},
}


# "Not all zero", for JSON Schema readers: at least one quantity above zero.
_SOME_RESOURCE: list[JsonValue] = [
    {"properties": {name: {"exclusiveMinimum": 0}}, "required": [name]}
    for name in ("cpu", "ram_gb", "gpu")
]


class DeploymentIn(RequestBody):
    name: Name = Field(description="1-100 characters; not unique.")
    model: str = Field(
        default="mock",
        max_length=64,
        description="A name from `GET /api/v1/models` (`mock`, `distilbert-sst2`, `gemma3:1b`); "
        "anything else is 422 `unknown_model`. Whether the model can serve right now never "
        "affects creation or scheduling.",
    )
    resources: ResourcesIn = Field(
        description="What it holds while running. Not all zero (422 `validation_error`): at least "
        "one of `cpu`, `ram_gb` and `gpu` above 0. Larger than the cluster's capacity in any "
        "dimension is 422 `exceeds_cluster_capacity` (it could never run).",
        json_schema_extra={"anyOf": _SOME_RESOURCE},
    )
    priority: Annotated[
        int,
        Field(
            ge=0,
            le=1000,
            strict=True,
            description="0-1000, a JSON integer; **higher wins**. The queue runs high first (then "
            "first come, first served), and a deployment may evict running ones of strictly lower "
            "priority to make room. Equal priorities never evict each other; 0 can never evict.",
        ),
    ] = 0
    preemption_policy: PreemptionPolicy = Field(
        default=PreemptionPolicy.preempt_lower_priority,
        description="`preempt_lower_priority` (the default): when it does not fit, it may evict "
        "running deployments of strictly lower priority, if the cluster's strategy allows. "
        "`never`: it waits in the queue like any other but never evicts anyone (as in "
        "Kubernetes); it can itself be evicted.",
    )
    depends_on: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Ids of deployments of the same organization (any cluster) that must all be "
        "`completed` before this one runs. An id that is not a UUID, does not exist or belongs "
        "elsewhere is 422 `unknown_dependency`; one already failed or cancelled makes this one "
        "`failed` / `dependency_failed` at once.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "echo",
                    "model": "mock",
                    "resources": {"cpu": 1, "ram_gb": 2, "gpu": 0},
                    "priority": 10,
                    "preemption_policy": "preempt_lower_priority",
                    "depends_on": [],
                }
            ]
        }
    )


class ServingOut(BaseModel):
    """Whether the workers can serve a running deployment's model, as their latest check found."""

    ready: bool | None = Field(
        description="true: it answers; false: predictions fail at once with `reason`; "
        "null: no worker has checked since it started."
    )
    reason: str | None = Field(description="What to do when it cannot serve.")
    since: datetime | None = Field(description="When the workers came to this verdict.")


class DeploymentOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_DEPLOYMENT_EXAMPLE]})

    id: uuid.UUID
    organization_id: uuid.UUID
    cluster_id: uuid.UUID
    name: str
    model: str
    resources: ResourcesOut
    priority: int = Field(description="0-1000; higher wins.")
    preemption_policy: PreemptionPolicy = Field(
        description="`never`: never evicts anyone (it can itself be evicted)."
    )
    depends_on: list[uuid.UUID] = Field(description="In the order first given, no duplicates.")
    status: DeploymentStatus
    status_reason: str | None = Field(
        description="Why it is `pending` (`waiting_for_dependencies`, `preempted`, "
        "`insufficient_resources`) or `failed` (`dependency_failed`, `exceeds_cluster_capacity`); "
        "null otherwise."
    )
    queue_position: int | None = Field(
        description="1-based rank among its cluster's pending deployments whose dependencies are "
        "met, in the order the scheduler considers them; null for any other."
    )
    preemption_count: int = Field(description="How many times it was evicted.")
    created_by: uuid.UUID = Field(description="The creator's user id.")
    created_at: datetime
    started_at: datetime | None = Field(description="Start of the current or last run.")
    finished_at: datetime | None = Field(
        description="When it became `completed`, `cancelled` or `failed`."
    )
    serving: ServingOut | None = Field(
        default=None, description="Only while running: can its model answer?"
    )


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
