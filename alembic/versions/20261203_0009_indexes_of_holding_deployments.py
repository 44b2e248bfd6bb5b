"""indexes for deployments that hold resources: running and preempting ones, and live runs

`ix_deployments_running` covers `preempting` rows too (every pass loads both); the deadline and
protection indexes hold every row with the column set (it is cleared when a run ends), so the
sweeper's query over running and preempting rows can use them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUNNING_COLUMNS = ["cluster_id", "priority", sa.text("started_at DESC"), sa.text("id DESC")]


def _replace(name: str, columns: list[Any], where: str) -> None:
    op.drop_index(name, table_name="deployments")
    op.create_index(
        name,
        "deployments",
        columns,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    _replace("ix_deployments_running", _RUNNING_COLUMNS, "status IN ('running', 'preempting')")
    _replace("ix_deployments_stops_at", ["stops_at"], "stops_at IS NOT NULL")
    _replace("ix_deployments_protected_until", ["protected_until"], "protected_until IS NOT NULL")


def downgrade() -> None:
    _replace("ix_deployments_running", _RUNNING_COLUMNS, "status = 'running'")
    _replace("ix_deployments_stops_at", ["stops_at"], "status = 'running' AND stops_at IS NOT NULL")
    _replace(
        "ix_deployments_protected_until",
        ["protected_until"],
        "status = 'running' AND protected_until IS NOT NULL",
    )
