"""Live Foxglove view of the depth pipeline: ``foxglove_viewer [--ros-args -p port:=8765 ...]``.

An rclpy node that subscribes *raw* (``raw=True``) to the configured topics and forwards the CDR bytes
unchanged to a foxglove-sdk WebSocket server bound to 127.0.0.1 only. Open Foxglove and connect to
``ws://localhost:8765``. The RViz2 alternative for a full ROS install is ``rviz/xdrcdepth.rviz``.

Topics are discovered from the ROS graph every ``discovery_period`` seconds: a configured topic is
bridged as soon as a publisher for it appears, with the type the publisher announces. Names are resolved
like any subscription (relative to the node's namespace, after ``-r`` remaps), so the remaps that rename
the depth node's inputs rename the viewer's too; a ``<base>/compressed`` name is image_transport's
compressed transport of ``<base>`` and follows a remapped base as the depth node's input does
(``-r image:=/cam/image`` bridges ``/cam/image/compressed``; an explicit ``-r image/compressed:=...`` wins),
and a relative ``<ns>/camera_info`` sits beside image ``<ns>/image`` as remapped (``/cam/camera_info``; an
explicit ``-r camera_info:=...`` wins), see :func:`transport_topic`. ``topics: ['*']`` bridges every topic in the graph.

Each topic becomes one Foxglove channel with message encoding ``cdr`` and schema encoding ``ros2msg``;
the schema text (the message definition with its dependencies) comes from rosbags'
``Typestore.generate_msgdef``. Types rosbags does not know are skipped with a warning.

QoS follows the publishers found at discovery (:func:`subscription_qos`): RELIABLE when they all are
(large images survive), TRANSIENT_LOCAL when they all offer it (``/tf_static``), so static transforms
published before the viewer started arrive; else BEST_EFFORT/VOLATILE, depth 5.
The last messages of such latched topics are kept and sent again whenever a Foxglove client subscribes to
their channel, so a client that connects late still gets the static transforms.
"""

from __future__ import annotations

import sys
import threading
from collections import deque

try:  # optional: no rosdep key exists for foxglove-sdk (pip install foxglove-sdk)
    import foxglove
except ImportError as _exc:
    foxglove = None
    FOXGLOVE_MISSING = (f"foxglove-sdk is not installed ({_exc}); install it with 'pip install "
                        "foxglove-sdk' (requirements.txt pins it). The viewer is optional: the rest of a "
                        "launch graph runs without it (use_foxglove:=false skips it; RViz2 shows the same "
                        "topics)")
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.typesys import Stores, TypesysError, get_typestore

from xdrcdepth_ros.standins.rosidl_runtime_py import UnknownMessageType, message_class
from xdrcdepth_ros.node.params import Param, declare, resolve_topic
from xdrcdepth_ros.node.run import node_help, run_node
from xdrcdepth_ros.node.transport_topics import COMPRESSED, camera_info_topic, compressed_topic

DEFAULT_TOPICS = [
    "image", "image/compressed", "camera_info", "radar/points",
    "depth/image", "depth/camera_info", "depth/colorized", "depth/saliency", "depth/points",
    "/tf", "/tf_static", "/diagnostics",
]
ALL_TOPICS = "*"
LATCHED_DEPTH = 10
#: Seconds the WebSocket server may take to stop; foxglove-sdk's stop waits for every client's task.
SERVER_STOP_TIMEOUT_S = 2.0


