from sqlalchemy import Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, CreatedAt, UUIDPrimaryKey


class User(UUIDPrimaryKey, CreatedAt, Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(32))
    # Stored lower-cased: addresses differing only in case are the same mailbox in practice.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))

    __table_args__ = (
        # "Alice" and "alice" are one account: uniqueness and login ignore case.
        Index("uq_users_username_lower", func.lower(username), unique=True),
    )
