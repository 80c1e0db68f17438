"""TF that starts over: a bag played again without ``/clock`` (``bag_player --loop``, or played twice).

tf2 refuses a transform older than its cache reaches back from the newest one of its frame (``TF_OLD_DATA``),
so the transforms of a bag's next loop would be refused for as long as the loop lasts. tf2_ros clears its
buffer when the node's clock jumps back by more than 1 s (``Buffer(node=...)``), which a wall-clock node never
sees. :class:`TransformListenerClearingOnRestart` applies that rule to the stamps instead: a dynamic transform
stamped more than 1 s before the newest one of its child frame clears the buffer's dynamic transforms before
it is stored, so the new loop's transforms are all kept (a clear decided by the images came after the new
loop's first transforms had arrived and removed them: black-box run, first frame of every loop uncompensated).
Our design; tf2 has no such rule. Static transforms stay, as with every tf2 clear.
"""

from __future__ import annotations

from xdrcdepth_ros.standins import active
from xdrcdepth_ros.standins.tf2_ros import CLEAR_ON_JUMP_BACK_S, rejection_reason

tf2_ros = active("tf2_ros")

#: a dynamic transform this far behind the newest of its child frame is a restart (tf2_ros's clock-jump bound)
RESTART_NS = int(CLEAR_ON_JUMP_BACK_S * 1e9)


class TransformListenerClearingOnRestart(tf2_ros.TransformListener):
    """tf2_ros's ``TransformListener`` (or the stand-in) that clears the buffer's dynamic transforms when a
    child frame's stamps go back by more than 1 s, and then calls ``on_restart(child_frame, seconds_back)``."""

    def __init__(self, buffer, node, on_restart):
        self._newest_ns: dict[str, int] = {}
        self._on_restart = on_restart
        super().__init__(buffer, node)

    def callback(self, data) -> None:
        for transform in data.transforms:
            if rejection_reason(transform) or transform.header.stamp.sec < 0:   # not a transform tf2 keeps
                continue
            child = transform.child_frame_id.removeprefix("/")   # tf2 drops a leading slash of frame names
            stamp_ns = transform.header.stamp.sec * 1_000_000_000 + transform.header.stamp.nanosec
            newest = self._newest_ns.get(child)
            if newest is not None and newest - stamp_ns > RESTART_NS:
                self.buffer.clear()
                self._newest_ns.clear()
                self._on_restart(child, (newest - stamp_ns) / 1e9)
            self._newest_ns[child] = max(stamp_ns, self._newest_ns.get(child, stamp_ns))
        super().callback(data)
