"""The delivery client's guard at connect time (`app/services/webhooks/transport.py`): the host is
resolved by the guard, every address it resolves to is checked, and the connection goes to the
address that was checked. The resolver is the test's: names under `.test` never resolve in DNS,
so a request that reaches the receiver went to the address the guard handed over."""

import httpx
import pytest

from app.core.config import Settings
from app.services.webhooks.transport import Resolver, guarded_client
from app.services.webhooks.urls import CallbackRefused, UrlPolicy
from tests.support.receiver import Receiver, receiving

LOOPBACK_ALLOWED = UrlPolicy.of(
    Settings(_env_file=None, webhook_allowed_networks="127.0.0.0/8")  # type: ignore[call-arg]
)
OPEN = UrlPolicy.of(Settings(_env_file=None))  # type: ignore[call-arg]


def resolving(table: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    resolver = resolving({"receiver.test": ["127.0.0.1"]})
    with receiving(Receiver()) as receiver:
        async with guarded_client(LOOPBACK_ALLOWED, 10, 4, resolver) as client:
            response = await client.post(receiver.url(host="receiver.test"), content=b"{}")
    assert response.status_code == 204
    [request] = receiver.received
    assert request.headers["host"] == f"receiver.test:{receiver.port}"


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["93.184.216.34", "127.0.0.1"],  # one bad address refuses the name, whichever comes first
        ["::ffff:127.0.0.1"],
        ["169.254.169.254"],
        ["10.0.0.7", "93.184.216.34"],
    ],
)
async def test_a_name_that_resolves_to_a_refused_address_is_not_connected_to(
    addresses: list[str],
) -> None:
    resolver = resolving({"rebound.test": addresses})
    with receiving(Receiver()) as receiver:
        async with guarded_client(OPEN, 10, 4, resolver) as client:
            with pytest.raises(CallbackRefused, match=r"rebound\.test is"):
                await client.post(receiver.url(host="rebound.test"), content=b"{}")
    assert receiver.received == []


async def test_a_literal_address_is_checked_at_connect_time_too() -> None:
    with receiving(Receiver()) as receiver:
        async with guarded_client(OPEN, 10, 4) as client:
            with pytest.raises(CallbackRefused, match="loopback"):
                await client.post(receiver.url(), content=b"{}")
    assert receiver.received == []


async def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    async with guarded_client(OPEN, 10, 4, resolving({})) as client:
        with pytest.raises(httpx.ConnectError, match=r"nowhere\.test could not be resolved"):
            await client.post("http://nowhere.test/hook", content=b"{}")
