"""runtime limits of deployments: minimum (protection from eviction) and maximum (deadline)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STOPPING = sa.text("status = 'running' AND stops_at IS NOT NULL")
_PROTECTED = sa.text("status = 'running' AND protected_until IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("min_runtime_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_runtime_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("protected_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("stops_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint(
            op.f("ck_deployments_runtime_limits"),
            "(min_runtime_seconds IS NULL OR min_runtime_seconds > 0) AND "
            "(max_runtime_seconds IS NULL OR max_runtime_seconds > 0)",
        )
    op.create_index(
        "ix_deployments_stops_at",
        "deployments",
        ["stops_at"],
        postgresql_where=_STOPPING,
        sqlite_where=_STOPPING,
    )
    op.create_index(
        "ix_deployments_protected_until",
        "deployments",
        ["protected_until"],
        postgresql_where=_PROTECTED,
        sqlite_where=_PROTECTED,
    )


def downgrade() -> None:
    op.drop_index("ix_deployments_protected_until", table_name="deployments")
    op.drop_index("ix_deployments_stops_at", table_name="deployments")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_constraint(op.f("ck_deployments_runtime_limits"), type_="check")
        batch.drop_column("stops_at")
        batch.drop_column("protected_until")
        batch.drop_column("max_runtime_seconds")
        batch.drop_column("min_runtime_seconds")
