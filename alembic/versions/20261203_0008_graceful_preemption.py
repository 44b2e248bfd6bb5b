"""graceful preemption: the `preempting` status, its deadline and preemptor, the clusters' grace

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("pending", "running", "completed", "failed", "cancelled")
_AFTER = ("pending", "running", "preempting", "completed", "failed", "cancelled")
_PREEMPTING = sa.text("status = 'preempting'")


def _status_check(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def _swap_status_check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_constraint(op.f("ck_deployments_deploymentstatus"), type_="check")
        batch.create_check_constraint(
            op.f("ck_deployments_deploymentstatus"), _status_check(values)
        )


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("evict_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("preempted_by", sa.Uuid(), nullable=True))
    _swap_status_check(_AFTER)
    op.create_index(
        "ix_deployments_evict_at",
        "deployments",
        ["evict_at"],
        postgresql_where=_PREEMPTING,
        sqlite_where=_PREEMPTING,
    )
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(
            sa.Column("preempting_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("preemption_grace_seconds", sa.Integer(), nullable=False, server_default="0")
        )
        batch.create_check_constraint(op.f("ck_clusters_preempting_count"), "preempting_count >= 0")
        batch.create_check_constraint(
            op.f("ck_clusters_preemption_grace_seconds"),
            "preemption_grace_seconds >= 0 AND preemption_grace_seconds <= 86400",
        )
    with op.batch_alter_table("clusters") as batch:
        batch.alter_column("preempting_count", server_default=None)
        batch.alter_column("preemption_grace_seconds", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.drop_constraint(op.f("ck_clusters_preemption_grace_seconds"), type_="check")
        batch.drop_constraint(op.f("ck_clusters_preempting_count"), type_="check")
        batch.drop_column("preemption_grace_seconds")
        batch.drop_column("preempting_count")
    op.drop_index("ix_deployments_evict_at", table_name="deployments")
    _swap_status_check(_BEFORE)
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("preempted_by")
        batch.drop_column("evict_at")
