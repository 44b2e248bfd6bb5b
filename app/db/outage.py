"""Telling a database that is away from a bug. While PostgreSQL restarts, is unreachable or
refuses connections, or the pool has none to hand out, statements fail with these errors; the API
answers 503 `database_unavailable` and the workers log one line and retry, instead of a 500 and
a traceback per request."""

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

OUTAGE_ERRORS = (OperationalError, InterfaceError, PoolTimeout, ConnectionError)


def is_database_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or the connection broke.
    (OperationalError is also SQLite's `database is locked` and a missing table before the first
    migration: both pass once the database is back to normal, as an outage does.)"""
    return isinstance(exc, OUTAGE_ERRORS) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
