import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.config import JsonDict

from app.models.deployment import DeploymentStatus, PreemptionPolicy
from app.scheduling.explain import PendingReason
from app.schemas.common import Name, RequestBody, Text, is_unset
from app.schemas.deployment_examples import PENDING_EXAMPLE, PREEMPTING_EXAMPLE, RUNNING_EXAMPLE
from app.schemas.resources import ResourcesIn, ResourcesOut

# "Not all zero", for JSON Schema readers: at least one quantity above zero.
_SOME_RESOURCE: list[JsonValue] = [
    {"properties": {name: {"exclusiveMinimum": 0}}, "required": [name]}
    for name in ("cpu", "ram_gb", "gpu")
]


RuntimeSeconds = Annotated[int, Field(ge=1, le=31_536_000, strict=True)]


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
    min_runtime_seconds: RuntimeSeconds | None = Field(
        default=None,
        description="Protection from eviction: once started, no preemptor may evict it until "
        "it has run this long (each run; 1 to 31,536,000 seconds). A preemptor that needs it "
        "waits, and its pending explanation says until when. Null: evictable at once.",
    )
    max_runtime_seconds: RuntimeSeconds | None = Field(
        default=None,
        description="Each run lasts at most this long (1 to 31,536,000 seconds): then it is "
        'completed automatically (`status_reason: "max_runtime_reached"`, a `completed` '
        "event saying so). It also lets the scheduler estimate when deployments queued behind "
        "it start. Null: no limit.",
    )
    depends_on: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Ids of deployments of the same organization (any cluster) that must all be "
        "`completed` before this one runs. An id that is not a UUID, does not exist or belongs "
        "elsewhere is 422 `unknown_dependency`; one already failed or cancelled makes this one "
        "`failed` / `dependency_failed` at once.",
    )
    callback_url: Annotated[Text, Field(max_length=2048)] | None = Field(
        default=None,
        description="Where the results of its predictions are POSTed, signed (Standard "
        "Webhooks), when a prediction names no `callback_url` of its own. http or https to a "
        "public address (or one WEBHOOK_ALLOWED_HOSTS / WEBHOOK_ALLOWED_NETWORKS allow), else "
        "422 `callback_url_refused`.",
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
                },
                {
                    "name": "nightly-batch",
                    "model": "mock",
                    "resources": {"cpu": 8, "ram_gb": 16, "gpu": 1},
                    "priority": 5,
                    "min_runtime_seconds": 600,
                    "max_runtime_seconds": 7200,
                    "callback_url": "https://hooks.example.com/predictions",
                },
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


