from alertmanager_wecom.channels.base import Window
from alertmanager_wecom.delivery.pacing import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock) -> RateLimiter:
    limits = RateLimiter(clock)
    for key in ("a", "b"):
        limits.configure(key, (Window(27, 60.0), Window(900, 3600.0)))
    return limits


def test_member_minute_window_slides() -> None:
    clock = Clock()
    limits = limiter(clock)
    assert limits.available(["a"]) == 27
    for _ in range(27):
        assert limits.wait_time(["a"]) == 0
        limits.record(["a"])
        clock.now += 1
    assert limits.available(["a"]) == 0
    # the first send (at 1000) leaves the window at 1060; now is 1027
    assert limits.wait_time(["a"]) == 33.0
    clock.now = 1060.0
    assert limits.available(["a"]) == 1


def test_a_message_to_several_members_needs_room_for_each() -> None:
    clock = Clock()
    limits = limiter(clock)
    for _ in range(27):
        limits.record(["a"])
    assert limits.available(["b"]) == 27
    assert limits.available(["a", "b"]) == 0
    assert limits.wait_time(["a", "b"]) == 60.0


def test_hour_window_and_capacity() -> None:
    clock = Clock()
    limits = limiter(clock)
    assert limits.capacity(["a"]) == 27
    for _ in range(900):
        limits.record(["a"])
        clock.now += 2.3  # under the minute limit
    assert limits.available(["a"]) == 0
    assert 0 < limits.wait_time(["a"]) <= 3600


def test_sends_leave_the_window_after_its_length() -> None:
    clock = Clock()
    limits = limiter(clock)
    for _ in range(27):
        limits.record(["a"])
    assert limits.available(["a"]) == 0
    clock.now += 59.9
    assert limits.available(["a"]) == 0
    clock.now += 0.1
    assert limits.available(["a"]) == 27


def test_forget_gives_the_slot_back_and_restored_history_is_ordered() -> None:
    clock = Clock()
    limits = limiter(clock)
    at = limits.record(["a"])
    limits.forget(["a"], at)
    assert limits.available(["a"]) == 27
    limits.record(["a"], at=990.0)
    limits.record(["a"], at=980.0)  # out of order, as restored from storage
    clock.now = 1040.5
    assert limits.available(["a"]) == 26  # 980 has left the window, 990 has not