def subscription_qos(offered: list[QoSProfile]) -> QoSProfile:
    """The strongest QoS every current publisher is compatible with (as rosbag2 records).

    RELIABLE only if all publishers are reliable: a best-effort subscription loses a whole multi-MB image
    whenever one of its DDS fragments is dropped, which under CPU load can be every frame.
    TRANSIENT_LOCAL only if all publishers offer it (a volatile publisher would not match it).
    """
    reliable = bool(offered) and all(p.reliability == ReliabilityPolicy.RELIABLE for p in offered)
    latched = bool(offered) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered)
    return QoSProfile(depth=LATCHED_DEPTH if latched else 5,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


PARAMETERS = (
    Param("port", 8765, "WebSocket port on 127.0.0.1 (0: any free port)", range=(0, 65535)),
    Param("topics", DEFAULT_TOPICS, "topics to bridge (relative names follow namespace and remaps); '*' bridges all"),
    Param("discovery_period", 1.0, "seconds between ROS graph scans for new topics", range=(0.05, 3600.0)),
)


def _check_parameters(values: dict, node) -> list[str]:
    errors = []
    topics = list(values.get("topics", [ALL_TOPICS]))
    if not topics:
        errors.append("topics is empty (give topic names or '*')")
    for topic in topics:
        problem = None if topic == ALL_TOPICS else resolve_topic(node, topic)[1]
        if problem:
            errors.append(f"topics: {topic!r} is not a valid topic name ({problem})")
    return errors


def transport_topic(node, name: str) -> str:
    """The topic ``name`` resolves to for ``node``; a ``<base>/compressed`` name the way image_transport
    names the compressed transport of ``<base>`` (:func:`~xdrcdepth_ros.node.transport_topics.compressed_topic`)
    and a ``<ns>/camera_info`` name as the camera_info of image ``<ns>/image``
    (:func:`~xdrcdepth_ros.node.transport_topics.camera_info_topic`): the rules the depth node's inputs and
    outputs follow, so the viewer given the node's remaps bridges the node's topics."""
    base, _, transport = name.rpartition("/")
    if transport == COMPRESSED and base.strip("/~"):
        return node.resolve_topic_name(compressed_topic(node, base))
    if transport == "camera_info" and not name.startswith(("/", "~")):
        return node.resolve_topic_name(camera_info_topic(node, f"{base}/image" if base else "image", name))
    return node.resolve_topic_name(name)


class ViewerStartError(RuntimeError):
    """The WebSocket server could not start (port taken, ...)."""


class Bridge:
    """One bridged topic: its Foxglove channel and, for latched topics, the last messages."""

    def __init__(self, channel, latched: bool):
        self.channel = channel
        self.latched = latched
        self.last = deque(maxlen=LATCHED_DEPTH)

    def forward(self, raw: bytes, log_time: int) -> None:
        if self.latched:
            self.last.append((raw, log_time))
        self.channel.log(raw, log_time=log_time)

    def replay_latched(self) -> None:
        for raw, log_time in list(self.last):
            self.channel.log(raw, log_time=log_time)


class ReplayLatchedOnSubscribe(foxglove.ServerListener if foxglove else object):
    """Sends a latched topic's kept messages to a client when it subscribes to that channel."""

    def __init__(self, bridges_by_channel_id: dict[int, Bridge]):
        self.bridges_by_channel_id = bridges_by_channel_id

    def on_subscribe(self, client, channel) -> None:
        bridge = self.bridges_by_channel_id.get(channel.id)
        if bridge is not None and bridge.latched:
            bridge.replay_latched()


class FoxgloveViewer(Node):
    """Bridges ROS 2 topics to a local Foxglove WebSocket server without deserializing them."""

    def __init__(self):
        if foxglove is None:
            raise ViewerStartError(FOXGLOVE_MISSING)
        super().__init__("foxglove_viewer")
        declare(self, PARAMETERS, check=_check_parameters)   # ParameterError (exit 2) before the server starts
        self.port = self.get_parameter("port").value
        self.topics = list(self.get_parameter("topics").value)
        period = self.get_parameter("discovery_period").value
        self._typestore = get_typestore(Stores.ROS2_KILTED)
        self._bridges: dict[str, Bridge] = {}
        self._bridges_by_channel_id: dict[int, Bridge] = {}
        self._unbridgeable: set[str] = set()
        try:
            self.server = foxglove.start_server(
                name="xdrcdepth", host="127.0.0.1", port=self.port,
                server_listener=ReplayLatchedOnSubscribe(self._bridges_by_channel_id))
        except RuntimeError as exc:  # foxglove's FoxgloveError, e.g. the port is taken
            raise ViewerStartError(f"cannot serve Foxglove on 127.0.0.1:{self.port}: {exc}") from exc
        self.get_logger().info(f"serving on ws://127.0.0.1:{self.server.port} topics {self.topics}")
        print(f"foxglove_viewer: ws://127.0.0.1:{self.server.port}", flush=True)
        self.discover()
        # steady clock: under use_sim_time a ROS-time timer would not fire before the first /clock
        self.create_timer(period, self.discover, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def wanted_topics(self, graph: dict[str, list[str]]) -> list[str]:
        if ALL_TOPICS in self.topics:
            return sorted(graph)
        return [transport_topic(self, name) for name in self.topics]

    def discover(self) -> None:
        """Bridge every wanted topic that has a publisher and is not bridged yet."""
        graph = dict(self.get_topic_names_and_types())
        for topic in self.wanted_topics(graph):
            if topic in self._bridges or topic in self._unbridgeable or topic not in graph:
                continue
            if self.count_publishers(topic) == 0:
                continue  # only subscribers so far: wait for a publisher to tell us its QoS
            self.bridge(topic, graph[topic][0])

    def bridge(self, topic: str, type_name: str) -> None:
        try:
            msg_type = message_class(type_name)
            schema_text, _ = self._typestore.generate_msgdef(type_name, ros_version=2)
        except (UnknownMessageType, TypesysError) as exc:
            self.get_logger().warning(f"not bridging {topic} ({type_name}): {exc}")
            self._unbridgeable.add(topic)
            return
        channel = foxglove.Channel(
            topic, message_encoding="cdr",
            schema=foxglove.Schema(name=type_name, encoding="ros2msg", data=schema_text.encode()))
        qos = subscription_qos([info.qos_profile for info in self.get_publishers_info_by_topic(topic)])
        latched = qos.durability == DurabilityPolicy.TRANSIENT_LOCAL
        bridge = Bridge(channel, latched)
        self._bridges[topic] = bridge
        self._bridges_by_channel_id[channel.id()] = bridge
        self.create_subscription(
            msg_type, topic, lambda raw: bridge.forward(raw, self.get_clock().now().nanoseconds), qos, raw=True)
        self.get_logger().info(f"bridging {topic} ({type_name}{', transient local' if latched else ''})")

    def _stop_server(self) -> None:
        if hasattr(self, "server"):   # not when __init__ stopped early (bad parameters, port taken)
            self.server.stop()
        for bridge in getattr(self, "_bridges", {}).values():
            bridge.channel.close()

    def destroy_node(self):
        # in a thread with a bounded wait: a client that does not answer the close must not hold the node
        stopping = threading.Thread(target=self._stop_server, name="foxglove_stop", daemon=True)
        stopping.start()
        stopping.join(SERVER_STOP_TIMEOUT_S)
        if stopping.is_alive():
            self.get_logger().warning(f"the Foxglove server did not stop within {SERVER_STOP_TIMEOUT_S:g} s; "
                                      "leaving it to process exit")
        return super().destroy_node()


HELP = node_help("foxglove_viewer", "Live Foxglove view of the depth pipeline: bridges ROS 2 topics (raw CDR) to a "
                 "foxglove-sdk WebSocket server on 127.0.0.1; open Foxglove and connect to ws://localhost:PORT.",
                 PARAMETERS, "docs/launch_and_viewers.md")


def main(args: list[str] | None = None) -> int:
    return run_node(FoxgloveViewer, "foxglove_viewer", startup_errors=(ViewerStartError,),
                    startup_exit_code=1, args=args, help_text=HELP)


if __name__ == "__main__":
    sys.exit(main())
