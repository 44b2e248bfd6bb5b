"""A database that cannot be reached is 503 `database_unavailable` with `Retry-After`, in the
contract's shape, on every route that needs it; routes that do not need it keep answering. (The
restart under traffic, and the recovery, is tests/drills/test_database_restart.py.)"""

import sqlite3
from typing import Any

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.api import operations
from app.core.security import new_session_token
from app.db.outage import is_database_outage
from app.main import create_app
from tests.support.api import PASSWORD, AppFactory, ClientFactory, assert_error
from tests.support.processes import free_port


@pytest.fixture
async def unreachable(app_factory: AppFactory, client_factory: ClientFactory) -> Any:
    """An app whose database is a port nobody listens on."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    app = app_factory(database_url=url, worker_in_process=False)
    async with LifespanManager(app):
        client = client_factory(app)
        # A well-signed cookie, so that the session lookup reaches the database.
        client.cookies.set("session", app.state.cookie_signer.sign(new_session_token()))
        yield client


async def test_routes_that_need_the_database_answer_503_with_retry_after(
    unreachable: httpx.AsyncClient,
) -> None:
    login = await unreachable.post(
        "/api/v1/auth/login", json={"username": "ada", "password": PASSWORD}
    )
    body = assert_error(login, 503, "database_unavailable")
    assert body["error"] == "The database is unavailable; retry shortly."
    assert login.headers["Retry-After"] == "2"
    assert_error(await unreachable.get("/api/v1/auth/me"), 503, "database_unavailable")
    assert (await unreachable.get("/health")).status_code == 200
    assert (await unreachable.get("/ready")).json()["status"] == "not_ready"


def test_every_operation_that_needs_the_database_documents_the_503() -> None:
    spec = create_app().openapi()
    for path, method in [
        ("/api/v1/auth/me", "get"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/deployments/{deployment_id}/predict", "post"),
    ]:
        unavailable = spec["paths"][path][method]["responses"]["503"]
        assert "database_unavailable" in unavailable["x-error-codes"], (path, method)
    predict = spec["paths"]["/api/v1/deployments/{deployment_id}/predict"]["post"]
    assert {"model_unavailable", "no_worker"} <= set(predict["responses"]["503"]["x-error-codes"])
    assert "503" not in spec["paths"]["/health"]["get"]["responses"]


@pytest.mark.parametrize(
    ("orig", "outage"),
    [
        (psycopg.OperationalError("connection refused"), True),  # no server answered
        (psycopg.errors.AdminShutdown(), True),
        (psycopg.errors.CannotConnectNow(), True),
        (psycopg.errors.TooManyConnections(), True),
        (psycopg.errors.ConnectionFailure(), True),
        (sqlite3.OperationalError("database is locked"), True),
        (psycopg.errors.DeadlockDetected(), False),
        (psycopg.errors.SerializationFailure(), False),
        (psycopg.errors.QueryCanceled(), False),
        (psycopg.errors.LockNotAvailable(), False),
    ],
)
def test_only_a_database_that_is_away_counts_as_an_outage(orig: Exception, outage: bool) -> None:
    """A deadlock or a cancelled statement is a bug to see (a 500 with its traceback), not a 503
    that tells the caller to retry and logs nothing."""
    assert is_database_outage(OperationalError("SELECT 1", {}, orig)) is outage
    assert is_database_outage(PoolTimeout("QueuePool limit reached"))
    assert not is_database_outage(IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation()))


async def test_ready_answers_its_own_503_whichever_of_its_queries_fails(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database may go between the revision check and the heartbeat count: still the probe's
    body, not the error body."""

    async def dropped(_db: Any) -> int:
        raise OperationalError("SELECT", {}, psycopg.OperationalError("server closed"))

    monkeypatch.setattr(operations, "count_alive", dropped)
    response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "reason": "database unavailable or not migrated (OperationalError)",
    }
