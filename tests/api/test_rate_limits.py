"""Rate limits: 429 `rate_limited` with Retry-After, keyed by user when signed in, by address
otherwise (X-Forwarded-For only from trusted proxies), in memory or Redis, surviving Redis loss."""

import uuid

import httpx
import pytest
import redis

from tests.support.api import PASSWORD, AppFactory, ClientFactory, World, assert_error

REDIS_URL = "redis://127.0.0.1:6379/0"


def limited_client(
    app_factory: AppFactory, client_factory: ClientFactory, **overrides: object
) -> httpx.AsyncClient:
    app = app_factory(rate_limit_enabled=True, **overrides)
    return client_factory(app)


async def bad_login(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"username": "nobody", "password": "wrong-pass"}, headers=headers
    )


async def test_login_limit_answers_429_with_retry_after(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = limited_client(app_factory, client_factory, rate_limit_login="3/minute")
    for _ in range(3):
        assert_error(await bad_login(client), 401, "invalid_credentials")
    limited = await bad_login(client)
    assert_error(limited, 429, "rate_limited")
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 61


async def test_anonymous_limits_key_on_the_forwarded_address_from_a_trusted_proxy(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    # The test transport's peer is 127.0.0.1, the default trusted proxy.
    client = limited_client(app_factory, client_factory, rate_limit_login="2/minute")
    first = {"X-Forwarded-For": "203.0.113.7"}
    second = {"X-Forwarded-For": "203.0.113.8"}
    for _ in range(2):
        await bad_login(client, first)
    assert_error(await bad_login(client, first), 429, "rate_limited")
    assert_error(await bad_login(client, second), 401, "invalid_credentials")


async def test_forwarded_address_from_an_untrusted_peer_is_ignored(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = limited_client(
        app_factory, client_factory, rate_limit_login="2/minute", forwarded_allow_ips="10.9.9.9"
    )
    for address in ("203.0.113.7", "203.0.113.8"):
        await bad_login(client, {"X-Forwarded-For": address})
    # Spoofing a new X-Forwarded-For does not buy a fresh bucket.
    limited = await bad_login(client, {"X-Forwarded-For": "203.0.113.9"})
    assert_error(limited, 429, "rate_limited")


async def test_join_limit_is_keyed_by_user(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    app = app_factory(
        rate_limit_enabled=True, rate_limit_join="2/minute", rate_limit_login="50/minute"
    )
    world = World(lambda: client_factory(app))
    first, second = await world.user(), await world.user()
    code = {"invite_code": "does-not-exist-at-all"}
    for _ in range(2):
        assert_error(
            await first.client.post("/api/v1/organizations/join", json=code),
            404,
            "invite_code_not_found",
        )
    limited = await first.client.post("/api/v1/organizations/join", json=code)
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    # Same address, another user: a bucket of its own.
    assert_error(
        await second.client.post("/api/v1/organizations/join", json=code),
        404,
        "invite_code_not_found",
    )


async def test_default_limit_applies_to_every_api_route(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = limited_client(app_factory, client_factory, rate_limit_default="3/minute")
    for _ in range(3):
        assert_error(await client.get("/api/v1/auth/me"), 401, "not_authenticated")
    assert_error(await client.get("/api/v1/organizations"), 429, "rate_limited")
    # Probes are not throttled.
    assert (await client.get("/health")).status_code == 200


async def test_limits_can_be_switched_off(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory(rate_limit_enabled=False, rate_limit_login="1/minute"))
    for _ in range(3):
        assert_error(await bad_login(client), 401, "invalid_credentials")


@pytest.fixture
def redis_prefix() -> str:
    return f"test-{uuid.uuid4().hex}"


async def test_redis_storage_shares_limits_between_processes(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    connection = redis.Redis.from_url(REDIS_URL)
    assert connection.ping()
    before = set(connection.scan_iter("LIMITS*"))
    # Two apps stand for two API processes: they share one Redis-backed budget.
    settings = {"rate_limit_login": "3/minute", "rate_limit_storage_uri": REDIS_URL}
    one = limited_client(app_factory, client_factory, **settings)
    two = limited_client(app_factory, client_factory, **settings)
    address = {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}
    try:
        for client in (one, two, one):
            assert_error(await bad_login(client, address), 401, "invalid_credentials")
        assert_error(await bad_login(two, address), 429, "rate_limited")
        assert set(connection.scan_iter("LIMITS*")) - before, "no counter was written to Redis"
    finally:
        for key in set(connection.scan_iter("LIMITS*")) - before:
            connection.delete(key)


async def test_unreachable_redis_degrades_to_memory_without_errors(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = limited_client(
        app_factory,
        client_factory,
        rate_limit_login="2/minute",
        rate_limit_storage_uri="redis://127.0.0.1:1/0",  # nothing listens on port 1
    )
    for _ in range(2):
        assert_error(await bad_login(client), 401, "invalid_credentials")
    assert_error(await bad_login(client), 429, "rate_limited")
    registered = await client.post(
        "/api/v1/auth/register",
        json={"username": "ada", "email": "ada@example.com", "password": PASSWORD},
    )
    assert registered.status_code == 201


async def test_login_guesses_are_limited_by_address_even_when_signed_in(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    app = app_factory(rate_limit_enabled=True, rate_limit_login="3/minute")
    world = World(lambda: client_factory(app))
    signed_in = await world.user()  # its own login used one guess of this address's budget
    for _ in range(2):
        assert_error(await bad_login(signed_in.client), 401, "invalid_credentials")
    # A session (say, of an account made for the purpose) does not buy a fresh budget.
    assert_error(await bad_login(signed_in.client), 429, "rate_limited")
