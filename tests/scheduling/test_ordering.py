"""The orders of `app/scheduling/ordering.py` are the only definitions: the hot Python keys and
the SQL derived from them must agree with them exactly, ties included."""

from datetime import timedelta
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

from app.models.deployment import LOWEST_FIRST, QUEUE_ORDER_BY, Deployment
from app.scheduling import PendingDeployment, Resources, RunningDeployment, RunningSet
from app.scheduling.ordering import QUEUE, REPRIEVE
from app.scheduling.scheduler import _key
from tests.scheduling.oracle import T0

# Few distinct values, so that ties on priority and on time are common.
priorities = st.integers(0, 3)
times = st.integers(0, 3).map(lambda minutes: T0 + timedelta(minutes=minutes))
ids = st.integers(0, 2**128 - 1).map(lambda value: UUID(int=value))
pending = st.builds(
    PendingDeployment, ids, priorities, st.just(Resources(1, 0, 0)), times, st.booleans()
)
running = st.builds(
    RunningDeployment, ids, priorities, st.just(Resources(1, 0, 0)), times, times, st.booleans()
)


@given(st.lists(pending, max_size=30, unique_by=lambda p: p.id))
def test_the_schedulers_key_is_the_declared_queue_order(items: list[PendingDeployment]) -> None:
    assert sorted(items, key=_key) == sorted(items, key=QUEUE.sort_key())


@given(st.lists(running, max_size=30, unique_by=lambda r: r.id))
def test_the_running_sets_order_is_the_declared_reprieve_order(
    items: list[RunningDeployment],
) -> None:
    in_reprieve_order = list(RunningSet(items).lower_in_reprieve_order(4))
    assert in_reprieve_order == sorted(items, key=REPRIEVE.sort_key())


def test_sql_orders_and_indexes_are_derived_from_the_declarations() -> None:
    def sql(clauses: tuple[object, ...]) -> list[str]:
        return [str(clause).split(".")[-1] for clause in clauses]

    assert sql(QUEUE_ORDER_BY) == ["priority DESC", "created_at", "id"]
    assert sql(LOWEST_FIRST) == ["priority", "started_at DESC", "id DESC"]
    indexes = {
        index.name: str(CreateIndex(index).compile(dialect=postgresql.dialect()))
        for index in Deployment.__table__.indexes
    }
    assert "(cluster_id, priority DESC, created_at, id)" in indexes["ix_deployments_queue"]
    assert "(cluster_id, priority, started_at DESC, id DESC)" in indexes["ix_deployments_running"]
