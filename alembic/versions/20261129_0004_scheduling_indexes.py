"""scheduling indexes: running deployments in reprieve order, deployments waiting for dependencies

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNNING = "status = 'running'"
WAITING = "status = 'pending' AND unmet_dependencies > 0"


def _running_index(columns: list[str | sa.TextClause]) -> None:
    op.create_index(
        "ix_deployments_running",
        "deployments",
        columns,
        unique=False,
        postgresql_where=sa.text(RUNNING),
        sqlite_where=sa.text(RUNNING),
    )


def _drop_running_index() -> None:
    op.drop_index(
        "ix_deployments_running",
        table_name="deployments",
        postgresql_where=sa.text(RUNNING),
        sqlite_where=sa.text(RUNNING),
    )


def upgrade() -> None:
    _drop_running_index()
    _running_index(["cluster_id", "priority", sa.text("started_at DESC"), sa.text("id DESC")])
    op.create_index(
        "ix_deployments_waiting",
        "deployments",
        ["cluster_id"],
        unique=False,
        postgresql_where=sa.text(WAITING),
        sqlite_where=sa.text(WAITING),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_deployments_waiting",
        table_name="deployments",
        postgresql_where=sa.text(WAITING),
        sqlite_where=sa.text(WAITING),
    )
    _drop_running_index()
    _running_index(["cluster_id", "priority"])
