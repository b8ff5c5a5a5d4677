"""Server-side request forgery: webhook targets that point back inside, in every disguise."""

import ipaddress
import socket
from functools import partial

import httpx
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from sqlalchemy import select

from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.models import Attempt, Delivery
from reflexblue.webhooks.publishing import publish_event
from reflexblue.webhooks.sender import ErrorClass, Sender
from reflexblue.webhooks.targets import address_allowed
from tests.delivery.conftest import eventually, running_worker, subscribe
from tests.external.conftest import API, Caller, client_with, create_webhook
from tests.support.receiver import running_receiver

HEADERS = {"content-type": "application/json", "webhook-id": "evt_ssrf"}
BODY = b'{"type":"webhook.test"}'
PUBLIC_ADDRESS = "93.184.215.14"

# Every way the tests write "the receiver on 127.0.0.1"; {port} is the receiver's.
LOOPBACK_FORMS = {
    "dotted": "http://127.0.0.1:{port}/hook",
    "short": "http://127.1:{port}/hook",
    "decimal": "http://2130706433:{port}/hook",
    "octal": "http://0177.0.0.1:{port}/hook",
    "hex": "http://0x7f.0.0.1:{port}/hook",
    "hex_whole": "http://0x7f000001:{port}/hook",
    "localhost": "http://localhost:{port}/hook",
    "ipv4_mapped_ipv6": "http://[::ffff:127.0.0.1]:{port}/hook",
    "ipv4_mapped_ipv6_hex": "http://[::ffff:7f00:1]:{port}/hook",
}
# The HTTP client connects only to canonical addresses; it refuses the loose numeric forms
# outright, so with private targets allowed just these reach the receiver.
REACHABLE_FORMS = ["dotted", "localhost", "ipv4_mapped_ipv6", "ipv4_mapped_ipv6_hex"]

# Internal targets that are not the receiver: refused before any connection is tried.
UNREACHABLE_INTERNAL_TARGETS = {
    "cloud_metadata": "http://169.254.169.254/latest/meta-data/",
    "cloud_metadata_decimal": "http://2852039166/latest/meta-data/",
    "cloud_metadata_mapped": "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "private_10": "http://10.0.0.1/hook",
    "private_172": "http://172.16.0.1/hook",
    "private_192": "http://192.168.0.1/hook",
    "shared_100_64": "http://100.64.0.1/hook",
    "unspecified": "http://0.0.0.0/hook",
    "ipv6_loopback": "http://[::1]/hook",
    "ipv6_unique_local_fc": "http://[fc00::1]/hook",
    "ipv6_unique_local_fd": "http://[fd00::1]/hook",
    "ipv6_link_local": "http://[fe80::1]/hook",
    "ipv6_6to4_of_loopback": "http://[2002:7f00:1::]/hook",
}

# What a scripted name server answers for a public-looking name.
DNS_ANSWERS = {
    "loopback": ["127.0.0.1"],
    "mapped_loopback": ["::ffff:127.0.0.1"],
    "public_then_private": [PUBLIC_ADDRESS, "127.0.0.1"],
    "cloud_metadata": ["169.254.169.254"],
    "private_10": ["10.1.2.3"],
    "ipv6_unique_local": ["fd00::7"],
}


def _product_policy(*, allow_private: bool) -> partial[bool]:
    return partial(address_allowed, allow_private=allow_private)


class ScriptedNameServer(AbstractResolver):
    """Answers every name with the addresses it was given, one list per lookup; the last list
    repeats. It stands in for a name server the attacker controls."""

    def __init__(self, *answers: list[str]) -> None:
        self._answers = list(answers)
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        addresses = self._answers[0] if len(self._answers) == 1 else self._answers.pop(0)
        return [_result(host, address, port) for address in addresses]

    async def close(self) -> None:
        return None


def _result(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)


def _sender(*, allow_private: bool, resolver: AbstractResolver | None = None) -> Sender:
    return Sender(
        timeout_seconds=5.0,
        allowed=_product_policy(allow_private=allow_private),
        pool_size=4,
        resolver=resolver,
    )


