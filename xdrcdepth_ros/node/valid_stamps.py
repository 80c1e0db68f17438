"""Input messages with an invalid header stamp are dropped before they reach the synchronisers.

``builtin_interfaces/Time`` can hold ``sec < 0`` and ``nanosec >= 1e9``, but neither is a time: rclpy's
``Time.from_msg`` raises ``ValueError`` on a negative one, and upstream message_filters'
``ApproximateTimeSynchronizer`` and tf2 call it inside the subscription callback, where the exception ends
the executor (one ``sec: -1`` message stopped the node). :class:`ValidStamps` sits between a
``message_filters.Subscriber`` and everything that reads stamps, and hands such messages to ``on_invalid``
(the node counts them as ``bad_stamp``) instead. So is a stamp of 0, a header its driver never filled in: one
such frame among timed ones looked like a bag starting over (its output went back to 0 and on again; black-box
run), and a driver that stamps every message 0 is named at once rather than seen as unsynchronised inputs.
The filter shape is message_filters' own
(``SimpleFilter``: ``registerCallback``/``signalMessage``); the check is ours.
"""

from __future__ import annotations

from typing import Callable

from xdrcdepth_ros.node.input_qos import message_filters

NS_PER_S = 1_000_000_000


def stamp_problem(header) -> str | None:
    """Why ``header.stamp`` is not a valid time, or None."""
    stamp = header.stamp
    if stamp.sec < 0:
        return f"header.stamp.sec {stamp.sec} is negative"
    if stamp.nanosec >= NS_PER_S:
        return f"header.stamp.nanosec {stamp.nanosec} is not below 1e9"
    if stamp.sec == 0 and stamp.nanosec == 0:
        return "header.stamp is 0 (never set)"
    return None


class ValidStamps(message_filters.SimpleFilter):
    """Passes on the messages of ``source`` whose stamp is valid; the others go to ``on_invalid(topic, why)``."""

    def __init__(self, source, topic: str, on_invalid: Callable[[str, str], None]):
        super().__init__()
        self.topic = topic
        self.on_invalid = on_invalid
        source.registerCallback(self.add)

    def add(self, msg) -> None:
        problem = stamp_problem(msg.header)
        if problem is None:
            self.signalMessage(msg)
        else:
            self.on_invalid(self.topic, problem)
