"""A cluster's events: a deployment's event with the deployment it belongs to."""

import uuid

from pydantic import ConfigDict, Field

from app.schemas.deployment import EventOut


class ClusterEventOut(EventOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "at": "2026-11-29T12:00:00Z",
                    "type": "preempted",
                    "detail": {"preempted_by": "3f2b8c1d-2222-4e6f-9a10-7b8c9d0e1f20"},
                    "deployment_id": "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
                    "deployment_name": "sentiment-batch",
                }
            ]
        }
    )

    deployment_id: uuid.UUID = Field(description="The deployment the event happened to.")
    deployment_name: str = Field(description="Its name (names are not unique).")
