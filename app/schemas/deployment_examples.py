"""Examples of deployments for the OpenAPI document: running, pending (with why and until when)
and preempting."""

from pydantic import JsonValue

RUNNING_EXAMPLE: dict[str, JsonValue] = {
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
    "min_runtime_seconds": 600,
    "max_runtime_seconds": 7200,
    "protected_until": "2026-11-29T12:10:00Z",
    "stops_at": "2026-11-29T14:00:00Z",
    "evict_at": None,
    "preempted_by": None,
    "pending": None,
    "estimated_start_at": None,
    "callback_url": "https://hooks.example.com/predictions",
}
PENDING_EXAMPLE: dict[str, JsonValue] = RUNNING_EXAMPLE | {
    "name": "batch-high",
    "priority": 50,
    "status": "pending",
    "status_reason": "insufficient_resources",
    "queue_position": 1,
    "started_at": None,
    "serving": None,
    "min_runtime_seconds": None,
    "max_runtime_seconds": None,
    "protected_until": None,
    "stops_at": None,
    "pending": {
        "reason": "waiting_for_preemption",
        "message": "Needs 1 CPU more than is free; nothing is ahead of it in the queue; it is "
        "preempting lower-priority deployments gracefully and starts when they have left, at "
        "2026-11-29T12:01:00Z.",
        "missing": {"cpu": 1.0, "ram_gb": 0.0, "gpu": 0},
        "ahead": 0,
        "ahead_ids": [],
        "unmet_dependencies": [],
        "fits_if_lower_priority_evicted": False,
        "preemption_can_help": False,
        "protection_ends_at": None,
        "victims_leave_at": "2026-11-29T12:01:00Z",
    },
    "estimated_start_at": "2026-11-29T12:01:00Z",
}
PREEMPTING_EXAMPLE: dict[str, JsonValue] = RUNNING_EXAMPLE | {
    "status": "preempting",
    "protected_until": None,
    "serving": None,
    "evict_at": "2026-11-29T12:01:00Z",
    "preempted_by": "7d1e2f3a-4444-4b5c-8d6e-9f0a1b2c3d4e",
}
