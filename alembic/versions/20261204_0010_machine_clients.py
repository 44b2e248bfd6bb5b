"""machine clients: API keys, the audit log, prediction cancel and deadlines, signed webhooks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

import base64
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("queued", "running", "completed", "failed")
_AFTER = (*_BEFORE, "cancelled", "expired")
_WEBHOOK_PENDING = sa.text("webhook_state = 'pending'")
_TTL = sa.text("status = 'queued' AND expires_at IS NOT NULL")
_TIMEOUTS = sa.text("status = 'running' AND timeout_seconds IS NOT NULL")


def _in(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def _swap_status_check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_constraint(op.f("ck_predictions_predictionstatus"), type_="check")
        batch.create_check_constraint(op.f("ck_predictions_predictionstatus"), _in(values))


def _finished_index(values: tuple[str, ...]) -> None:
    op.drop_index("ix_predictions_finished", table_name="predictions")
    where = sa.text(_in(values))
    op.create_index(
        "ix_predictions_finished",
        "predictions",
        ["completed_at"],
        postgresql_where=where,
        sqlite_where=where,
    )


def _partial_index(name: str, column: str, where: sa.TextClause) -> None:
    op.create_index(name, "predictions", [column], postgresql_where=where, sqlite_where=where)


def _backfill_webhook_secrets() -> None:
    organizations = sa.table("organizations", sa.column("id"), sa.column("webhook_secret"))
    bind = op.get_bind()
    for (org_id,) in bind.execute(sa.select(organizations.c.id)).all():
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        bind.execute(
            organizations.update().where(organizations.c.id == org_id).values(webhook_secret=secret)
        )


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "viewer",
                "developer",
                "admin",
                name="role",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_api_keys_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_api_keys_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.UniqueConstraint("user_id", name=op.f("uq_api_keys_user_id")),
    )
    op.create_index("ix_api_keys_listing", "api_keys", ["organization_id", "created_at", "id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=False),
        sa.Column("actor_name", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_listing", "audit_log", ["organization_id", "at", "id"])
    op.create_table(
        "webhook_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("prediction_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_webhook_attempts_prediction_id_predictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
        sa.UniqueConstraint("prediction_id", "attempt", name="uq_webhook_attempts_attempt"),
    )
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("timeout_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column(
                "webhook_state",
                sa.Enum(
                    "pending",
                    "delivered",
                    "failed",
                    name="webhookstate",
                    native_enum=False,
                    create_constraint=True,
                    length=16,
                ),
                nullable=True,
            )
        )
        batch.add_column(sa.Column("webhook_next_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("webhook_attempts", sa.Integer(), nullable=False, server_default="0")
        )
    _swap_status_check(_AFTER)
    _finished_index(("completed", "failed", "cancelled", "expired"))
    _partial_index("ix_predictions_ttl", "expires_at", _TTL)
    _partial_index("ix_predictions_timeouts", "started_at", _TIMEOUTS)
    _partial_index("ix_predictions_webhooks_pending", "webhook_next_at", _WEBHOOK_PENDING)
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("webhook_secret", sa.String(length=64), nullable=True))
    _backfill_webhook_secrets()
    with op.batch_alter_table("organizations") as batch:
        batch.alter_column("webhook_secret", nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("webhook_secret")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("callback_url")
    for name in (
        "ix_predictions_webhooks_pending",
        "ix_predictions_timeouts",
        "ix_predictions_ttl",
    ):
        op.drop_index(name, table_name="predictions")
    op.execute("DELETE FROM predictions WHERE status IN ('cancelled', 'expired')")
    _finished_index(("completed", "failed"))
    _swap_status_check(_BEFORE)
    with op.batch_alter_table("predictions") as batch:
        batch.drop_constraint(op.f("ck_predictions_webhookstate"), type_="check")
        for column in (
            "webhook_attempts",
            "webhook_next_at",
            "webhook_state",
            "callback_url",
            "timeout_seconds",
            "expires_at",
        ):
            batch.drop_column(column)
    op.drop_table("webhook_attempts")
    op.drop_index("ix_audit_log_listing", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_api_keys_listing", table_name="api_keys")
    op.drop_table("api_keys")
