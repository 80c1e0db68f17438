"""Diagnostics bookkeeping with an explicit clock: hand-computed rates, latencies, levels and counters."""

import math

from diagnostic_msgs.msg import DiagnosticStatus

from xdrcdepth_ros.node.diagnostics import NodeStats, ThrottledLog, WindowedEvents, status_values


def test_window_rate_and_mean():
    w = WindowedEvents(window_s=2.0, start=0.0)
    for t, v in ((0.5, 1.0), (1.0, 3.0), (1.5, 5.0)):
        w.add(t, v)
    assert w.rate(1.5) == 3 / 1.5              # window longer than the time since start
    assert w.rate(2.0) == 3 / 2.0
    assert w.mean_max(2.0) == (3.0, 5.0)
    assert w.count(2.6) == 2                   # 0.5 left the (0.6, 2.6] window
    assert w.count(3.0) == 1                   # 1.0 left the (1.0, 3.0] window
    assert w.mean_max(3.0) == (5.0, 5.0)
    assert math.isnan(WindowedEvents(1.0, 0.0).mean_max(5.0)[0])


def test_an_input_that_never_published_reads_0():
    s = NodeStats(now=0.0, image_topic="/image", input_topics=("/image", "/camera_info", "/radar", "/radar_left"))
    for t in (0.25, 0.75):
        for topic in ("/image", "/camera_info", "/radar"):
            s.received(topic, t)
    v = status_values(s.status(1.0, "depth_node", "cpu", "xdrcdepth@untrained"))
    assert v["messages received /radar_left"] == "0" and v["input rate /radar_left (Hz)"] == "0.00"
    assert v["messages received /radar"] == "2"


def test_status_values_and_ok_level():
    s = NodeStats(now=0.0, image_topic="/image", window_s=5.0)
    for i in range(10):                        # 2 Hz camera, 2 Hz radar, for 5 s
        t = 0.5 * i + 0.25
        s.received("/image", t)
        s.received("/radar", t)
    for i in range(8):
        s.matched(0.5 * i + 0.3)
    for i in range(4):
        s.published(1.0 * i + 0.5, latency_s=0.1 * (i + 1), forward_s=0.05)
    s.dropped()
    s.uncompensated()
    st = s.status(5.0, "depth_node", "cpu", "xdrcdepth@untrained")
    v = status_values(st)
    assert st.level == DiagnosticStatus.OK and st.message == "publishing depth at 0.8 Hz"
    assert st.hardware_id == "cpu" and v["device"] == "cpu" and v["model_id"] == "xdrcdepth@untrained"
    assert v["input rate /image (Hz)"] == "2.00" and v["input rate /radar (Hz)"] == "2.00"
    assert v["messages received /image"] == "10" and v["messages received /radar"] == "10"
    assert v["output rate (Hz)"] == "0.80"
    assert v["latency mean (ms)"] == "250.0" and v["latency max (ms)"] == "400.0"
    assert v["inference forward mean (ms)"] == "50.0"
    assert v["sync matches"] == "8" and v["sync misses"] == "2"
    assert v["frames published"] == "4" and v["dropped frames"] == "1" and v["bad messages"] == "0"
    assert v["radar clouds without ego-motion compensation"] == "1"


def test_warning_levels_name_the_problem():
    s = NodeStats(now=0.0, image_topic="/image")
    assert s.status(1.0, "n", "cpu", "m").message == "no camera images"
    s.received("/image", 1.5)
    assert s.status(2.0, "n", "cpu", "m").message.startswith("inputs not synchronised")
    s.matched(2.1)
    assert s.status(2.2, "n", "cpu", "m").message == "no depth published"
    s.published(2.3, 0.1, 0.05)
    s.rejected("unsupported_encoding")
    s.rejected("radar_truncated")
    s.rejected("radar_truncated")
    st = s.status(2.4, "n", "cpu", "m")
    assert st.level == DiagnosticStatus.WARN
    assert st.message == "bad input: radar_truncated, unsupported_encoding"
    v = status_values(st)
    assert v["bad: radar_truncated"] == "2" and v["bad messages"] == "3"
    # no new bad input since the last report -> back to OK, totals kept
    st = s.status(2.5, "n", "cpu", "m")
    assert st.level == DiagnosticStatus.OK and status_values(st)["bad messages"] == "3"
    # everything ages out of the window
    assert s.status(10.0, "n", "cpu", "m").message == "no camera images"


