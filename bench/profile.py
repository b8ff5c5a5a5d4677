"""Summing up a py-spy raw profile (`py-spy record -f raw`): where the samples were.

Run as `python -m bench.profile FILE [TOP]`. Each line of the file is one stack, outermost
frame first, separated by semicolons, then the number of samples that saw it. Printed, as shares
of all samples: the frames that were running themselves ("self"), the same summed by package,
and the product's own functions by the time under them ("total"), so the hottest work stands
out without a flame graph.
"""

import sys
from collections import Counter
from pathlib import Path

DEFAULT_TOP = 15
PRODUCT_PACKAGE = "reflexblue"
THREAD_START = "Thread._bootstrap (threading.py"
EVENT_LOOP_CALLBACK = "Handle._run (asyncio/events.py"
# uvloop runs its callbacks from C, so its stacks go straight from the runner to the coroutine.
EVENT_LOOP_RUNNER = "Runner.run (asyncio/runners.py"


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack and samples.isdigit():
            stacks[tuple(stack.split(";"))] += int(samples)
    return stacks


def summarise(stacks: Counter[tuple[str, ...]], top: int) -> str:
    """Shares of the main thread's samples; other threads (aiosqlite's, mostly waiting for
    work) are only counted, since their waiting shows up as samples too."""
    others = sum(n for stack, n in stacks.items() if stack[0].startswith(THREAD_START))
    stacks = Counter({s: n for s, n in stacks.items() if not s[0].startswith(THREAD_START)})
    total = sum(stacks.values())
    if total == 0:
        return "no samples"
    own: Counter[str] = Counter()
    own_by_package: Counter[str] = Counter()
    under_product: Counter[str] = Counter()
    for stack, samples in stacks.items():
        own[stack[-1]] += samples
        own_by_package[package_of(stack[-1])] += samples
        for frame in set(_since_event_loop(stack)):
            if package_of(frame) == PRODUCT_PACKAGE:
                under_product[frame] += samples
    return "\n".join(
        [
            f"{total} samples of the main thread ({others} of other threads left out)",
            *_section("self, by frame", own, total, top),
            *_section("self, by package", own_by_package, total, top),
            *_section(
                f"total, {PRODUCT_PACKAGE} functions run by the event loop",
                under_product,
                total,
                top,
            ),
        ]
    )


def _since_event_loop(stack: tuple[str, ...]) -> tuple[str, ...]:
    """The part of a stack a callback of the event loop runs; nothing for a stack that is not
    running one (waiting in the selector). The frames above the callback (the command line,
    `asyncio.run`) are on every stack and say nothing. On uvloop, whose callbacks are not
    Python frames, the part below the runner is taken instead."""
    for marker in (EVENT_LOOP_CALLBACK, EVENT_LOOP_RUNNER):
        for depth in range(len(stack) - 1, -1, -1):
            if stack[depth].startswith(marker):
                return stack[depth + 1 :]
    return ()


def package_of(frame: str) -> str:
    """`select (selectors.py:468)` is `selectors`; `execute (sqlalchemy/orm/x.py:1)` is
    `sqlalchemy`."""
    _, _, location = frame.rpartition(" (")
    path = location.split(":")[0]
    return path.split("/")[0].removesuffix(".py")


def _section(title: str, counts: Counter[str], total: int, top: int) -> list[str]:
    return ["", f"{title}:"] + [
        f"  {n / total:6.1%}  {name}" for name, n in counts.most_common(top)
    ]


def main(arguments: list[str]) -> None:
    top = int(arguments[1]) if len(arguments) > 1 else DEFAULT_TOP
    print(summarise(read_stacks(Path(arguments[0])), top))


if __name__ == "__main__":
    main(sys.argv[1:])
