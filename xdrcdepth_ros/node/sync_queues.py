"""Taking an input's queued messages out of a message_filters synchroniser (a restart of its stamps).

``ApproximateTimeSynchronizer`` keeps up to ``queue_size`` unmatched messages per input and, when a queue is
full, evicts its oldest stamp. After a looping bag starts over (stamps go back by seconds), the oldest stamp
is always the message that just arrived, so every message of the new loop was dropped until its stamps passed
the leftovers of the old one: frames were lost for seconds after each loop, and for good when one input
outlasted the others in the recording (found by a black-box run over DDS). message_filters has no API to
empty a queue, so the node empties an input's queues itself when that input's stamps go back
(``DepthNode._input_arrived``).

This module is the one place that reaches into a synchroniser: upstream's ``TimeSynchronizer`` and
``ApproximateTimeSynchronizer`` (ros2/message_filters ``src/message_filters/__init__.py``, Kilted 7.1.x) keep
``queues``, one ``{stamp in ns: message}`` dict per input in the order of the inputs, guarded by ``lock``; the
stand-in (:mod:`xdrcdepth_ros.standins.message_filters`) keeps the same.
"""

from __future__ import annotations


def drop_queued(synchronizer, input_index: int) -> list:
    """Remove every message queued in ``synchronizer`` for its input ``input_index``; returns them."""
    with synchronizer.lock:
        queue = synchronizer.queues[input_index]
        dropped = list(queue.values())
        queue.clear()
    return dropped
