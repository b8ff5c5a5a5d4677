"""The console's small rules, without a server: login throttle, view URLs, words, redirects."""

import pytest

from reflexblue.accounts.sessions import LoginThrottle, TooManyLoginFailures
from reflexblue.console.auth import safe_next
from reflexblue.console.views import ListView, grace_period_in_words


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttle(clock: FakeClock) -> LoginThrottle:
    return LoginThrottle(
        failures_allowed=3, lockout_seconds=10, lockout_max_seconds=60, clock=clock
    )


def test_throttle_allows_the_first_failures() -> None:
    throttle = _throttle(FakeClock())
    for _ in range(2):
        throttle.failed("alice", "10.0.0.1")

    throttle.check("alice", "10.0.0.1")


def test_throttle_locks_a_user_name_out_from_any_address() -> None:
    throttle = _throttle(FakeClock())
    for _ in range(3):
        throttle.failed("alice", "10.0.0.1")

    with pytest.raises(TooManyLoginFailures) as refusal:
        throttle.check("ALICE", "10.0.0.2")

    assert refusal.value.retry_after_seconds == 10


def test_throttle_locks_an_address_out_for_every_user_name() -> None:
    throttle = _throttle(FakeClock())
    for name in ("a", "b", "c"):
        throttle.failed(name, "10.0.0.1")

    with pytest.raises(TooManyLoginFailures):
        throttle.check("d", "10.0.0.1")


def test_an_address_is_locked_for_the_rest_of_its_lockout_only() -> None:
    clock = FakeClock()
    throttle = _throttle(clock)
    for name in ("a", "b"):
        throttle.failed(name, "10.0.0.1")
    assert throttle.address_refused_for("10.0.0.1") is None

    throttle.failed("c", "10.0.0.1")
    clock.now += 4

    assert throttle.address_refused_for("10.0.0.1") == 6
    assert throttle.address_refused_for("10.0.0.2") is None
    clock.now += 6
    assert throttle.address_refused_for("10.0.0.1") is None


def test_an_address_with_its_allowance_being_checked_waits_a_second() -> None:
    throttle = _throttle(FakeClock())
    for name in ("a", "b"):
        throttle.admit(name, "10.0.0.1")
    assert throttle.address_refused_for("10.0.0.1") is None

    throttle.admit("c", "10.0.0.1")

    assert throttle.address_refused_for("10.0.0.1") == 1.0
    throttle.abandoned("c", "10.0.0.1")
    assert throttle.address_refused_for("10.0.0.1") is None


def test_a_locked_user_name_does_not_lock_the_address() -> None:
    throttle = _throttle(FakeClock())
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        throttle.failed("alice", address)

    assert throttle.address_refused_for("10.0.0.1") is None


def test_throttle_doubles_the_wait_with_each_further_failure_up_to_the_cap() -> None:
    clock = FakeClock()
    throttle = _throttle(clock)
    for _ in range(7):
        throttle.failed("alice", "10.0.0.1")

    with pytest.raises(TooManyLoginFailures) as refusal:
        throttle.check("alice", "10.0.0.1")

    assert refusal.value.retry_after_seconds == 60


def test_throttle_lets_in_again_after_the_wait() -> None:
    clock = FakeClock()
    throttle = _throttle(clock)
    for _ in range(3):
        throttle.failed("alice", "10.0.0.1")

    clock.now += 10.5

    throttle.check("alice", "10.0.0.1")


def test_a_successful_sign_in_clears_the_failures() -> None:
    throttle = _throttle(FakeClock())
    for _ in range(2):
        throttle.failed("alice", "10.0.0.1")
    throttle.succeeded("alice", "10.0.0.1")

    throttle.failed("alice", "10.0.0.1")

    throttle.check("alice", "10.0.0.1")


def test_sign_ins_still_being_checked_count_against_the_allowance() -> None:
    throttle = _throttle(FakeClock())
    for number in range(3):
        throttle.admit(f"user{number}", "10.0.0.1")

    with pytest.raises(TooManyLoginFailures) as refusal:
        throttle.admit("user9", "10.0.0.1")

    assert refusal.value.retry_after_seconds == 1


def test_an_abandoned_sign_in_frees_its_place() -> None:
    throttle = _throttle(FakeClock())
    for number in range(3):
        throttle.admit(f"user{number}", "10.0.0.1")

    throttle.abandoned("user0", "10.0.0.1")

    throttle.admit("user9", "10.0.0.1")


def test_admitted_sign_ins_that_fail_lock_the_address_out() -> None:
    throttle = _throttle(FakeClock())
    for number in range(3):
        throttle.admit(f"user{number}", "10.0.0.1")
        throttle.failed(f"user{number}", "10.0.0.1")

    with pytest.raises(TooManyLoginFailures) as refusal:
        throttle.admit("user9", "10.0.0.1")

    assert refusal.value.retry_after_seconds == 10


def test_after_a_lockout_ends_one_sign_in_at_a_time_is_checked() -> None:
    clock = FakeClock()
    throttle = _throttle(clock)
    for _ in range(3):
        throttle.failed("alice", "10.0.0.1")
    clock.now += 10.5
    throttle.admit("alice", "10.0.0.1")

    with pytest.raises(TooManyLoginFailures):
        throttle.admit("alice", "10.0.0.2")


def test_the_lock_out_message_says_how_long_to_wait() -> None:
    assert TooManyLoginFailures(90).detail == (
        "Too many failed sign-ins. Wait 2 minutes and try again."
    )


def test_clicking_another_header_sorts_ascending_by_it() -> None:
    view = ListView(sort="name", order="desc", q="acme", cursor="abc", selected="int_1")

    assert view.sort_url("export_id") == (
        "/management/general/integrations?sort=export_id&order=asc&q=acme&selected=int_1"
    )


def test_clicking_the_sorted_header_reverses_and_starts_at_the_first_page() -> None:
    view = ListView(sort="name", order="asc", cursor="abc")

    assert view.sort_url("name") == "/management/general/integrations?sort=name&order=desc"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (86_400, "24 hours"),
        (3600, "1 hour"),
        (172_800, "2 days"),
        (90, "90 seconds"),
        (120, "2 minutes"),
        (0, "no time at all"),
    ],
)
def test_grace_period_in_words(seconds: int, words: str) -> None:
    assert grace_period_in_words(seconds) == words


@pytest.mark.parametrize(
    "target", ["//evil.example", "/\\evil.example", "https://evil.example", "javascript:x", ""]
)
def test_next_outside_the_site_goes_to_the_overview(target: str) -> None:
    assert safe_next(target) == "/management/general/integrations"


def test_next_inside_the_site_is_kept() -> None:
    assert safe_next("/management/general/integrations/new?q=a") == (
        "/management/general/integrations/new?q=a"
    )
