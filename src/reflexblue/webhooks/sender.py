"""Sending one webhook request and describing what happened as a value, never an exception."""

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from reflexblue.webhooks.targets import literal_address

RESPONSE_BODY_LIMIT_BYTES = 4096
CONNECTIONS_PER_HOST = 0  # no per-host cap in the pool; the worker bounds each webhook itself
USER_AGENT = "ReflexBlue-Webhooks/1"
# Webhook URLs whose host was checked for being a blocked IP literal, kept per sender.
LITERAL_VERDICTS_KEPT = 10_000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress], bool]


class ErrorClass(StrEnum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    DNS = "dns"
    TLS = "tls"
    BLOCKED_TARGET = "blocked_target"
    HTTP_STATUS = "http_status"


@dataclass(frozen=True)
class AttemptResult:
    """The outcome of one attempt, as it is recorded."""

    duration_ms: int
    response_status: int | None = None
    response_body: str = ""
    error: ErrorClass | None = None
    retry_after_seconds: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


class BlockedTargetError(OSError):
    """The target's address is one webhooks may not reach."""


class GuardedResolver(AbstractResolver):
    """Resolves names and refuses the answer when an address is not allowed.

    The check runs on the addresses actually connected to, so a name that resolves to a public
    address when the webhook is saved and to a private one later is still refused.
    """

    def __init__(self, allowed: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            if not self._allowed(ipaddress.ip_address(answer["host"])):
                raise BlockedTargetError(f"{host} resolves to a blocked address")
        return answers

    async def close(self) -> None:
        await self._inner.close()


class Sender:
    """One shared connection pool for every attempt of a worker.

    `resolver` answers name lookups in place of the system's (the guard checks its answers
    all the same); it lets a test play a name server whose answers change.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float,
        allowed: AddressPolicy,
        pool_size: int,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._allowed = allowed
        self._pool_size = pool_size
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._literal_verdicts: dict[str, bool] = {}

    async def __aenter__(self) -> "Sender":
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=CONNECTIONS_PER_HOST,
            resolver=GuardedResolver(self._allowed, self._resolver),
            ttl_dns_cache=10,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={"User-Agent": USER_AGENT},
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> AttemptResult:
        assert self._session is not None, "use the sender inside `async with`"
        started = time.perf_counter()
        if not self._literal_address_allowed(url):
            return AttemptResult(_elapsed_ms(started), error=ErrorClass.BLOCKED_TARGET)
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                content = await _read_start_of_body(response)
                return _result_of_response(response, content, started)
        except Exception as error:  # every failure becomes a recorded value, never a crash
            return AttemptResult(_elapsed_ms(started), error=classify_error(error))

    def _literal_address_allowed(self, url: str) -> bool:
        # aiohttp connects to an IP literal without asking the resolver, so check it here; the
        # loose numeric forms (`2130706433`, `0177.0.0.1`) are read too, so that a refused one
        # is recorded as a blocked target rather than as a malformed URL. The answer for a
        # URL never changes, and a worker sends to the same few URLs again and again.
        allowed = self._literal_verdicts.get(url)
        if allowed is None:
            address = literal_address(URL(url).host or "")
            allowed = address is None or self._allowed(address)
            if len(self._literal_verdicts) >= LITERAL_VERDICTS_KEPT:
                self._literal_verdicts.clear()
            self._literal_verdicts[url] = allowed
        return allowed


async def _read_start_of_body(response: aiohttp.ClientResponse) -> bytes:
    """Up to 4 KiB of the body. The status decides the outcome; a body that trickles in is
    cut off by the attempt's timeout and kept as far as it came."""
    content = b""
    try:
        while len(content) < RESPONSE_BODY_LIMIT_BYTES:
            chunk = await response.content.read(RESPONSE_BODY_LIMIT_BYTES - len(content))
            if not chunk:
                break
            content += chunk
    except (TimeoutError, aiohttp.ClientError):
        pass
    return content


def classify_error(error: BaseException) -> ErrorClass:
    if isinstance(error, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return ErrorClass.TIMEOUT
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        if isinstance(error.os_error, BlockedTargetError):
            return ErrorClass.BLOCKED_TARGET
        return ErrorClass.DNS
    if isinstance(error, aiohttp.ClientSSLError | aiohttp.ClientConnectorCertificateError):
        return ErrorClass.TLS
    return ErrorClass.CONNECTION


def _result_of_response(
    response: aiohttp.ClientResponse, content: bytes, started: float
) -> AttemptResult:
    status = response.status
    return AttemptResult(
        duration_ms=_elapsed_ms(started),
        response_status=status,
        response_body=_body_text(content),
        error=None if 200 <= status < 300 else ErrorClass.HTTP_STATUS,
        retry_after_seconds=_retry_after(response.headers.get("Retry-After")),
    )


def _body_text(content: bytes) -> str:
    """The body as text every database stores: bytes that are not UTF-8 become U+FFFD, and so
    does NUL, which PostgreSQL's text columns refuse; a single refused body would hold up the
    recording of every outcome written in the same batch, again and again."""
    return content.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _retry_after(value: Any) -> float | None:
    """Seconds from a Retry-After header; dates and nonsense are ignored."""
    if not isinstance(value, str) or not value.strip().isdigit():
        return None
    return float(value.strip())


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
