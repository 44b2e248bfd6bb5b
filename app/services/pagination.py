"""Limit/offset pages with a total, for the contract's paged lists."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVarTuple

from sqlalchemy import Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class Page:
    limit: int = 50
    offset: int = 0


Ts = TypeVarTuple("Ts")


async def paginate(
    db: AsyncSession, stmt: Select[*Ts], page: Page
) -> tuple[Sequence[Row[*Ts]], int]:
    total = await db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = await db.execute(stmt.limit(page.limit).offset(page.offset))
    return rows.all(), total or 0
