"""The callback URL guard on its own (`app/services/webhooks/urls.py`): which URLs are refused as
given, whatever spelling of an address they use, and how the allow-lists open it up."""

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.core.config import Settings
from app.core.errors import Unprocessable
from app.services.webhooks.urls import (
    CallbackRefused,
    UrlPolicy,
    check_address,
    check_url,
    checked_callback,
)


def policy(**values: Any) -> UrlPolicy:
    return UrlPolicy.of(Settings(_env_file=None, **values))  # type: ignore[call-arg]


OPEN = policy()

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:8080/hook",
    "http://[::1]/hook",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fec0::1]/",  # site-local
    "http://[2002:a9fe:a9fe::1]/",  # 6to4 around 169.254.169.254
    "http://[2002:a00:1::1]/",  # 6to4 around 10.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",  # Teredo around 10.0.0.1
    "http://192.0.0.192/",  # IETF protocol assignments
    "http://100.64.0.1/hook",  # shared address space (carrier-grade NAT)
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://[fc00::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a00:1]/hook",  # ::ffff:10.0.0.1
    "http://2130706433/hook",  # 127.0.0.1 as one number
    "http://0x7f.1/hook",
    "http://127.1/hook",
    "http://127.0.0.1./hook",
    "http://localhost/hook",
    "http://LOCALHOST:8000/hook",
    "http://localhost./hook",
    "http://api.localhost/hook",
    "http://[fe80::1%25eth0]/hook",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://example.com/",
    "http://user:secret@example.com/hook",
    "http:///hook",
    "http://exa mple.com/hook",
    "http://example.com:99999/hook",
    "http://-example.com/hook",
    "not a url",
    "",
]

