"""Keeping Python's cycle collector off the objects made at start-up.

A long-running process holds several hundred thousand objects from start-up that live as long
as it does: modules, classes, FastAPI's routes and models, SQLAlchemy's mappers, templates.
Each full collection of the oldest generation walks all of them, and on a small machine that
stalls the event loop for 100 ms and more, several times a minute under load: every request
in flight then waits. Frozen (`gc.freeze`), they are left out of every collection; objects
made afterwards are collected as before.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Collect once, then freeze what is left for as long as the block runs. On the way out the
    objects are handed back to the collector, so that what was frozen by a process that makes
    and ends many applications (a test run) can still be collected."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
