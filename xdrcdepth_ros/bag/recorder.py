"""Record ROS 2 topics into a rosbag2 without ros2cli, and save colour images as PNGs:
``bag_recorder --out DIR [--topics T ...] [--png-dir DIR] [--duration S] [--max-messages N]``.

A stand-in for ``ros2 bag record`` where rosbag2_py is not installed (ROS 2 from PyPI wheels); it also
takes the ``ros2 bag record`` spellings ``-o/--output DIR``, topics as positional arguments,
``--use-sim-time`` and ``-s/--storage``, so ``xdrcdepth launch`` can run a launch file's
``ros2 bag record -o DIR --use-sim-time /a /b`` as ``bag_recorder -o DIR --use-sim-time /a /b``. Each topic
is subscribed as soon as it appears in the graph (its type is taken from ``get_topic_names_and_types``),
with ``raw=True``, so the serialized CDR goes into the bag unchanged (written with ``rosbags``, mcap by
default). Bag timestamps are receive times on the node's clock, as ``ros2 bag record`` writes them: run
with ``--ros-args -p use_sim_time:=true`` to record bag time during ``bag_player --clock`` playback (``--use-sim-time`` is the same)
(messages that arrive before the first ``/clock`` are counted but not written, as rosbag2 does).

QoS (our choice, like rosbag2's adaptive QoS): RELIABLE when every publisher of the topic is reliable,
else BEST_EFFORT; TRANSIENT_LOCAL when every publisher is (``/tf_static``; a TRANSIENT_LOCAL subscription would
not match a VOLATILE publisher and lose all its messages). Each publisher's offered QoS is stored in the topic's
``offered_qos_profiles``, as ``ros2 bag record`` stores them (it stored none, or one made-up latched profile; a
black-box run); ``bag_player`` offers a topic latched when all of them are TRANSIENT_LOCAL.

``--png-dir``: every ``sensor_msgs/Image`` in ``rgb8`` or ``bgr8`` (e.g. ``depth/colorized``,
``depth/saliency``) is also written as an RGB PNG named ``<topic with / as _>_<sec>.<nanosec>.png`` from its
header stamp, atomically (:mod:`xdrcdepth_core.atomic`). A malformed image (CDR that does not deserialize,
or data that does not fit its size and encoding) is still recorded, byte for byte as received, since the
bag holds raw messages; only its PNG is skipped, with one warning per topic and a count in the summary.

Arguments are checked before anything is written (one line, exit code 2): malformed ``--ros-args``
(unknown flags, ``-p use_sim_time:=maybe``), topic names must be valid ROS names (``a`` and ``/a`` are one
topic, recorded once), ``--png-dir`` must be a folder or creatable as one, ``--out`` must be absent or an
empty folder (or, with ``--overwrite``, a recognisable bag).

The bag is recorded in place under ``--out``, like ``ros2 bag record`` (:mod:`xdrcdepth_ros.bag.files`):
mcap chunks with CRCs reach the file at least every 0.5 s (sqlite3: committed as often), and
``metadata.yaml`` plus the MCAP summary are written when recording ends (``--duration``,
``--max-messages``, SIGINT or SIGTERM). A SIGKILL or OOM loses at most the last half second:
``xdrcdepth bag-reindex OUT`` finalises what is there. A write error (disk full, I/O error) stops the
recording cleanly: everything written so far is kept (finalised when the summary still fits), one line
says why, exit code 1. ``--overwrite`` replaces only a recognisable bag, never another folder.
A one-line summary with the messages per topic is printed at exit.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from xdrcdepth_core.cli_args import (ArgumentParser, one_line, os_error_line, path_argument, positive_float,
                                     positive_int, say)
from xdrcdepth_ros.bag.files import (STORAGE_CHOICES, BagWriteError, check_output_folder, offered_qos,
                                     recording_bag_writer)
from xdrcdepth_ros.bag.player import split_ros_args, topic_name_error

#: The depth node's outputs (relative names, resolved in the recorder's namespace).
DEFAULT_TOPICS = ("depth/image", "depth/camera_info", "depth/colorized", "depth/saliency")
PNG_ENCODINGS = ("rgb8", "bgr8")
IMAGE_TYPE = "sensor_msgs/msg/Image"
GRAPH_POLL_S = 0.1


def png_name(topic: str, sec: int, nanosec: int) -> str:
    """File name of one frame: ``/depth/colorized`` at 12.000000034 s -> ``depth_colorized_12.000000034.png``."""
    return f"{topic.strip('/').replace('/', '_')}_{sec}.{nanosec:09d}.png"


@dataclass
class RecordSummary:
    """Counts for the one-line report at exit."""

    messages: dict[str, int] = field(default_factory=dict)
    before_clock: int = 0
    pngs: int = 0
    no_png: dict[str, int] = field(default_factory=dict)  # topic -> malformed images recorded without a PNG
    skipped: dict[str, str] = field(default_factory=dict)  # topic -> why

    def line(self, out: Path, storage: str, seconds: float, png_dir: Path | None) -> str:
        counts = ", ".join(f"{n} {topic}" for topic, n in self.messages.items() if topic not in self.skipped)
        counts = counts or "none"   # a skipped topic is named once, with why
        text = (f"bag_recorder: wrote {sum(self.messages.values())} messages to {out} ({storage}) in "
                f"{seconds:.1f} s: {counts}")
        if png_dir is not None:
            text += f"; {self.pngs} PNGs in {png_dir}"
        if self.no_png:
            text += ("; no PNG for " + ", ".join(f"{n} malformed {t}" for t, n in self.no_png.items())
                     + " (recorded as received)")
        if self.before_clock:
            text += f"; {self.before_clock} received before the first /clock (not written)"
        if self.skipped:
            text += "; skipped " + ", ".join(f"{t} ({why})" for t, why in self.skipped.items())
        return text


class Recorder:
    """Subscribes the wanted topics as they appear and writes every message to an open rosbags Writer.

    ``topics`` are resolved names (:func:`resolve_topics`, done before the bag is opened)."""

    def __init__(self, node, writer, topics: list[str], png_dir: Path | None = None):
        from rosbags.typesys import Stores, get_typestore

        self.node = node
        self.writer = writer
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        self.png_dir = png_dir
        self.pending = list(topics)
        self.summary = RecordSummary(messages=dict.fromkeys(self.pending, 0))
        self.subscriptions = []
        self.connections = {}   # topic -> its connection in the bag

    @staticmethod
    def _qos(publishers):
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
        # only if all offer it: a TRANSIENT_LOCAL subscription does not match a VOLATILE publisher
        latched = bool(publishers) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                           for p in publishers)
        return QoSProfile(depth=100,
                          reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)

    def subscribe_new_topics(self) -> None:
        """Subscribe every wanted topic that now has a publisher in the graph.

        Called from the main loop on wall time: a ROS timer would never fire under ``use_sim_time`` before
        the first ``/clock``."""
        from xdrcdepth_ros.standins.rosidl_runtime_py import UnknownMessageType, message_class

        if not self.pending:
            return
        graph = dict(self.node.get_topic_names_and_types())
        for topic in [t for t in self.pending if t in graph and self.node.count_publishers(t) > 0]:
            self.pending.remove(topic)
            msgtype = graph[topic][0]
            if len(graph[topic]) > 1:
                self.node.get_logger().warning(f"{topic} has several types {graph[topic]}; recording {msgtype}")
            publishers = self.node.get_publishers_info_by_topic(topic)
            qos = self._qos(publishers)
            try:
                msg_class = message_class(msgtype)
                connection = self.writer.add_connection(   # one offered profile a publisher, as rosbag2 stores
                    topic, msgtype, typestore=self.typestore,
                    offered_qos_profiles=[offered_qos(p.qos_profile) for p in publishers])
            except (UnknownMessageType, KeyError, ValueError) as exc:  # no Python class / typestore definition
                self.summary.skipped[topic] = f"type {msgtype}: {exc}"
                self.node.get_logger().error(f"not recording {topic}: {exc}")
                continue
            self.connections[topic] = connection
            png = self.png_dir is not None and msgtype == IMAGE_TYPE
            self.subscriptions.append(self.node.create_subscription(
                msg_class, topic, self._callback(topic, connection, msg_class if png else None), qos, raw=True))
            self.node.get_logger().info(f"recording {topic} ({msgtype})")

    def _callback(self, topic: str, connection, image_class):
        def on_message(raw: bytes) -> None:
            now = self.node.get_clock().now().nanoseconds
            if now == 0:  # sim time before the first /clock
                if not self.summary.before_clock:
                    self.node.get_logger().warning(f"{topic}: received before the first /clock: counted, not "
                                                   "written (use_sim_time has no time yet)")
                self.summary.before_clock += 1
                return
            self.writer.write(connection, now, raw)
            self.summary.messages[topic] += 1
            if image_class is not None:
                self._write_png(topic, raw, image_class)
        return on_message

    def _no_png(self, topic: str, why: str) -> None:
        """Count a malformed image (already recorded) that gets no PNG; warn at the first of each topic
        only, so a publisher sending garbage cannot flood the log (the summary has the count)."""
        count = self.summary.no_png.get(topic, 0)
        if not count:
            self.node.get_logger().warning(f"{topic}: malformed image recorded without a PNG: {why} "
                                           "(further ones on this topic are only counted)")
        self.summary.no_png[topic] = count + 1

    def _write_png(self, topic: str, raw: bytes, image_class) -> None:
        from PIL import Image as PILImage
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
        from rclpy.serialization import deserialize_message

        from xdrcdepth_core.atomic import atomic_write_bytes
        from xdrcdepth_ros.node.conversions import BadInput, rgb_from_image

        try:
            msg = deserialize_message(raw, image_class)
        except _rclpy.RMWError as exc:  # garbage CDR (Fast CDR exception): the raw bytes are in the bag
            self._no_png(topic, f"cannot deserialize it ({one_line(exc)})")
            return
        if msg.encoding not in PNG_ENCODINGS:
            return
        try:
            rgb = rgb_from_image(msg)
        except BadInput as exc:
            self._no_png(topic, f"bad image ({exc})")
            return
        buffer = io.BytesIO()
        PILImage.fromarray(rgb).save(buffer, format="PNG")
        path = self.png_dir / png_name(topic, msg.header.stamp.sec, msg.header.stamp.nanosec)
        try:
            atomic_write_bytes(path, buffer.getvalue())
        except OSError as exc:  # full disk, no permission: keep recording the bag
            self.node.get_logger().error(f"cannot write {path}: {exc}")
            return
        self.summary.pngs += 1

    @property
    def total(self) -> int:
        return sum(self.summary.messages.values())

    def count_what_the_bag_holds(self) -> None:
        """After the writer closed: the summary counts the messages in the bag, not those received (a write
        error loses the ones that did not reach the file)."""
        for topic, connection in self.connections.items():
            self.summary.messages[topic] = self.writer.counts.get(connection.id, 0)


def resolve_topics(node, topics: list[str]) -> list[str]:
    """The fully qualified names of ``topics`` in ``node``'s namespace, with its remap rules applied, each once
    (``a /a`` is one topic: subscribed twice, its second connection was refused as "added already" and the
    summary said "none; skipped /a" while the bag held its messages).

    Called before the bag is opened: the names were validated at argument parsing, but should rcl still
    refuse one, nothing has been written yet. Raises ``ValueError`` naming the topic."""
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    resolved = []
    for topic in topics:
        try:
            resolved.append(node.resolve_topic_name(topic))
        except _rclpy.RCLError as exc:  # "failed to resolve name"
            raise ValueError(f"cannot resolve topic {topic!r}: {one_line(exc)}") from None
    return list(dict.fromkeys(resolved))


def png_dir_error(path: Path) -> str | None:
    """Why PNGs cannot go into ``path``, or None: it must be a folder, or absent with its nearest existing
    parent a folder we may write in (PNGs create it). Checked at start-up, so a ``--png-dir`` naming a
    regular file is a usage error instead of an ERROR per image and "0 PNGs" at exit."""
    existing = next((p for p in (path, *path.absolute().parents) if p.exists()), None)
    if existing is None:
        return None
    if not existing.is_dir():
        return f"{existing} is not a folder" if existing == path else f"{existing} (in {path}) is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write in {existing}: permission denied"
    return None


def png_dir_in_bag(png_dir: Path, out: Path) -> str | None:
    """Why ``png_dir`` may not take the PNGs: it is the bag folder ``out`` or lies in it (a bag folder holds only
    metadata.yaml and its storage files; anything else makes it unrecognisable, so ``--overwrite`` and
    replay-demo would refuse to replace it), or None."""
    png, bag = Path(os.path.abspath(png_dir)), Path(os.path.abspath(out))
    if png == bag or bag in png.parents:
        return f"{png_dir} is in the bag folder --out {out} (which holds only the bag's own files)"
    return None


def is_empty_folder(path: Path) -> bool:
    """``path`` is a folder (not a link to one) with nothing in it: ``--out`` may be one, as the help says."""
    try:
        return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    except OSError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="bag_recorder", description=__doc__.splitlines()[0])
    parser.add_argument("--out", "-o", "--output", dest="out", required=True, type=path_argument,
                        help="bag folder to write (must not exist, or be an empty folder)")
    parser.add_argument("topic_list", nargs="*", metavar="TOPIC", help="topics to record (as ros2 bag record)")
    parser.add_argument("--topics", nargs="+", default=[], metavar="TOPIC",
                        help=f"topics to record, with the positional ones (default when neither is given: "
                             f"the depth node's outputs {' '.join(DEFAULT_TOPICS)})")
    parser.add_argument("--use-sim-time", action="store_true",
                        help="stamp messages with /clock time (as -p use_sim_time:=true)")
    parser.add_argument("--png-dir", type=path_argument, help="also write rgb8/bgr8 Images as PNGs here")
    parser.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds")
    parser.add_argument("--max-messages", type=positive_int, metavar="N", help="stop after N messages in all")
    parser.add_argument("-s", "--storage", choices=STORAGE_CHOICES, default="mcap", help="bag storage (default mcap)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing bag at --out (only a recognisable rosbag2 folder is deleted)")
    return parser


def _write_failure_line(out: Path, error: BagWriteError, kept: int, finalized: bool) -> str:
    cause = os_error_line("bag_recorder", error.cause, error.path)
    state = ("the bag is complete" if finalized else
             f"the bag is not finalised: run 'xdrcdepth bag-reindex {out}' once there is space")
    lost = f", lost the last {error.lost}" if error.lost else ""
    return f"{cause}; stopped recording: kept {kept} messages in {out}{lost}; {state}"


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from xdrcdepth_ros.node.run import RosArgumentError, create_tool_node, init_ros_with_stop_event

    own_args, ros_args = split_ros_args(sys.argv if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(own_args[1:])
    topics = list(dict.fromkeys(args.topic_list + args.topics)) or list(DEFAULT_TOPICS)
    for topic in topics:
        if error := topic_name_error(topic, "bag_recorder"):
            parser.error(error)
    if args.png_dir is not None and (error := png_dir_error(args.png_dir) or png_dir_in_bag(args.png_dir, args.out)):
        parser.error(f"argument --png-dir: {error}")
    if args.use_sim_time:
        ros_args = (ros_args or ["--ros-args"]) + ["-p", "use_sim_time:=true"]
    # an empty folder is as good as none (and nothing to overwrite)
    overwrite = args.overwrite or is_empty_folder(args.out)
    try:   # refuse before anything starts
        check_output_folder(args.out, overwrite)
    except FileExistsError as exc:
        say(f"bag_recorder: {exc}")
        return 2

    try:
        stop = init_ros_with_stop_event(own_args[:1] + ros_args)
        node = create_tool_node("bag_recorder")   # nothing written yet
    except RosArgumentError as exc:
        say(f"bag_recorder: {exc}")
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    began = time.monotonic()
    failure: BagWriteError | None = None
    writer = None
    try:
        try:
            resolved = resolve_topics(node, topics)
        except ValueError as exc:
            say(f"bag_recorder: {exc}")
            return 2
        try:
            writer = recording_bag_writer(args.out, args.storage, overwrite)
        except FileExistsError as exc:
            say(f"bag_recorder: {exc}")
            return 2
        except OSError as exc:
            say(os_error_line("bag_recorder", exc, args.out))
            return 1
        recorder = Recorder(node, writer, resolved, args.png_dir)
        graph_checked = -GRAPH_POLL_S
        try:
            while not stop.is_set():
                if time.monotonic() - graph_checked >= GRAPH_POLL_S:
                    recorder.subscribe_new_topics()
                    graph_checked = time.monotonic()
                executor.spin_once(timeout_sec=GRAPH_POLL_S)
                writer.flush_if_due()   # data reaches the file within FLUSH_PERIOD_S of its arrival
                if args.duration is not None and time.monotonic() - began >= args.duration:
                    break
                if args.max_messages is not None and recorder.total >= args.max_messages:
                    break
        except ExternalShutdownException:
            pass  # context shut down from outside: keep what was recorded
        except BagWriteError as exc:  # disk full, file size limit, I/O error: stop, keep what is written
            failure = exc
        finalized = True
        try:
            writer.close()
        except BagWriteError as exc:
            finalized = exc.finalized
            if failure is None:
                failure = exc
            elif exc.lost:
                failure.lost += exc.lost
    finally:
        if writer is not None and failure is not None:
            writer.abort()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    recorder.count_what_the_bag_holds()
    if recorder.pending:
        recorder.summary.skipped.update(dict.fromkeys(recorder.pending, "never published"))
    print(recorder.summary.line(args.out, args.storage, time.monotonic() - began, args.png_dir), flush=True)
    if failure is not None:
        say(_write_failure_line(args.out, failure, sum(writer.counts.values()), finalized))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
