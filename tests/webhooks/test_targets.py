"""Which webhook target addresses are refused, in every form an address can be written."""

import ipaddress

import pytest

from reflexblue.core.errors import ValidationFailed
from reflexblue.webhooks.targets import address_allowed, check_target, literal_address

REFUSED_URLS = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://2130706433/hook",
    "http://0177.0.0.1/hook",
    "http://0x7f.0.0.1/hook",
    "http://0x7f000001/hook",
    "http://localhost:8080/hook",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::1]/hook",
    "http://[::]/hook",
    "http://[fc00::1]/hook",
    "http://[fd12:3456::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://[ff02::1]/hook",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_non_public_target_is_refused(url: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await check_target(url, allow_private=False)

    assert refused.value.errors[0].field == "url"
    assert "public" in refused.value.errors[0].message


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_non_public_target_is_accepted_when_private_targets_are_allowed(url: str) -> None:
    await check_target(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["https://93.184.215.14/hook", "http://8.8.8.8:8443/x", "https://[2606:4700::1111]/"]
)
async def test_public_address_is_accepted(url: str) -> None:
    await check_target(url, allow_private=False)


async def test_host_that_does_not_resolve_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValidationFailed) as refused:
        await check_target("https://no-such-host.invalid/hook", allow_private=True)

    assert "could not be resolved" in refused.value.errors[0].message


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
    ],
)
def test_numeric_host_forms_are_read_as_the_address_they_name(written: str, meant: str) -> None:
    assert literal_address(written) == ipaddress.ip_address(meant)


def test_host_name_is_not_taken_for_an_address() -> None:
    assert literal_address("example.com") is None
    assert literal_address("0x7g.example") is None


def test_ipv4_mapped_loopback_is_refused_like_loopback() -> None:
    mapped = ipaddress.ip_address("::ffff:127.0.0.1")

    assert address_allowed(mapped, allow_private=False) is False
    assert address_allowed(mapped, allow_private=True) is True
