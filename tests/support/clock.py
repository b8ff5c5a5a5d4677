"""A clock for code that takes one (`clock=`), moved by hand so tests need no sleeps."""


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
