"""The worker runs on uvloop, whose socket and callback handling is most of a drain's loop."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop
from typer.testing import CliRunner

from reflexblue import cli
from reflexblue.core.event_loop import fast_event_loop_factory
from reflexblue.core.settings import Settings


def test_the_fast_event_loop_is_uvloop() -> None:
    assert fast_event_loop_factory() is uvloop.new_event_loop


def test_a_command_given_a_loop_factory_runs_on_that_loop() -> None:
    async def loop_type() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    settings = Settings(_env_file=None)

    ran_on = cli._run(loop_type(), settings, loop_factory=uvloop.new_event_loop)

    assert issubclass(ran_on, uvloop.Loop)


def test_the_worker_command_asks_for_the_fast_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    factories: list[Any] = []

    def remember_factory(
        work: Callable[[Any], Awaitable[Any]], labels: Any, *, loop_factory: Any = None
    ) -> None:
        factories.append(loop_factory)

    monkeypatch.setattr(cli, "_with_runtime", remember_factory)
    monkeypatch.setattr(cli, "configure_logging", lambda *_: None)

    result = CliRunner().invoke(cli.app, ["worker"])

    assert result.exit_code == 0, result.output
    assert factories == [uvloop.new_event_loop]
