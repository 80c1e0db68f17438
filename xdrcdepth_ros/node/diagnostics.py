"""What the depth node reports on /diagnostics, and its throttled bad-input log.

``diagnostic_updater`` is not installable from PyPI, so the node fills ``diagnostic_msgs`` itself, one
``DiagnosticStatus`` per period (ros2-conventions.md §8 lists the keys users expect): input rates per
topic, output rate, latency (image arrival -> depth published) and model forward time, synchroniser
matches and misses, frames dropped by the latest-frame policy, frames skipped while nobody subscribes,
camera-only frames while the radar is stale, bad messages per reason, device, model, inference backend and
precision.

Rates and latencies cover a sliding window (``window_s``); counters are totals since start. All methods
take ``now`` (seconds, monotonic) so behaviour is deterministic under test.

Levels: ERROR while frames fail inside the node (``internal_error``: a bug or a device error; the node's
fault, as diagnostic_updater's examples reserve ERROR for), WARN for a problem with the input or its
timing, OK while depth is published or nobody listens.
"""

from __future__ import annotations

import threading
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

DEFAULT_WINDOW_S = 5.0
#: the drop reason of a frame whose processing raised something other than bad input: the level is ERROR
INTERNAL_ERROR = "internal_error"


class WindowedEvents:
    """Events (with an optional value) inside a sliding time window."""

    def __init__(self, window_s: float, start: float):
        self.window_s = window_s
        self.start = start
        self.events: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float = 0.0) -> None:
        self.events.append((now, value))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self.events and self.events[0][0] <= now - self.window_s:
            self.events.popleft()

    def rate(self, now: float) -> float:
        """Events per second over the window (or over the time since start, if shorter)."""
        self._trim(now)
        span = min(self.window_s, now - self.start)
        return len(self.events) / span if span > 0 else 0.0

    def count(self, now: float) -> int:
        self._trim(now)
        return len(self.events)

    def mean_max(self, now: float) -> tuple[float, float]:
        self._trim(now)
        if not self.events:
            return float("nan"), float("nan")
        values = [v for _, v in self.events]
        return sum(values) / len(values), max(values)


