"""The HTTP client that delivers callbacks: every connection it opens goes to an address the URL
guard allowed, the very one it checked.

Checking a name and letting the client resolve it again would leave a window in which DNS answers
differently (rebinding): so the network backend under httpcore's pool resolves the host itself,
refuses the whole connection if any address it resolves to is refused (`urls.check_address`), and
connects to a checked address. TLS still verifies the certificate for the URL's host: the SNI and
the hostname check come from the URL, not from the address connected to. Redirects are never
followed (a 3xx is an attempt that failed), and no proxy from the environment is used."""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from app.services.webhooks.urls import UrlPolicy, check_address

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order, without repeats."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's AnyIO backend, connecting only to addresses that `policy` allows."""

    def __init__(self, policy: UrlPolicy, resolver: Resolver = resolve) -> None:
        self.policy = policy
        self.resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            found = await self.resolver(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} could not be resolved: {exc}") from exc
        addresses = [ipaddress.ip_address(address) for address in found]
        for address in addresses:
            check_address(address, self.policy, host)
        failure = httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (its requests, responses and errors) over a pool whose network
    backend is `backend`: httpx 0.29 takes no backend of its own, so the pool it made is replaced
    by the same kind of pool over the guarded one."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend, max_connections: int) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            network_backend=backend,
        )


def guarded_client(
    policy: UrlPolicy, timeout: float, max_connections: int, resolver: Resolver = resolve
) -> httpx.AsyncClient:
    """The one client of a worker's deliveries. A refused address raises `CallbackRefused`
    (unchanged through httpx) before any byte is sent."""
    transport = GuardedTransport(GuardedBackend(policy, resolver), max_connections)
    return httpx.AsyncClient(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    )
