"""Where webhooks may send: public addresses only, unless private targets are allowed.

A webhook URL is checked when it is saved; the sender checks the address it actually connects
to again, because a name may resolve elsewhere by then.
"""

import asyncio
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from reflexblue.core.errors import FieldError, ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT_SECONDS = 5.0
# Digits in decimal, octal (leading 0) or hex (0x), one to four parts: the forms the C library's
# inet_aton reads as an IPv4 address, so `http://2130706433/` is 127.0.0.1 to any HTTP client.
_LOOSE_IPV4 = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


def address_allowed(address: IPAddress, *, allow_private: bool) -> bool:
    """Whether webhooks may connect to this address."""
    if allow_private:
        return True
    return all(_is_public(each) for each in _addresses_within(address))


def _addresses_within(address: IPAddress) -> list[IPAddress]:
    # An IPv6 address can carry an IPv4 one that the network stack connects to in its place.
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo is not None:
            embedded.append(address.teredo[1])
        found.extend(each for each in embedded if each is not None)
    return found


def _is_public(address: IPAddress) -> bool:
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and address not in _SHARED_ADDRESS_SPACE
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names directly, in any of the forms clients accept."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if not _LOOSE_IPV4.match(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    except OSError:
        return None


async def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse a URL whose host does not resolve, or resolves to an address webhooks may not
    reach. Raises ValidationFailed on the `url` field."""
    host = urlsplit(url).hostname or ""
    literal = literal_address(host)
    addresses = [literal] if literal is not None else await _resolve(host)
    blocked = [a for a in addresses if not address_allowed(a, allow_private=allow_private)]
    if blocked:
        raise _refused(
            f"The URL's host {host!r} is a private, loopback, link-local or otherwise "
            f"non-public address ({blocked[0]}); webhooks may only reach public addresses."
        )


async def _resolve(host: str) -> list[IPAddress]:
    try:
        answers = await asyncio.wait_for(
            asyncio.to_thread(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM),
            RESOLVE_TIMEOUT_SECONDS,
        )
    except (OSError, UnicodeError, TimeoutError):
        raise _refused(f"The URL's host {host!r} could not be resolved to an address.") from None
    return [ipaddress.ip_address(str(answer[4][0]).split("%")[0]) for answer in answers]


def _refused(message: str) -> ValidationFailed:
    return ValidationFailed(message, [FieldError("url", message)])
