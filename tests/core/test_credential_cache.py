"""The cache of verified credentials: kept for its time, forgotten with what it rests on."""

from reflexblue.core.credential_cache import CredentialCache
from tests.support.clock import Clock


def test_a_value_is_kept_until_its_time_is_up() -> None:
    clock = Clock()
    cache: CredentialCache[str] = CredentialCache(5.0, clock=clock)
    cache.put("hash", "alice", cache.generation(), depends_on=["usr_1"])

    clock.now += 4.9
    kept = cache.get("hash")
    clock.now += 0.1
    gone = cache.get("hash")

    assert (kept, gone) == ("alice", None)


def test_forgetting_an_id_drops_every_entry_that_rests_on_it() -> None:
    cache: CredentialCache[str] = CredentialCache(5.0)
    cache.put("first", "alice", cache.generation(), depends_on=["usr_1"])
    cache.put("second", "alice", cache.generation(), depends_on=["usr_1"])
    cache.put("third", "bob", cache.generation(), depends_on=["usr_2"])

    cache.forget({"usr_1"})

    assert [cache.get(key) for key in ("first", "second", "third")] == [None, None, "bob"]


def test_forgetting_a_hash_drops_its_entry_only() -> None:
    cache: CredentialCache[str] = CredentialCache(5.0)
    cache.put("first", "alice", cache.generation(), depends_on=["usr_1"])
    cache.put("second", "alice", cache.generation(), depends_on=["usr_1"])

    cache.forget({"first"})

    assert [cache.get(key) for key in ("first", "second")] == [None, "alice"]


def test_a_lookup_overtaken_by_a_change_is_not_kept() -> None:
    cache: CredentialCache[str] = CredentialCache(5.0)
    generation = cache.generation()  # the lookup starts and reads the row as it is

    cache.forget({"usr_1"})  # meanwhile another transaction changes it
    cache.put("hash", "alice", generation, depends_on=["usr_1"])

    assert cache.get("hash") is None
