"""Session state: bounded drop-oldest queue, QoS 1 window, packet ids, subscriptions."""

from __future__ import annotations

from simulator.mqtt.limits import Limits
from simulator.mqtt.session import OutboundMessage, Session


def _message(index: int, qos: int = 1, size: int = 1) -> OutboundMessage:
    return OutboundMessage(f"t/{index}", bytes(size), qos)


def test_full_queue_drops_the_oldest_and_counts_it() -> None:
    session = Session("c", True, Limits(max_queued_messages=3))
    dropped = sum(session.enqueue(_message(i)) for i in range(5))
    assert dropped == 2
    assert [session.pop_sendable() for _ in range(3)] == [_message(2), _message(3), _message(4)]


def test_byte_budget_drops_the_oldest_but_keeps_the_newest() -> None:
    session = Session("c", True, Limits(max_queued_bytes=10))
    assert session.enqueue(_message(0, size=6)) == 0
    assert session.enqueue(_message(1, size=6)) == 1
    assert session.enqueue(_message(2, size=50)) == 1
    assert session.queued == 1
    assert session.pop_sendable() == _message(2, size=50)


def test_qos1_window_holds_back_the_queue_until_a_puback() -> None:
    session = Session("c", True, Limits(max_inflight=2))
    for i in range(3):
        session.enqueue(_message(i))
    first = session.track(session.pop_sendable() or _message(-1))
    session.track(session.pop_sendable() or _message(-1))
    assert session.pop_sendable() is None
    assert session.acknowledge(first)
    assert session.pop_sendable() == _message(2)


def test_qos0_is_not_held_back_by_a_full_window_behind_it() -> None:
    session = Session("c", True, Limits(max_inflight=1))
    session.enqueue(_message(0))
    session.track(session.pop_sendable() or _message(-1))
    session.enqueue(_message(1, qos=0))
    assert session.pop_sendable() == _message(1, qos=0)


def test_packet_ids_skip_those_in_flight_and_wrap_before_65536() -> None:
    session = Session("c", True, Limits())
    session._next_packet_id = 0xFFFF
    assert session.track(_message(0)) == 0xFFFF
    assert session.track(_message(1)) == 1
    session._next_packet_id = 0xFFFF
    assert session.track(_message(2)) == 2


def test_unknown_puback_is_reported_as_such() -> None:
    assert not Session("c", True, Limits()).acknowledge(9)


def test_unacknowledged_messages_keep_their_send_order() -> None:
    session = Session("c", True, Limits())
    ids = [session.track(_message(i)) for i in range(3)]
    session.acknowledge(ids[1])
    assert session.unacknowledged() == [(ids[0], _message(0)), (ids[2], _message(2))]


def test_qos0_messages_are_forgotten_when_the_client_leaves() -> None:
    session = Session("c", True, Limits())
    session.enqueue(_message(0, qos=0))
    session.enqueue(_message(1))
    session.forget_qos0()
    assert session.queued == 1
    assert session.pop_sendable() == _message(1)


def test_granted_qos_is_the_highest_of_the_matching_filters() -> None:
    session = Session("c", True, Limits())
    session.subscriptions.update({"a/#": 0, "a/+": 1, "b": 1})
    assert session.granted_qos("a/x") == 1
    assert session.granted_qos("a/x/y") == 0
    assert session.granted_qos("c") is None
