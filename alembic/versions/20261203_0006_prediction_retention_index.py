"""an index for the retention job: finished predictions by completion time

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FINISHED = sa.text("status IN ('completed', 'failed')")


def upgrade() -> None:
    op.create_index(
        "ix_predictions_finished",
        "predictions",
        ["completed_at"],
        postgresql_where=_FINISHED,
        sqlite_where=_FINISHED,
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_finished", table_name="predictions")