class NodeStats:
    """Thread-safe counters of the node (executor callbacks and the worker thread both write)."""

    def __init__(self, now: float, image_topic: str, window_s: float = DEFAULT_WINDOW_S,
                 input_topics: tuple[str, ...] = ()):
        """``input_topics``: reported from the start, at rate 0 and 0 messages while silent (a radar topic that
        never published was missing from the values, where the docs point to ``messages received <topic>`` = 0)."""
        self.window_s = window_s
        self.start = now
        self.image_topic = image_topic
        self.lock = threading.Lock()
        self.inputs: dict[str, WindowedEvents] = {topic: WindowedEvents(window_s, now) for topic in input_topics}
        self.received_total: dict[str, int] = dict.fromkeys(input_topics, 0)
        self.matches = WindowedEvents(window_s, now)
        self.outputs = WindowedEvents(window_s, now)
        self.latency = WindowedEvents(window_s, now)
        self.forward = WindowedEvents(window_s, now)
        self.matches_total = 0
        self.published_total = 0
        self.dropped_total = 0
        self.uncompensated_total = 0
        self.idle_total = 0
        self.idle = False                      # the last synchronised frame found no output subscriber
        self.camera_only_total = 0
        self.radar_stale: tuple[str, ...] = ()  # radar topics left out of the last published frame
        self.bad: dict[str, int] = {}
        self._bad_at_last_report: dict[str, int] = {}

    def received(self, topic: str, now: float) -> None:
        with self.lock:
            self.inputs.setdefault(topic, WindowedEvents(self.window_s, self.start)).add(now)
            self.received_total[topic] = self.received_total.get(topic, 0) + 1

    def matched(self, now: float) -> None:
        with self.lock:
            self.matches.add(now)
            self.matches_total += 1

    def dropped(self) -> None:
        with self.lock:
            self.dropped_total += 1

    def uncompensated(self) -> None:
        """A radar cloud used without ego-motion compensation (no path through the fixed frame)."""
        with self.lock:
            self.uncompensated_total += 1

    def skipped_idle(self) -> None:
        """A synchronised frame not processed because no output has a subscriber (lazy, as image_pipeline)."""
        with self.lock:
            self.idle_total += 1
            self.idle = True

    def taken(self) -> None:
        """A synchronised frame taken for processing (an output has a subscriber): no longer idle, whether it
        is then published or rejected."""
        with self.lock:
            self.idle = False

    def rejected(self, reason: str) -> None:
        with self.lock:
            self.bad[reason] = self.bad.get(reason, 0) + 1

    def published(self, now: float, latency_s: float, forward_s: float,
                  radar_stale: tuple[str, ...] = ()) -> None:
        """A frame published; ``radar_stale`` names the radar topics it went without (camera-only)."""
        with self.lock:
            self.radar_stale = tuple(radar_stale)
            if radar_stale:
                self.camera_only_total += 1
            self.outputs.add(now)
            self.latency.add(now, latency_s)
            self.forward.add(now, forward_s)
            self.published_total += 1

    def sync_misses(self) -> int:
        """Camera images that never became part of a synchronised frame (yet)."""
        return max(self.received_total.get(self.image_topic, 0) - self.matches_total, 0)

    def status(self, now: float, name: str, device: str, model_id: str, backend: str = "",
               precision: str = "") -> DiagnosticStatus:
        """One DiagnosticStatus: level and message summarise the window, values give the details."""
        with self.lock:
            images = self.inputs.get(self.image_topic)
            new_bad = sorted(r for r, n in self.bad.items() if n > self._bad_at_last_report.get(r, 0))
            new_failures = self.bad.get(INTERNAL_ERROR, 0) - self._bad_at_last_report.get(INTERNAL_ERROR, 0)
            self._bad_at_last_report = dict(self.bad)
            out_rate = self.outputs.rate(now)
            lat_mean, lat_max = self.latency.mean_max(now)
            fwd_mean, _ = self.forward.mean_max(now)
            if new_failures:   # the node's own fault (a bug, a device error), not its input's: ERROR
                level, message = DiagnosticStatus.ERROR, f"inference failed on {new_failures} frame(s) since " \
                    "the last report (see the node's log)" + ("" if self.outputs.count(now) else "; no depth published")
            elif images is None or images.count(now) == 0:
                level, message = DiagnosticStatus.WARN, "no camera images"
            elif self.matches.count(now) == 0:
                level, message = DiagnosticStatus.WARN, "inputs not synchronised (check stamps and slop)"
            elif self.idle:
                level, message = DiagnosticStatus.OK, "idle: no subscriber to any output (inference skipped)"
            elif self.outputs.count(now) == 0:   # name the bad input that may be why (not only a slow node)
                level, message = DiagnosticStatus.WARN, "no depth published" + (
                    ": bad input: " + ", ".join(new_bad) if new_bad else "")
            elif self.radar_stale:
                level, message = (DiagnosticStatus.WARN, "radar stale: camera-only depth (no cloud from "
                                  + ", ".join(self.radar_stale) + ")")
            elif new_bad:
                level, message = DiagnosticStatus.WARN, "bad input: " + ", ".join(new_bad)
            else:
                level, message = DiagnosticStatus.OK, f"publishing depth at {out_rate:.1f} Hz"
            values = {"device": device, "model_id": model_id, "backend": backend, "precision": precision}
            for topic in sorted(self.inputs):
                values[f"input rate {topic} (Hz)"] = f"{self.inputs[topic].rate(now):.2f}"
            for topic in sorted(self.received_total):
                values[f"messages received {topic}"] = str(self.received_total[topic])
            values.update({
                "output rate (Hz)": f"{out_rate:.2f}",
                "latency mean (ms)": f"{lat_mean * 1e3:.1f}",
                "latency max (ms)": f"{lat_max * 1e3:.1f}",
                "inference forward mean (ms)": f"{fwd_mean * 1e3:.1f}",
                "sync matches": str(self.matches_total),
                "sync misses": str(self.sync_misses()),
                "frames published": str(self.published_total),
                "dropped frames": str(self.dropped_total),
                "frames skipped (no subscribers)": str(self.idle_total),
                "camera-only frames (radar stale)": str(self.camera_only_total),
                "radar stale topics": ", ".join(self.radar_stale),
                "radar clouds without ego-motion compensation": str(self.uncompensated_total),
                "bad messages": str(sum(self.bad.values())),
            })
            for reason in sorted(self.bad):
                values[f"bad: {reason}"] = str(self.bad[reason])
        return DiagnosticStatus(level=level, name=name, message=message, hardware_id=device,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def diagnostic_array(self, now: float, stamp, name: str, device: str, model_id: str, backend: str = "",
                         precision: str = "") -> DiagnosticArray:
        msg = DiagnosticArray(status=[self.status(now, name, device, model_id, backend, precision)])
        msg.header.stamp = stamp
        return msg


def status_values(status: DiagnosticStatus) -> dict[str, str]:
    """The key/value pairs of a DiagnosticStatus as a dict (for readers and tests)."""
    return {kv.key: kv.value for kv in status.values}


class ThrottledLog:
    """Per-reason log throttle: the first occurrence logs at once, then at most once per ``period_s``,
    with the number of occurrences since the last line."""

    def __init__(self, period_s: float = 5.0):
        self.period_s = period_s
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}
        self.lock = threading.Lock()

    def should_log(self, reason: str, now: float) -> tuple[bool, int]:
        """``(log now?, occurrences suppressed since the previous line)``."""
        with self.lock:
            if reason in self.last and now - self.last[reason] < self.period_s:
                self.suppressed[reason] = self.suppressed.get(reason, 0) + 1
                return False, 0
            self.last[reason] = now
            return True, self.suppressed.pop(reason, 0)
