"""A cluster's events: a deployment's event with the deployment it belongs to."""

import uuid

from pydantic import ConfigDict, Field

from app.schemas.deployment import EVENT_EXAMPLE, EventOut


class ClusterEventOut(EventOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **EVENT_EXAMPLE,
                    "deployment_id": "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
                    "deployment_name": "sentiment-batch",
                }
            ]
        }
    )

    deployment_id: uuid.UUID = Field(description="The deployment the event happened to.")
    deployment_name: str = Field(description="Its name (names are not unique).")
