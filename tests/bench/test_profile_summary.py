"""`python -m bench.profile`: where a py-spy raw profile's samples were, on both event loops."""

from collections import Counter

from bench.profile import summarise

STANDARD_LOOP = (
    "<module> (reflexblue/__main__.py:3);run (asyncio/runners.py:190);"
    "Runner.run (asyncio/runners.py:118);run_until_complete (asyncio/base_events.py:640);"
    "_run_once (asyncio/base_events.py:1922);Handle._run (asyncio/events.py:80)"
)
UVLOOP = "<module> (reflexblue/__main__.py:3);run (asyncio/runners.py:190);" + (
    "Runner.run (asyncio/runners.py:118)"
)
SEND = "DeliveryWorker._attempt (reflexblue/webhooks/worker.py:600);send (aiohttp/client.py:10)"
CLAIM = "DeliveryWorker._claim (reflexblue/webhooks/worker.py:400);execute (sqlite3/x.py:5)"


def _total_section(report: str) -> list[str]:
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("total, reflexblue"))
    return lines[start + 1 :]


def _stacks(prefix: str, idle: str) -> Counter[tuple[str, ...]]:
    return Counter(
        {
            tuple(f"{prefix};{SEND}".split(";")): 3,
            tuple(f"{prefix};{CLAIM}".split(";")): 1,
            tuple(idle.split(";")): 4,
        }
    )


def test_the_product_functions_are_totalled_under_the_standard_event_loop() -> None:
    idle = STANDARD_LOOP.rsplit(";", 1)[0] + ";select (selectors.py:468)"
    report = summarise(_stacks(STANDARD_LOOP, idle), top=5)
    totals = _total_section(report)
    assert totals[0].split() == [
        "37.5%",
        "DeliveryWorker._attempt",
        "(reflexblue/webhooks/worker.py:600)",
    ]
    assert totals[1].split()[:2] == ["12.5%", "DeliveryWorker._claim"]
    assert not any("__main__" in line for line in totals)


def test_the_product_functions_are_totalled_under_uvloop_whose_callbacks_are_not_frames() -> None:
    totals = _total_section(summarise(_stacks(UVLOOP, idle=UVLOOP), top=5))
    assert [line.split()[:2] for line in totals] == [
        ["37.5%", "DeliveryWorker._attempt"],
        ["12.5%", "DeliveryWorker._claim"],
    ]