@pytest.mark.parametrize("form", LOOPBACK_FORMS)
async def test_a_loopback_receiver_is_refused_when_private_targets_are_not_allowed(
    form: str,
) -> None:
    async with running_receiver() as receiver, _sender(allow_private=False) as sender:
        port = receiver.url.rsplit(":", 1)[1]
        result = await sender.send(LOOPBACK_FORMS[form].format(port=port), HEADERS, BODY)

    assert result.error == ErrorClass.BLOCKED_TARGET
    assert receiver.received == []


@pytest.mark.parametrize("form", REACHABLE_FORMS)
async def test_a_loopback_receiver_is_reached_when_private_targets_are_allowed(form: str) -> None:
    async with running_receiver() as receiver, _sender(allow_private=True) as sender:
        port = receiver.url.rsplit(":", 1)[1]
        result = await sender.send(LOOPBACK_FORMS[form].format(port=port), HEADERS, BODY)

    assert (result.error, result.response_status) == (None, 200)
    assert [request.body for request in receiver.received] == [BODY]


@pytest.mark.parametrize("target", UNREACHABLE_INTERNAL_TARGETS)
async def test_an_internal_address_is_refused_before_connecting(target: str) -> None:
    async with _sender(allow_private=False) as sender:
        result = await sender.send(UNREACHABLE_INTERNAL_TARGETS[target], HEADERS, BODY)

    assert result.error == ErrorClass.BLOCKED_TARGET
    assert result.response_status is None


@pytest.mark.parametrize("answer", DNS_ANSWERS)
async def test_a_public_name_answering_with_an_internal_address_is_refused_at_connect_time(
    answer: str,
) -> None:
    addresses = DNS_ANSWERS[answer]
    # The name server answers the whole list at once: one bad address spoils the answer.
    name_server = ScriptedNameServer(addresses)

    async with running_receiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        async with _sender(allow_private=False, resolver=name_server) as sender:
            result = await sender.send(f"http://hooks.example.com:{port}/hook", HEADERS, BODY)

    assert result.error == ErrorClass.BLOCKED_TARGET
    assert name_server.asked == ["hooks.example.com"]
    assert receiver.received == []


async def test_a_name_that_was_public_when_checked_and_private_when_sending_is_refused() -> None:
    name_server = ScriptedNameServer([PUBLIC_ADDRESS], ["127.0.0.1"])
    # The check when saving saw a public address...
    checked = await name_server.resolve("hooks.example.com", 443)
    assert all(
        address_allowed(ipaddress.ip_address(each["host"]), allow_private=False) for each in checked
    ), "the first answer should pass the save-time check"

    async with running_receiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        async with _sender(allow_private=False, resolver=name_server) as sender:
            result = await sender.send(f"http://hooks.example.com:{port}/hook", HEADERS, BODY)

    # ...the lookup at connect time answers loopback, and that answer is the one checked.
    assert result.error == ErrorClass.BLOCKED_TARGET
    assert name_server.asked == ["hooks.example.com", "hooks.example.com"]
    assert receiver.received == []


async def test_a_name_pointing_at_a_loopback_receiver_is_reached_when_allowed() -> None:
    name_server = ScriptedNameServer(["127.0.0.1"])

    async with running_receiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        async with _sender(allow_private=True, resolver=name_server) as sender:
            result = await sender.send(f"http://hooks.example.com:{port}/hook", HEADERS, BODY)

    assert result.succeeded
    assert receiver.received[0].headers["Host"] == f"hooks.example.com:{port}"


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://127.0.0.1:{inner_port}/internal",
        "http://[::1]:{inner_port}/internal",
        "http://2130706433:{inner_port}/internal",
    ],
)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_toward_an_internal_address_is_not_followed(
    location: str, status: int
) -> None:
    async with running_receiver() as inner:
        inner_port = inner.url.rsplit(":", 1)[1]

        async def redirect(_: web.Request) -> web.StreamResponse:
            target = location.format(inner_port=inner_port)
            return web.Response(status=status, headers={"Location": target})

        async with running_receiver(redirect) as outer, _sender(allow_private=True) as sender:
            result = await sender.send(f"{outer.url}/hook", HEADERS, BODY)

    assert (result.error, result.response_status) == (ErrorClass.HTTP_STATUS, status)
    assert [request.path for request in outer.received] == ["/hook"]
    assert inner.received == []


