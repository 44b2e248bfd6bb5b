"""Telling a database that is away from a bug. While PostgreSQL restarts, is unreachable or
refuses connections, or the pool has none to hand out, statements fail with these errors; the API
answers 503 `database_unavailable` and the workers log one line and retry, instead of a 500 and
a traceback per request. Anything else the database raises (a deadlock, a serialization failure,
a cancelled statement, a constraint) is not an outage: a bug or a race to fix, with a traceback."""

import logging
import sqlite3

from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# PostgreSQL's SQLSTATEs of a server going or gone: class 08 (connection exception), the shutdown
# and start-up states of class 57, and too many connections.
_AWAY_STATES = ("57P01", "57P02", "57P03", "53300")


def is_database_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or the connection broke."""
    if isinstance(exc, PoolTimeout | InterfaceError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc.orig, sqlite3.OperationalError):
        # The file is locked past the busy timeout, or cannot be opened: passes once it is free.
        return True
    state = getattr(exc.orig, "sqlstate", "")
    # psycopg gives no SQLSTATE when no server answered at all (refused, unreachable, closed).
    return state is None or state.startswith("08") or state in _AWAY_STATES


def log_failure(logger: logging.Logger, what: str, exc: Exception) -> None:
    """A database that is away is an outage, said in one line (it may last); anything else is a
    bug, logged with its traceback."""
    if is_database_outage(exc):
        logger.warning("%s: the database is unavailable (%s)", what, type(exc).__name__)
    else:
        logger.exception(what)
