"""clusters and deployments

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clusters",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("preemption_strategy", sa.String(length=32), nullable=False),
        sa.Column("capacity_cpu_millis", sa.BigInteger(), nullable=False),
        sa.Column("capacity_ram_millis", sa.BigInteger(), nullable=False),
        sa.Column("capacity_gpu", sa.Integer(), nullable=False),
        sa.Column("allocated_cpu_millis", sa.BigInteger(), nullable=False),
        sa.Column("allocated_ram_millis", sa.BigInteger(), nullable=False),
        sa.Column("allocated_gpu", sa.Integer(), nullable=False),
        sa.Column("pending_count", sa.Integer(), nullable=False),
        sa.Column("running_count", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "allocated_cpu_millis >= 0 AND allocated_cpu_millis <= capacity_cpu_millis",
            name=op.f("ck_clusters_allocated_cpu_millis"),
        ),
        sa.CheckConstraint(
            "allocated_gpu >= 0 AND allocated_gpu <= capacity_gpu",
            name=op.f("ck_clusters_allocated_gpu"),
        ),
        sa.CheckConstraint(
            "allocated_ram_millis >= 0 AND allocated_ram_millis <= capacity_ram_millis",
            name=op.f("ck_clusters_allocated_ram_millis"),
        ),
        sa.CheckConstraint(
            "pending_count >= 0 AND running_count >= 0", name=op.f("ck_clusters_counts")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_clusters_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clusters")),
        sa.UniqueConstraint("organization_id", "name", name="uq_clusters_organization_id_name"),
    )
    op.create_index(
        op.f("ix_clusters_organization_id"), "clusters", ["organization_id"], unique=False
    )
    op.create_table(
        "deployments",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("cluster_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("cpu_millis", sa.BigInteger(), nullable=False),
        sa.Column("ram_millis", sa.BigInteger(), nullable=False),
        sa.Column("gpu", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column(
            "preemption_policy",
            sa.Enum(
                "preempt_lower_priority",
                "never",
                name="preemptionpolicy",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "running",
                "completed",
                "failed",
                "cancelled",
                name="deploymentstatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("status_reason", sa.String(length=32), nullable=True),
        sa.Column("unmet_dependencies", sa.Integer(), nullable=False),
        sa.Column("preemption_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "cpu_millis >= 0 AND ram_millis >= 0 AND gpu >= 0",
            name=op.f("ck_deployments_resources"),
        ),
        sa.CheckConstraint(
            "priority >= 0 AND priority <= 1000", name=op.f("ck_deployments_priority")
        ),
        sa.CheckConstraint(
            "unmet_dependencies >= 0", name=op.f("ck_deployments_unmet_dependencies")
        ),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_deployments_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_deployments_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_deployments_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
    )
    op.create_index(
        "ix_deployments_cluster_listing",
        "deployments",
        ["cluster_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_deployments_org_listing",
        "deployments",
        ["organization_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_deployments_queue",
        "deployments",
        ["cluster_id", sa.literal_column("priority DESC"), "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending' AND unmet_dependencies = 0"),
        sqlite_where=sa.text("status = 'pending' AND unmet_dependencies = 0"),
    )
    op.create_index(
        "ix_deployments_running",
        "deployments",
        ["cluster_id", "priority"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "deployment_dependencies",
        sa.Column("deployment_id", sa.Uuid(), nullable=False),
        sa.Column("depends_on_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["depends_on_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_dependencies_depends_on_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_dependencies_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "deployment_id", "depends_on_id", name=op.f("pk_deployment_dependencies")
        ),
    )
    op.create_index(
        op.f("ix_deployment_dependencies_depends_on_id"),
        "deployment_dependencies",
        ["depends_on_id"],
        unique=False,
    )
    op.create_table(
        "deployment_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("deployment_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_events_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_events")),
    )
    op.create_index(
        op.f("ix_deployment_events_deployment_id"),
        "deployment_events",
        ["deployment_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_deployment_events_deployment_id"), table_name="deployment_events")
    op.drop_table("deployment_events")
    op.drop_index(
        op.f("ix_deployment_dependencies_depends_on_id"), table_name="deployment_dependencies"
    )
    op.drop_table("deployment_dependencies")
    op.drop_index(
        "ix_deployments_running",
        table_name="deployments",
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )
    op.drop_index(
        "ix_deployments_queue",
        table_name="deployments",
        postgresql_where=sa.text("status = 'pending' AND unmet_dependencies = 0"),
        sqlite_where=sa.text("status = 'pending' AND unmet_dependencies = 0"),
    )
    op.drop_index("ix_deployments_org_listing", table_name="deployments")
    op.drop_index("ix_deployments_cluster_listing", table_name="deployments")
    op.drop_table("deployments")
    op.drop_index(op.f("ix_clusters_organization_id"), table_name="clusters")
    op.drop_table("clusters")