async def test_the_worker_refuses_a_stored_loopback_target_at_connect_time(
    runtime: Runtime,
) -> None:
    # The webhook is written straight to the database, as if saved while private targets were
    # allowed; the worker runs with them refused (the default).
    assert runtime.settings.allow_private_targets is False
    async with running_receiver() as receiver:
        await subscribe(runtime, f"{receiver.url}/hook")
        async with running_worker(runtime):
            async with transaction(runtime.sessions) as session:
                event_id = (await publish_event(session, "webhook.test", {"n": 1})).id
            await eventually(lambda: _has_attempt(runtime, event_id), "an attempt is recorded")

    async with transaction(runtime.sessions) as session:
        errors = list(
            await session.scalars(
                select(Attempt.error).join(Delivery).where(Delivery.event_id == event_id)
            )
        )
    assert errors == [ErrorClass.BLOCKED_TARGET.value]
    assert receiver.received == []


async def _has_attempt(runtime: Runtime, event_id: str) -> bool:
    async with transaction(runtime.sessions) as session:
        found = await session.scalar(
            select(Attempt.id).join(Delivery).where(Delivery.event_id == event_id).limit(1)
        )
    return found is not None


# Saving a webhook through the External API: the same forms, refused with 422 on `url`.
REFUSED_AT_CREATION = {
    "loopback": "http://127.0.0.1/hook",
    "localhost": "http://localhost/hook",
    "decimal": "http://2130706433/hook",
    "octal": "http://0177.0.0.1/hook",
    "hex": "http://0x7f000001/hook",
    "short": "http://127.1/hook",
    "cloud_metadata": "http://169.254.169.254/latest/meta-data/",
    "cloud_metadata_decimal": "http://2852039166/",
    "private_10": "https://10.0.0.1/hook",
    "private_172": "https://172.31.255.255/hook",
    "private_192": "https://192.168.1.1/hook",
    "link_local": "http://169.254.1.1/hook",
    "unspecified": "http://0.0.0.0/hook",
    "ipv6_loopback": "http://[::1]/hook",
    "ipv6_unspecified": "http://[::]/hook",
    "ipv4_mapped_loopback": "http://[::ffff:127.0.0.1]/hook",
    "ipv4_mapped_loopback_hex": "http://[::ffff:7f00:1]/hook",
    "ipv4_mapped_metadata": "http://[::ffff:a9fe:a9fe]/hook",
    "ipv6_unique_local_fc": "http://[fc00::1]/hook",
    "ipv6_unique_local_fd": "http://[fdff:ffff::1]/hook",
    "ipv6_link_local": "http://[fe80::1]/hook",
    "ipv6_6to4_loopback": "http://[2002:7f00:1::]/hook",
    "ipv6_nat64_loopback": "http://[64:ff9b::7f00:1]/hook",
}


@pytest.mark.parametrize("form", REFUSED_AT_CREATION)
async def test_creating_a_webhook_toward_an_internal_address_is_refused_with_422(
    form: str, runtime: Runtime, caller: Caller
) -> None:
    async with client_with(runtime, allow_private_targets=False) as http:
        http.headers.update(caller.headers)
        response = await http.post(
            f"{API}/webhooks",
            json={"url": REFUSED_AT_CREATION[form], "event_types": ["*"]},
        )
        listed = await http.get(f"{API}/webhooks")

    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["url"]
    assert listed.json()["items"] == []


@pytest.mark.parametrize("form", REFUSED_AT_CREATION)
async def test_moving_a_webhook_toward_an_internal_address_is_refused_and_changes_nothing(
    form: str, api: httpx.AsyncClient
) -> None:
    created = await create_webhook(api)

    response = await api.patch(
        f"{API}/webhooks/{created['id']}", json={"url": REFUSED_AT_CREATION[form]}
    )
    after = await api.get(f"{API}/webhooks/{created['id']}")

    assert response.status_code == 422, response.text
    assert after.json() == created


@pytest.mark.parametrize("form", ["loopback", "decimal", "ipv6_loopback", "ipv6_unique_local_fc"])
async def test_an_internal_address_is_accepted_when_private_targets_are_allowed(
    form: str, runtime: Runtime, caller: Caller
) -> None:
    async with client_with(runtime, allow_private_targets=True) as http:
        http.headers.update(caller.headers)
        response = await http.post(
            f"{API}/webhooks",
            json={"url": REFUSED_AT_CREATION[form], "event_types": ["*"]},
        )

    assert response.status_code == 201, response.text
