"""deployment events indexed by deployment, time and id (replaces the index on deployment alone)

`GET /api/v1/clusters/{cluster_id}/events?since=` reads a cluster's events as one index range per
deployment of the cluster. With `at` in the index, `since` is an index condition: a poll that asks
for what is new reads the heap only for new events, where an index on `deployment_id` alone made it
fetch every event of the cluster (or scan the whole table) to test `at`. The deployment's own events
route (ordered by `at`, `id`) reads its range in order, without a sort. It replaces the index on
`deployment_id` alone (a prefix of it, so the foreign key's cascade and every lookup by deployment
still use it): one index per event written, as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deployment_events_listing", "deployment_events", ["deployment_id", "at", "id"]
    )
    op.drop_index("ix_deployment_events_deployment_id", table_name="deployment_events")


def downgrade() -> None:
    op.create_index("ix_deployment_events_deployment_id", "deployment_events", ["deployment_id"])
    op.drop_index("ix_deployment_events_listing", table_name="deployment_events")
