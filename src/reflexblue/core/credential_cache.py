"""Credentials this process verified a moment ago, so that a client sending request after
request is not looked up in the database for each of them.

An entry is found by the SHA-256 of the credential (never the credential itself) and lives a
few seconds. A change that would refuse the credential (a revocation, a deleted user, another
role) made by this process forgets the entries it touches when it is flushed and again when it
commits, and a lookup that was under way meanwhile is not kept: this process never answers from
an entry older than its own last change. Another process's change is not seen here until the
entry's time is up; that bound is the price of the cache, and the reason its time is short.
"""

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

# Distinct credentials in use at once are few (one per client); this only bounds memory.
MAX_ENTRIES = 10_000

T = TypeVar("T")


@dataclass(frozen=True)
class _Entry(Generic[T]):
    value: T
    expires_at: float
    # The credential's hash and the ids of what it depends on (its user, its integration).
    names: frozenset[str]


class CredentialCache(Generic[T]):
    """Values verified for credentials, by the credential's hash, for `ttl_seconds`."""

    def __init__(self, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._entries: dict[str, _Entry[T]] = {}
        # Counts forgetting; a lookup that saw it move may have read what was just changed.
        self._generation = 0

    def get(self, key_hash: str) -> T | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry.expires_at <= self.clock():
            del self._entries[key_hash]
            return None
        return entry.value

    def generation(self) -> int:
        """Taken before a lookup in the database, and given back to `put` with its result."""
        return self._generation

    def put(self, key_hash: str, value: T, generation: int, depends_on: Iterable[str]) -> None:
        """Keep `value` unless something was forgotten since `generation` was taken."""
        if generation != self._generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        names = frozenset((key_hash, *depends_on))
        self._entries[key_hash] = _Entry(value, self.clock() + self.ttl_seconds, names)

    def forget(self, names: Collection[str]) -> None:
        """Drop every entry of these credential hashes, or depending on these ids."""
        self._generation += 1
        stale = [key for key, entry in self._entries.items() if not entry.names.isdisjoint(names)]
        for key in stale:
            del self._entries[key]

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    def forget_in(self, session: Session, names: Collection[str]) -> None:
        """Forget these names now, and again when `session` commits: a lookup made meanwhile by
        another transaction read the rows as they were before this one changed them."""
        self.forget(names)
        session.info.setdefault(self._pending_key, set()).update(names)

    def forget_on_change(self, *watched: "Watched") -> None:
        """Have every ORM session of this process tell this cache, at each flush, what the
        flush changed among the watched rows, which the cache then forgets (as `forget_in`
        does)."""

        def flushed(session: Session, _context: object) -> None:
            names = _stale_names(session, watched)
            if names:
                self.forget_in(session, names)

        event.listen(Session, "after_flush", flushed)
        event.listen(Session, "after_commit", self._transaction_ended)
        event.listen(Session, "after_soft_rollback", self._rolled_back)

    def _rolled_back(self, session: Session, _previous: object) -> None:
        self._transaction_ended(session)

    def _transaction_ended(self, session: Session) -> None:
        names = session.info.pop(self._pending_key, None)
        if names:
            self.forget(names)

    @property
    def _pending_key(self) -> str:
        return f"reflexblue.credential_cache.{id(self)}"


@dataclass(frozen=True)
class Watched:
    """Rows a cached entry rests on: deleting one, or changing one of its `trusted` columns,
    forgets the entries depending on the name in its `name` column."""

    model: type[object]
    name: str
    trusted: tuple[str, ...] = ()


def _stale_names(session: Session, watched: Iterable[Watched]) -> set[str]:
    names: set[str] = set()
    for each in watched:
        for instance in session.deleted:
            if isinstance(instance, each.model):
                names.add(getattr(instance, each.name))
        for instance in session.dirty:
            if isinstance(instance, each.model) and _changed(instance, each.trusted):
                names.add(getattr(instance, each.name))
    return names


def _changed(instance: object, attributes: Iterable[str]) -> bool:
    """Whether a flushed instance's unit of work changed any of these attributes."""
    state = inspect(instance)
    return any(state.attrs[name].history.has_changes() for name in attributes)
