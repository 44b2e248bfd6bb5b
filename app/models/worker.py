from datetime import datetime

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class WorkerHeartbeat(Base):
    """A prediction worker that is, or was, alive: it renews `last_seen_at` every few seconds and
    deletes its row when it stops; one whose heartbeat is old has died."""

    __tablename__ = "worker_heartbeats"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    # The models it runs (`mlops worker --models`); null: every model.
    models: Mapped[list[str] | None] = mapped_column(JSON)
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(index=True)