ALLOWED = [
    "https://hooks.example.com/predictions",
    "http://hooks.example.com:8080/predictions?token=abc",
    "https://example.com./hook",
    "http://93.184.216.34/hook",
    "http://[2606:4700:4700::1111]/hook",
    "https://bücher.example/hook",
    "HTTPS://Hooks.Example.COM/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_urls_refused_as_given(url: str) -> None:
    with pytest.raises(CallbackRefused):
        check_url(url, OPEN)


@pytest.mark.parametrize("url", ALLOWED)
def test_public_http_urls_pass(url: str) -> None:
    check_url(url, OPEN)


def test_the_reason_names_what_is_wrong() -> None:
    reasons = {}
    for url in ("http://10.0.0.1/", "http://[::1]/", "http://localhost/", "ftp://x.com/"):
        with pytest.raises(CallbackRefused) as refused:
            check_url(url, OPEN)
        reasons[url] = str(refused.value)
    assert reasons == {
        "http://10.0.0.1/": "10.0.0.1 is a private address (not in WEBHOOK_ALLOWED_NETWORKS)",
        "http://[::1]/": "::1 is a loopback address (not in WEBHOOK_ALLOWED_NETWORKS)",
        "http://localhost/": "localhost is 127.0.0.1, a loopback address "
        "(not in WEBHOOK_ALLOWED_NETWORKS)",
        "ftp://x.com/": "only http and https URLs are allowed",
    }


def test_allowed_hosts_are_exact_names_suffixes_and_addresses() -> None:
    only = policy(
        webhook_allowed_hosts="hooks.example.com, *.example.org, 93.184.216.34, 2606:4700::1111"
    )
    for url in (
        "https://hooks.example.com/a",
        "https://HOOKS.example.com./a",
        "https://a.example.org/a",
        "https://b.a.example.org/a",
        "http://93.184.216.34/a",
        "http://[2606:4700:0:0::1111]/a",
    ):
        check_url(url, only)
    for url in (
        "https://example.com/a",
        "https://other.hooks.example.com/a",
        "https://example.org/a",
        "https://evilexample.org/a",
        "http://93.184.216.35/a",
    ):
        with pytest.raises(CallbackRefused, match="WEBHOOK_ALLOWED_HOSTS"):
            check_url(url, only)


def test_an_allowed_host_must_still_be_a_public_address() -> None:
    with pytest.raises(CallbackRefused, match="private"):
        check_url("http://10.1.2.3/a", policy(webhook_allowed_hosts="10.1.2.3"))


def test_allowed_networks_open_private_addresses_and_loopback_names() -> None:
    lan = policy(webhook_allowed_networks="127.0.0.0/8, 10.0.0.0/8, fd00::/8")
    for url in (
        "http://127.0.0.1:9000/a",
        "http://localhost:9000/a",
        "http://10.9.8.7/a",
        "http://[fd12::1]/a",
        "http://[::ffff:127.0.0.1]/a",
    ):
        check_url(url, lan)
    for url in ("http://192.168.1.1/a", "http://[::1]/a", "http://169.254.169.254/"):
        with pytest.raises(CallbackRefused):
            check_url(url, lan)


def test_a_network_that_is_not_one_stops_the_settings() -> None:
    with pytest.raises(ValidationError, match="does not appear to be an IPv4 or IPv6 network"):
        Settings(_env_file=None, webhook_allowed_networks="10.0.0.0/8, intranet")  # type: ignore[call-arg]


def test_a_refused_callback_is_a_422_on_the_field() -> None:
    values = Settings(_env_file=None)  # type: ignore[call-arg]
    assert checked_callback(values, None) is None
    assert checked_callback(values, ALLOWED[0]) == ALLOWED[0]
    with pytest.raises(Unprocessable) as refused:
        checked_callback(values, "http://169.254.169.254/")
    assert refused.value.code == "callback_url_refused"
    assert refused.value.extra["fields"][0]["field"] == "callback_url"


def public(address: ipaddress.IPv4Address) -> bool:
    try:
        check_address(address, OPEN)
    except CallbackRefused:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(st.ip_addresses(v=4))
def test_every_spelling_of_an_ipv4_address_is_judged_as_the_address(
    address: ipaddress.IPv4Address,
) -> None:
    """Dotted, one number, hexadecimal, and IPv4-mapped IPv6: one verdict, the address's."""
    verdict = public(address)
    # 192.0.0.0/24 is refused although Pythons before 3.11.10 call some of it global.
    ietf = address in ipaddress.ip_network("192.0.0.0/24")
    assert verdict == (address.is_global and not address.is_multicast and not ietf)
    spellings = [
        f"http://{address}/",
        f"http://{int(address)}/",
        f"http://{hex(int(address))}/",
        f"http://[::ffff:{address}]/",
        f"http://[{ipaddress.IPv6Address(f'::ffff:{address}')}]/",
    ]
    for url in spellings:
        if verdict:
            check_url(url, OPEN)
        else:
            with pytest.raises(CallbackRefused):
                check_url(url, OPEN)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.ip_addresses(network="10.0.0.0/8"),
        st.ip_addresses(network="172.16.0.0/12"),
        st.ip_addresses(network="192.168.0.0/16"),
        st.ip_addresses(network="127.0.0.0/8"),
        st.ip_addresses(network="169.254.0.0/16"),
        st.ip_addresses(network="fc00::/7"),
        st.ip_addresses(network="fe80::/10"),
        st.ip_addresses(network="ff00::/8"),
    )
)
def test_non_public_addresses_are_refused_unless_their_network_is_allowed(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    with pytest.raises(CallbackRefused):
        check_address(address, OPEN)
    check_address(address, policy(webhook_allowed_networks=f"{address}/{address.max_prefixlen}"))


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.builds(
            "{}://{}{}".format,
            st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
            st.text(max_size=60),
            st.text(max_size=40),
        ),
    )
)
def test_any_string_is_allowed_or_refused_with_a_reason(url: str) -> None:
    """Whatever a caller sends, the guard answers (a 422 with a reason, never a 500)."""
    assert refusal(url) != ""


def refusal(url: str) -> str | None:
    """Why the guard refuses `url`; None when it passes."""
    try:
        check_url(url, OPEN)
    except CallbackRefused as refused:
        return str(refused)
    return None