def test_throttled_log_counts_suppressed():
    log = ThrottledLog(period_s=5.0)
    assert log.should_log("a", 0.0) == (True, 0)
    assert log.should_log("a", 1.0) == (False, 0)
    assert log.should_log("b", 1.0) == (True, 0)      # reasons are throttled independently
    assert log.should_log("a", 4.9) == (False, 0)
    assert log.should_log("a", 5.0) == (True, 2)
    assert log.should_log("a", 6.0) == (False, 0)


def test_idle_and_radar_stale_states():
    """Lazy skipping reads OK "idle" (as image_pipeline nodes idle without subscribers); a camera-only
    frame (radar_timeout passed) reads WARN "radar stale" naming the topics until a fused frame follows."""
    s = NodeStats(now=0.0, image_topic="/image")
    s.received("/image", 0.5)
    s.matched(0.5)
    s.skipped_idle()
    st = s.status(0.6, "n", "cpu", "m")
    assert (st.level, st.message) == (DiagnosticStatus.OK, "idle: no subscriber to any output (inference skipped)")
    assert status_values(st)["frames skipped (no subscribers)"] == "1"
    s.matched(0.7)
    s.taken()
    s.published(0.8, 0.1, 0.05, radar_stale=("/radar/front", "/radar/left"))
    st = s.status(0.9, "n", "cpu", "m")
    assert st.level == DiagnosticStatus.WARN
    assert st.message == "radar stale: camera-only depth (no cloud from /radar/front, /radar/left)"
    v = status_values(st)
    assert v["camera-only frames (radar stale)"] == "1" and v["radar stale topics"] == "/radar/front, /radar/left"
    s.published(1.0, 0.1, 0.05)
    st = s.status(1.1, "n", "cpu", "m")
    assert st.level == DiagnosticStatus.OK and status_values(st)["radar stale topics"] == ""
    assert status_values(st)["camera-only frames (radar stale)"] == "1"


def test_backend_and_precision_are_reported():
    s = NodeStats(now=0.0, image_topic="/image")
    v = status_values(s.status(1.0, "depth_node", "cpu", "xdrcdepth@untrained", backend="openvino",
                               precision="fp32"))
    assert (v["backend"], v["precision"]) == ("openvino", "fp32")
    assert list(v)[:4] == ["device", "model_id", "backend", "precision"]


def test_internal_errors_read_error_not_warn():
    """A frame that failed inside the node (``internal_error``: a bug, a device error) is the node's fault:
    level ERROR with the number of failures since the last report, above every input problem; WARN and OK
    rules apply again once a report passes with no new failure."""
    s = NodeStats(now=0.0, image_topic="/image")
    s.received("/image", 0.5)
    s.matched(0.5)
    s.rejected("internal_error")
    s.rejected("internal_error")
    s.rejected("bad_image")
    st = s.status(0.6, "n", "cpu", "m")
    assert st.level == DiagnosticStatus.ERROR
    assert st.message == ("inference failed on 2 frame(s) since the last report (see the node's log); "
                          "no depth published")
    assert status_values(st)["bad: internal_error"] == "2"
    s.published(0.7, 0.1, 0.05)
    s.rejected("internal_error")
    st = s.status(0.8, "n", "cpu", "m")
    assert (st.level, st.message) == (DiagnosticStatus.ERROR,
                                      "inference failed on 1 frame(s) since the last report (see the node's log)")
    st = s.status(0.9, "n", "cpu", "m")
    assert (st.level, st.message) == (DiagnosticStatus.OK, "publishing depth at 1.1 Hz")
    # an input problem without a failure stays WARN
    s.rejected("bad_image")
    assert s.status(1.0, "n", "cpu", "m").level == DiagnosticStatus.WARN