class PendingOut(BaseModel):
    """Why a pending deployment waits, as the scheduler's own arithmetic found it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reason": "waiting_for_protection",
                    "message": "Needs 2 CPU and 1 GPU more than is free; 1 deployment is ahead "
                    "of it in the queue; the lower-priority deployments it could evict are "
                    "protected by their minimum runtime: it can preempt once that protection "
                    "ends at 2026-11-29T12:10:00Z.",
                    "missing": {"cpu": 2.0, "ram_gb": 0.0, "gpu": 1},
                    "ahead": 1,
                    "ahead_ids": ["7d1e2f3a-4444-4b5c-8d6e-9f0a1b2c3d4e"],
                    "unmet_dependencies": [],
                    "fits_if_lower_priority_evicted": False,
                    "preemption_can_help": False,
                    "protection_ends_at": "2026-11-29T12:10:00Z",
                }
            ]
        }
    )

    reason: PendingReason = Field(
        description="`waiting_for_dependencies`, `insufficient_resources` (evicting every "
        "lower-priority deployment would not make room: preemption cannot help), "
        "`preemption_not_allowed` (evictions would make room, but its `preemption_policy` or "
        "the cluster's strategy forbids them), `waiting_for_protection` (the deployments it "
        "could evict are protected by their `min_runtime_seconds`), `waiting_for_preemption` "
        "(it is evicting deployments gracefully and starts when they leave), `fits` (it fits "
        "and starts at the cluster's next pass; rarely seen)."
    )
    message: str = Field(description="The same as a sentence.")
    missing: ResourcesOut = Field(
        description="What must be freed for it to fit: its request minus what is free, per "
        "resource (0 where enough is free)."
    )
    ahead: int = Field(description="Deployments ahead of it in the queue (its position - 1).")
    ahead_ids: list[uuid.UUID] = Field(
        description="The first of them in the order the scheduler considers them (at most 10)."
    )
    unmet_dependencies: list[uuid.UUID] = Field(
        description="Dependencies not yet completed, in the order first given."
    )
    fits_if_lower_priority_evicted: bool = Field(
        description="Evicting every evictable running deployment of strictly lower priority "
        "would make room (protected ones do not count)."
    )
    preemption_can_help: bool = Field(
        description="That, and it may evict under its policy and the cluster's strategy."
    )
    protection_ends_at: datetime | None = Field(
        description="With `waiting_for_protection`: when enough protection has ended for its "
        "evictions to make room."
    )
    victims_leave_at: datetime | None = Field(
        default=None,
        description="With `waiting_for_preemption`: when the last deployment it is evicting "
        "gracefully leaves (then it starts).",
    )


class DeploymentOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [RUNNING_EXAMPLE, PENDING_EXAMPLE, PREEMPTING_EXAMPLE]}
    )

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
    min_runtime_seconds: int | None = Field(
        default=None, description="Protection from eviction at each start; null: none."
    )
    max_runtime_seconds: int | None = Field(
        default=None, description="Longest run before it is completed; null: no limit."
    )
    protected_until: datetime | None = Field(
        default=None,
        description="While running and protected: no preemptor may evict it before this time.",
    )
    stops_at: datetime | None = Field(
        default=None,
        description="While running with `max_runtime_seconds`: when this run is completed.",
    )
    evict_at: datetime | None = Field(
        default=None,
        description="Only while `preempting`: when it leaves (back to the queue, resources freed).",
    )
    preempted_by: uuid.UUID | None = Field(
        default=None, description="Only while `preempting`: the deployment it makes room for."
    )
    pending: PendingOut | None = Field(
        default=None, description="Only while pending: why it waits."
    )
    estimated_start_at: datetime | None = Field(
        default=None,
        description="Only while pending, an **estimate**: when it would start if nothing "
        "else happened (running deployments end at their `stops_at`, protections at their "
        "`protected_until`, nothing arrives or ends early). Null when something ahead of it has "
        "no deadline, while it waits for dependencies, or past the simulation's horizon.",
    )
    # Only on deployments created with one: a caller that uses none gets the body it always had.
    callback_url: str | None = Field(
        default=None,
        exclude_if=is_unset,
        description="Where its predictions' results are POSTed when they name no `callback_url` "
        "of their own (absent when it has none).",
    )


EVENT_EXAMPLE: JsonDict = {
    "at": "2026-11-29T12:00:00Z",
    "type": "preempted",
    "detail": {"preempted_by": "3f2b8c1d-2222-4e6f-9a10-7b8c9d0e1f20"},
}


class EventOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EVENT_EXAMPLE]})

    at: datetime
    type: str
    detail: dict[str, Any]


class VictimOut(BaseModel):
    id: uuid.UUID
    name: str
    priority: int
    preempted_by: uuid.UUID = Field(
        description="The deployment whose start evicts it: the one submitted, or, in a chain, "
        "one that its evictions let start."
    )


class DryRunOut(BaseModel):
    """What creating the deployment would do now; nothing was written."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dry_run": True,
                    "would_start": True,
                    "status": "running",
                    "status_reason": None,
                    "queue_position": None,
                    "evicts": [
                        {
                            "id": "7d1e2f3a-4444-4b5c-8d6e-9f0a1b2c3d4e",
                            "name": "batch-low",
                            "priority": 1,
                            "preempted_by": "00000000-0000-0000-0000-000000000000",
                        }
                    ],
                    "pending": None,
                    "estimated_start_at": None,
                }
            ]
        }
    )

    dry_run: bool = Field(default=True, description="Always true: nothing was written.")
    would_start: bool = Field(description="It would be `running` right after its creation.")
    status: DeploymentStatus = Field(
        description="Its status right after creation: `running`, `pending` or `failed`."
    )
    status_reason: str | None = Field(description="As `status_reason` of a deployment.")
    queue_position: int | None = Field(
        description="The position it would take in its cluster's queue (pending, dependencies "
        "met); null otherwise."
    )
    evicts: list[VictimOut] = Field(
        description="The running deployments its creation would evict, in eviction order. The "
        "submitted deployment has no id yet: `preempted_by` is the nil UUID for it."
    )
    pending: PendingOut | None = Field(description="Why it would wait; null if it would start.")
    estimated_start_at: datetime | None = Field(
        description="As on a pending deployment: an estimate, null when none can be made."
    )
