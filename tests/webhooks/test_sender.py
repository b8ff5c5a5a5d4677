import asyncio
import ipaddress

from aiohttp import web

from reflexblue.webhooks.sender import (
    RESPONSE_BODY_LIMIT_BYTES,
    AddressPolicy,
    ErrorClass,
    IPAddress,
    Sender,
)
from tests.support.postgres import free_port
from tests.support.receiver import running_receiver

HEADERS = {"content-type": "application/json", "webhook-id": "evt_1"}
BODY = b'{"type":"webhook.test"}'


def _allow_all(_: IPAddress) -> bool:
    return True


def _refuse_loopback(address: IPAddress) -> bool:
    return not address.is_loopback


def _sender(timeout_seconds: float = 5.0, allowed: AddressPolicy = _allow_all) -> Sender:
    return Sender(timeout_seconds=timeout_seconds, allowed=allowed, pool_size=8)


async def test_a_2xx_answer_succeeds_and_the_request_arrives_as_sent() -> None:
    async with running_receiver() as receiver, _sender() as sender:
        result = await sender.send(f"{receiver.url}/hook", HEADERS, BODY)

    assert (result.succeeded, result.response_status, result.response_body) == (True, 200, "ok")
    assert receiver.received[0].body == BODY
    assert receiver.received[0].headers["webhook-id"] == "evt_1"


async def test_a_500_answer_is_an_http_status_failure() -> None:
    async def fail(_: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text="broken")

    async with running_receiver(fail) as receiver, _sender() as sender:
        result = await sender.send(receiver.url, HEADERS, BODY)

    assert (result.error, result.response_status, result.response_body) == (
        ErrorClass.HTTP_STATUS,
        500,
        "broken",
    )


async def test_only_the_first_4_kib_of_a_response_body_is_kept() -> None:
    async def chatty(_: web.Request) -> web.StreamResponse:
        return web.Response(text="x" * 100_000)

    async with running_receiver(chatty) as receiver, _sender() as sender:
        result = await sender.send(receiver.url, HEADERS, BODY)

    assert len(result.response_body) == RESPONSE_BODY_LIMIT_BYTES


async def test_redirects_are_not_followed() -> None:
    async def redirect(request: web.Request) -> web.StreamResponse:
        if request.path == "/elsewhere":
            return web.Response(text="followed")
        raise web.HTTPFound("/elsewhere")

    async with running_receiver(redirect) as receiver, _sender() as sender:
        result = await sender.send(f"{receiver.url}/start", HEADERS, BODY)

    assert (result.error, result.response_status) == (ErrorClass.HTTP_STATUS, 302)
    assert [request.path for request in receiver.received] == ["/start"]


async def test_retry_after_in_seconds_is_read_from_the_answer() -> None:
    async def busy(_: web.Request) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": "7"})

    async with running_receiver(busy) as receiver, _sender() as sender:
        result = await sender.send(receiver.url, HEADERS, BODY)

    assert (result.response_status, result.retry_after_seconds) == (429, 7.0)


async def test_a_receiver_slower_than_the_timeout_is_a_timeout() -> None:
    release = asyncio.Event()

    async def hang(_: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    async with running_receiver(hang) as receiver, _sender(timeout_seconds=0.2) as sender:
        result = await sender.send(receiver.url, HEADERS, BODY)
        release.set()  # lets the receiver shut down without waiting for the hung request

    assert (result.error, result.response_status) == (ErrorClass.TIMEOUT, None)


async def test_nothing_listening_is_a_connection_failure() -> None:
    async with _sender() as sender:
        result = await sender.send(f"http://127.0.0.1:{free_port()}/", HEADERS, BODY)

    assert result.error == ErrorClass.CONNECTION


async def test_a_name_that_does_not_resolve_is_a_dns_failure() -> None:
    async with _sender() as sender:
        result = await sender.send("http://nonexistent.invalid/", HEADERS, BODY)

    assert result.error == ErrorClass.DNS


async def test_a_refused_address_literal_is_blocked_before_connecting() -> None:
    async with running_receiver() as receiver, _sender(allowed=_refuse_loopback) as sender:
        result = await sender.send(receiver.url, HEADERS, BODY)

    assert result.error == ErrorClass.BLOCKED_TARGET
    assert receiver.received == []


async def test_a_name_resolving_to_a_refused_address_is_blocked_at_connect_time() -> None:
    async with running_receiver() as receiver, _sender(allowed=_refuse_loopback) as sender:
        url = receiver.url.replace("127.0.0.1", "localhost")
        result = await sender.send(url, HEADERS, BODY)

    assert result.error == ErrorClass.BLOCKED_TARGET
    assert receiver.received == []


async def test_an_ipv6_literal_is_checked_too() -> None:
    refused: list[IPAddress] = []

    def record_and_refuse(address: IPAddress) -> bool:
        refused.append(address)
        return False

    async with _sender(allowed=record_and_refuse) as sender:
        result = await sender.send("http://[::ffff:127.0.0.1]:9/", HEADERS, BODY)

    assert result.error == ErrorClass.BLOCKED_TARGET
    assert refused == [ipaddress.ip_address("::ffff:127.0.0.1")]
