"""Play a rosbag2 (mcap or sqlite3) into ROS 2 without ros2cli: ``bag_player BAG [--clock] [-r RATE] ...``.

A stand-in for ``ros2 bag play`` where ros2cli/rosbag2_py are not installed (ROS 2 from PyPI wheels);
its flags are the same subset: ``--rate/-r``, ``--loop/-l``, ``--topics``, ``--remap/-m old:=new``,
``--start-offset`` (seconds), ``--delay/-d`` (seconds to sleep before each pass), ``--clock [HZ]``
(publish ``/clock`` at HZ, 40 when given alone, so ``use_sim_time`` nodes follow bag time), plus
``--wait-for-subscribers SECONDS`` (hold playback until every played topic has a subscriber, or that
many seconds passed).

Messages are read with ``rosbags`` and published as the raw CDR bytes stored in the bag
(``publisher.publish(raw_bytes)``): no per-message conversion. Original spacing of the bag's receive
timestamps is kept, divided by ``--rate``.

QoS (our choice): every topic is offered RELIABLE, which both RELIABLE and BEST_EFFORT subscribers accept;
``/tf_static`` and topics recorded as TRANSIENT_LOCAL are offered TRANSIENT_LOCAL with a history deep
enough for all of their messages, so late subscribers (tf listeners) still receive the static transforms.

Arguments are checked before anything plays (one line, exit code 2): ``--remap`` names must be valid ROS
topic names (:func:`topic_name_error`), and every number must lie in its :data:`FLAG_BOUNDS` range, so
``--start-offset 1e300`` or ``-r 1e-300`` is refused up front instead of overflowing mid-playback.
Malformed ``--ros-args`` (unknown flags, a parameter of the wrong type) are one line and exit code 2 too.

``--remap`` rules are the player node's own rcl remap rules (``--ros-args -r`` given to that node only, as
``ros2 bag play`` does), so relative names match (``-m image:=/camera/image`` renames the bag's ``/image``)
and node-local rules win over global ``--ros-args -r`` ones. Two bag topics of different types are never
published on one topic: a remap that would do it is refused (exit code 2), and a bag topic recorded with a
second type is skipped with a warning (its bytes would not deserialize as the first type), as is a bag topic
whose name is not a valid ROS name (``/b c``).

``--loop`` stops, with a warning, after a pass that had nothing to play (an empty bag, or
``--start-offset`` past its end) instead of spinning. ``--clock`` refuses (exit code 2) a bag whose times
``builtin_interfaces/Time`` cannot carry (before 1970 or after 2038: /clock would wrap to nonsense, and a
negative time raises in every ``use_sim_time`` node). A ``starting_time`` in metadata.yaml other than the
storage file's first message is refused like the other metadata mismatches (playback is timed from it).
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.exceptions import InvalidTopicNameException
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import RCLError
from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock

from xdrcdepth_core.cli_args import ArgumentParser, say
from xdrcdepth_ros.bag.decompression import DecompressionError, RefusedData, bounded_reader
from xdrcdepth_ros.bag.files import MAX_READ_BYTES, read_bag_info
from xdrcdepth_ros.bag.mcap_storage import MAGIC as MCAP_MAGIC
from xdrcdepth_ros.bag.play_bounds import FLAG_BOUNDS
from xdrcdepth_ros.node.run import RosArgumentError, create_tool_node, init_ros_with_stop_event
from xdrcdepth_ros.standins.rosidl_runtime_py import UnknownMessageType, message_class

DEFAULT_CLOCK_HZ = 40.0
#: Bag times (ns) that /clock can carry: ``builtin_interfaces/Time`` has int32 seconds, and ROS time is >= 0.
CLOCK_RANGE_NS = (0, (2**31 - 1) * 1_000_000_000 + 999_999_999)
STATIC_TOPICS = ("/tf_static",)
#: Longest single wait: ``threading.Event.wait`` overflows beyond ``threading.TIMEOUT_MAX`` (~9.2e9 s), which
#: a long bag at a slow rate can exceed, so long waits are taken in slices of this length.
MAX_WAIT_SLICE_S = 3600.0


class BagError(RuntimeError):
    """A bag that is missing or cannot be read; the message names the bag."""


class PlayConflict(ValueError):
    """The options cannot be played as asked (a remap merging topics of different types); one line."""


@dataclass
class PlayOptions:
    """What to play and how; mirrors the ``ros2 bag play`` flags of the same names."""

    rate: float = 1.0
    loop: bool = False
    topics: list[str] = field(default_factory=list)
    #: old -> new; applied by rcl as the player node's own remap rules (:func:`remap_arguments`)
    remap: dict[str, str] = field(default_factory=dict)
    start_offset: float = 0.0
    delay: float = 0.0
    clock_hz: float | None = None
    wait_for_subscribers: float = 0.0


@dataclass
class PlaySummary:
    """Counts for the one-line report at the end."""

    messages: int = 0
    topics: int = 0
    passes: int = 0
    bag_seconds: float = 0.0
    wall_seconds: float = 0.0
    skipped_topics: list[str] = field(default_factory=list)
    interrupted: bool = False

    def line(self, bag: Path, rate: float) -> str:
        text = (f"bag_player: played {self.messages} messages on {self.topics} topics from {bag} "
                f"(bag time {self.bag_seconds:.2f} s, wall {self.wall_seconds:.2f} s, rate {rate:g}, "
                f"{self.passes} pass{'es' if self.passes != 1 else ''})")
        if self.skipped_topics:
            text += f"; skipped {', '.join(self.skipped_topics)}"
        if self.interrupted:
            text += "; interrupted"
        return text


def damaged_bag_errors() -> tuple[type[Exception], ...]:
    """What reading a damaged bag file raises past :func:`open_bag`: rosbags' ``ReaderError`` (chunk CRC, bad
    records) and the bounded decompression's :class:`~xdrcdepth_ros.bag.decompression.DecompressionError` (a
    corrupt frame, or one that decompresses to more than allowed), which rosbags passes through unwrapped."""
    from rosbags.rosbag2 import ReaderError

    return ReaderError, DecompressionError


#: The storage file suffix each ``storage_identifier`` of metadata.yaml reads.
STORAGE_SUFFIXES = {"mcap": ".mcap", "sqlite3": ".db3"}


def damaged_bag_line(bag, exc: BaseException) -> str:
    """The one line for a bag whose storage file cannot be read, with the command that salvages it where one does:
    ``bag-reindex`` rebuilds an MCAP file from its intact chunks, and rewrites a metadata.yaml that names the
    wrong storage (``--force``). Nothing salvages a storage path that is no file (a folder), a file that is not
    MCAP at all (empty, no magic) or a damaged sqlite3 database (``bag-reindex`` rebuilds only a sqlite3 bag's
    metadata.yaml), and the line says so instead of sending the user to a repair that fails."""
    folder = Path(bag)
    storage_files = sorted(p for p in (folder.iterdir() if folder.is_dir() else ()) if p.suffix in (".mcap", ".db3"))
    odd = [p.name for p in storage_files if not p.is_file()]
    if odd:
        return f"cannot read bag {bag}: {odd[0]} in it is not a file (a folder or device where the bag's data belongs)"
    if not storage_files:
        return f"cannot read bag {bag}: {exc}"
    data = storage_files[0]
    if isinstance(exc, RefusedData):     # not damage bag-reindex repairs: a bomb, or compression_mode file
        return f"cannot read bag {bag}: {exc if data.name in str(exc) else f'{data.name}: {exc}'}"
    try:
        declared = read_bag_info(folder).get("storage_identifier")
        with open(data, "rb") as f:
            head = f.read(len(MCAP_MAGIC))
    except (OSError, ValueError) as error:
        return f"cannot read bag {bag}: {error}"
    if declared in STORAGE_SUFFIXES and STORAGE_SUFFIXES[declared] != data.suffix:
        return (f"cannot read bag {bag}: metadata.yaml says storage '{declared}' but the bag's file is {data.name} "
                f"('xdrcdepth bag-reindex --force {bag}' rewrites metadata.yaml from the file)")
    if data.suffix == ".db3":
        cause = exc if data.name in str(exc) else f"{data.name}: {exc}"
        return (f"cannot read bag {bag}: {cause} (the sqlite3 database is damaged; bag-reindex rebuilds "
                "only a sqlite3 bag's metadata.yaml, not its database)")
    if head != MCAP_MAGIC:
        what = "it is empty" if not head else "it does not start with the MCAP magic bytes"
        return f"cannot read bag {bag}: {data.name} is not an MCAP file ({what}): nothing to rebuild it from"
    cause = exc if isinstance(exc, damaged_bag_errors()) else "a record is cut short or malformed"
    return (f"cannot read bag {bag}: {cause} (the file is damaged; 'xdrcdepth bag-reindex {bag}' rebuilds it "
            "from its intact chunks)")


def metadata_refused(reader, exc: BaseException) -> bool:
    """Whether ``reader.open()`` failed on the contents of metadata.yaml (an unsupported version, storage or
    compression, a missing key, a listed file that is absent) rather than on the storage file: rosbags raises
    those from its directory reader's ``open`` itself, storage errors come from deeper frames."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and frame.tb_frame.f_code is type(reader.storage).open.__code__


def open_bag(path: str | Path):
    """An opened ``rosbags.rosbag2.Reader`` for a bag folder (or a ``.mcap``/``.db3`` inside one)."""
    bag = Path(path)
    if bag.is_file() and (bag.parent / "metadata.yaml").exists():
        bag = bag.parent
    if not bag.exists():
        raise BagError(f"bag {bag} does not exist")
    if not (bag / "metadata.yaml").exists():
        if bag.is_dir() and (list(bag.glob("*.mcap")) or list(bag.glob("*.db3"))):
            raise BagError(f"bag {bag} is not finalised (no metadata.yaml: the recording was interrupted); "
                           f"run 'xdrcdepth bag-reindex {bag}' first")
        raise BagError(f"bag {bag} has no metadata.yaml (not a rosbag2 folder)")
    try:
        read_bag_info(bag)   # plain words for what rosbags words as a Python error ('NoneType' ... subscriptable)
    except (OSError, ValueError) as exc:
        raise BagError(f"cannot read bag {bag}: {exc}") from None
    reader = bounded_reader(bag)
    try:
        reader.open()
    except Exception as exc:  # rosbags raises several types for damaged storage files
        if metadata_refused(reader, exc):
            raise BagError(f"cannot read bag {bag}: metadata.yaml: {exc} ('xdrcdepth bag-reindex --force {bag}' "
                           "rewrites metadata.yaml from the storage file)") from None
        raise BagError(damaged_bag_line(bag, exc)) from exc
    unmatched = metadata_mismatches(reader)
    if unmatched:
        reader.close()
        raise BagError(f"cannot read bag {bag}: metadata.yaml does not match its storage file ({'; '.join(unmatched)}); "
                       f"'xdrcdepth bag-reindex --force {bag}' rewrites metadata.yaml from the file")
    if oversized := oversized_record(reader):
        reader.close()
        raise BagError(f"cannot read bag {bag}: {oversized}")
    return reader


def oversized_record(reader) -> str | None:
    """What in the opened bag is larger than :data:`~xdrcdepth_ros.bag.files.MAX_READ_BYTES` once read (an MCAP
    chunk's decompressed size from the file's summary; a sqlite3 message's stored size), or None. Checked before
    any message is read, so a small file that declares gigabytes is refused at once; data that decompresses to
    more than it declares, or a compressed message to more than the limit, is refused when read (the bounded
    decompression of :mod:`xdrcdepth_ros.bag.decompression`)."""
    from rosbags.rosbag2.storage_mcap import McapReader
    from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

    limit = f"more than the {MAX_READ_BYTES >> 20} MiB the bag tools read at once"
    for storage in getattr(reader.storage, "storages", ()):
        if isinstance(storage, McapReader) and storage.chunks:
            chunk = max(storage.chunks, key=lambda c: c.uncompressed_size)
            if chunk.uncompressed_size > MAX_READ_BYTES:
                return (f"{Path(storage.path).name}: a chunk (at byte {chunk.chunk_start_offset}) holds "
                        f"{chunk.uncompressed_size / 2**20:.0f} MiB once decompressed, {limit}")
        elif isinstance(storage, Sqlite3Reader) and storage.dbconn is not None:
            (largest,) = next(iter(storage.dbconn.execute("SELECT MAX(LENGTH(data)) FROM messages")))
            if largest is not None and largest > MAX_READ_BYTES:
                return f"{Path(storage.path).name}: a message holds {largest / 2**20:.0f} MiB, {limit}"
    return None


def metadata_mismatches(reader) -> list[str]:
    """Topics that metadata.yaml lists with messages but rosbags would play nothing of, one line each.

    rosbags pairs each topic of metadata.yaml with the storage file's connection of the same topic, type,
    serialization format and QoS profiles (and type hash where both have one), and silently yields no
    message for a topic it cannot pair: a metadata.yaml that names another type would make the bag play
    without, say, its /tf_static (ros2 bag play takes the types from the storage file)."""
    stored = [c for storage in reader.storage.storages for c in storage.connections]
    problems = []
    for conn in reader.connections:
        if not conn.msgcount or any(
                c.topic == conn.topic and c.msgtype == conn.msgtype and c.ext == conn.ext
                and (not c.digest or not conn.digest or c.digest == conn.digest) for c in stored):
            continue
        types = sorted({c.msgtype for c in stored if c.topic == conn.topic})
        if not types:
            problems.append(f"{conn.topic} is not in the file")
        elif conn.msgtype not in types:
            problems.append(f"{conn.topic} is {conn.msgtype} in metadata.yaml, {', '.join(types)} in the file")
        else:
            problems.append(f"{conn.topic} has other QoS profiles, serialization format or type hash in the file")
    return problems


def start_time_mismatch(reader) -> str | None:
    """Why the bag's ``starting_time`` in metadata.yaml cannot be played from, or None.

    rosbags takes the bag's start from metadata.yaml, and playback is timed from it: a ``starting_time`` of 0
    made the player wait 54 years before the first message, one later than the file's first message skipped
    every message before it, both without a word. Checked against the first message of the storage file."""
    if not reader.message_count:
        return None
    first = next((stamp for _, stamp, _ in reader.messages()), None)
    if first is None:
        return f"metadata.yaml counts {reader.message_count} messages, the file has none"
    if first != reader.start_time:
        return f"starting_time {reader.start_time} ns in metadata.yaml, the file's first message at {first} ns"
    return None


def topic_name_error(name: str, node_name: str) -> str | None:
    """Why ``name`` is not a valid ROS 2 topic name, in one line naming it, or None when it is valid.

    Relative names, ``~`` and ``{node}``/``{ns}`` are expanded as for node ``node_name`` in ``/`` and the
    result validated as rcl does when a publisher or subscription is created: checked here, at argument
    parsing, a bad name (``'/a b'``, ``1bad``, ``/a//b``, ``{foo}``) is a usage error before anything starts,
    not an exception from deep inside rclpy after the output was opened."""
    from rclpy.exceptions import InvalidTopicNameException
    from rclpy.expand_topic_name import expand_topic_name
    from rclpy.validate_full_topic_name import validate_full_topic_name

    try:
        validate_full_topic_name(expand_topic_name(name, node_name, "/"))
    except InvalidTopicNameException as exc:  # "Invalid topic name: <why>:" then the name with a caret
        reason = str(exc).splitlines()[0].removeprefix("Invalid topic name: ").rstrip(":")
    except ValueError as exc:  # rcl's expansion: "topic name 'x' is invalid: <why>, at <file>:<line>"
        reason = re.sub(r", at \S+:\d+$", "", str(exc)).split(" is invalid: ", 1)[-1]
    else:
        return None
    return f"invalid topic name {name!r}: {reason}"


def parse_remaps(pairs: list[str]) -> dict[str, str]:
    """``['old:=new', ...]`` to a dict; an entry without ``:=``, or with a name that is not a valid topic
    name, is an argparse error."""
    remap = {}
    for pair in pairs:
        old, sep, new = pair.partition(":=")
        if not sep or not old or not new:
            raise argparse.ArgumentTypeError(f"--remap wants old:=new, got {pair!r}")
        for name in (old, new):
            error = topic_name_error(name, "bag_player")
            if error:
                raise argparse.ArgumentTypeError(f"--remap {pair!r}: {error}")
        remap[old] = new
    return remap


def remap_arguments(remap: dict[str, str]) -> list[str]:
    """``--remap`` rules as the node arguments ``ros2 bag play`` gives its player node
    (``--ros-args -r old:=new ...``): rcl expands both sides in the node's namespace before matching, so a
    relative ``image:=/camera/image`` matches the bag's ``/image`` (a plain dict lookup of the text did not)."""
    if not remap:
        return []
    return ["--ros-args", *[arg for old, new in remap.items() for arg in ("-r", f"{old}:={new}")]]


def _recorded_transient_local(connection) -> bool:
    """Whether every recorded publisher offered TRANSIENT_LOCAL (rosbag2's player adapts the same way: a latched
    offer to subscribers of a topic that also had a volatile publisher would replay as latched what was not)."""
    profiles = getattr(connection.ext, "offered_qos_profiles", None) or []
    return bool(profiles) and all(getattr(p, "durability", None) == QosDurability.TRANSIENT_LOCAL for p in profiles)


class BagPlayer:
    """Publishes a bag's connections through one rclpy node, timed like the recording."""

    def __init__(self, node, reader: Reader, options: PlayOptions):
        self.node = node
        self.reader = reader
        self.options = options
        self.summary = PlaySummary()
        self.publishers = {}  # output topic -> publisher
        self.connections = []  # connections to read
        self._topic_of = {}  # connection id -> output topic
        played_as = {}  # output topic -> (message type, bag topic) of its publisher
        wanted = set(options.topics)
        for conn in reader.connections:
            if wanted and conn.topic not in wanted:
                continue
            if options.clock_hz is not None and conn.topic == "/clock":
                continue  # like ros2 bag play --clock: our clock replaces the recorded one
            try:
                msg_type = message_class(conn.msgtype)
            except UnknownMessageType as exc:
                node.get_logger().warning(f"skipping {conn.topic}: {exc}")
                self.summary.skipped_topics.append(conn.topic)
                continue
            try:
                topic = node.resolve_topic_name(conn.topic)   # after the node's remap rules (--remap)
            except (RCLError, InvalidTopicNameException) as exc:   # a bag topic named '/b c'
                reason = re.sub(r", at \S+:\d+$", "", str(exc)).removeprefix("failed to resolve name: ")
                node.get_logger().warning(f"skipping {conn.topic!r}: not a valid ROS topic name ({reason})")
                self.summary.skipped_topics.append(repr(conn.topic))
                continue
            if topic in played_as and played_as[topic][0] != conn.msgtype:
                first_type, first_topic = played_as[topic]
                if first_topic != conn.topic:   # two bag topics remapped onto one: the user's --remap
                    raise PlayConflict(
                        f"--remap would publish {conn.topic} ({conn.msgtype}) and {first_topic} ({first_type}) "
                        f"both on {topic}; a topic carries one message type")
                node.get_logger().warning(f"skipping the {conn.msgtype} messages of {conn.topic}: the topic is "
                                          f"played as {first_type} (the bag recorded it with two types)")
                self.summary.skipped_topics.append(f"{conn.topic} ({conn.msgtype})")
                continue
            played_as.setdefault(topic, (conn.msgtype, conn.topic))
            if topic not in self.publishers:
                if conn.topic in STATIC_TOPICS or _recorded_transient_local(conn):
                    qos = QoSProfile(depth=max(1, conn.msgcount), history=HistoryPolicy.KEEP_LAST,
                                     reliability=ReliabilityPolicy.RELIABLE,
                                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
                else:
                    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
                # the bag's name: rcl applies the remap rules to it (the resolved name would be remapped twice)
                self.publishers[topic] = node.create_publisher(msg_type, conn.topic, qos)
            self.connections.append(conn)
            self._topic_of[conn.id] = topic
        missing = wanted - {c.topic for c in reader.connections}
        if missing:
            node.get_logger().warning(f"topics not in the bag: {', '.join(sorted(missing))}")
        self.summary.topics = len(self.publishers)
        self.clock_publisher = (node.create_publisher(Clock, "/clock", 10)
                                if options.clock_hz is not None else None)

    def wait_for_subscribers(self, stop: threading.Event) -> None:
        """Hold until every played topic has a subscriber, at most ``options.wait_for_subscribers`` s."""
        deadline = time.monotonic() + self.options.wait_for_subscribers
        while not stop.is_set():
            lonely = [t for t, pub in self.publishers.items() if pub.get_subscription_count() == 0]
            if not lonely:
                return
            if time.monotonic() >= deadline:
                self.node.get_logger().warning(f"no subscribers after {self.options.wait_for_subscribers:g} s "
                                               f"on {', '.join(lonely)}; playing anyway")
                return
            stop.wait(0.05)

    def flush(self, timeout_s: float = 2.0) -> None:
        """Wait until subscribers acknowledged what was published (reliable topics): destroying the node
        right after the last publish loses samples still in flight (seen: the bag's last /tf)."""
        from rclpy.duration import Duration

        deadline = time.monotonic() + timeout_s
        for publisher in [*self.publishers.values(), self.clock_publisher]:
            if publisher is not None:
                publisher.wait_for_all_acked(Duration(seconds=max(deadline - time.monotonic(), 0.0)))

    def _publish_clock(self, bag_ns: int) -> None:
        if not CLOCK_RANGE_NS[0] <= bag_ns <= CLOCK_RANGE_NS[1]:   # metadata.yaml understated the bag's times
            raise ValueError(f"a message at {bag_ns} ns is beyond what /clock (builtin_interfaces/Time) holds")
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        self.clock_publisher.publish(msg)

    def _sleep_until(self, stamp_ns: int, wall_start: float, bag_start: int, stop: threading.Event) -> None:
        """Wait until bag time ``stamp_ns`` is due, publishing ``/clock`` at its rate meanwhile.

        Bag times stay integers: a float of ~1.7e18 ns is only exact to 256 ns, enough to make the
        clock step back when the message's own stamp follows.
        """
        wall_target = wall_start + (stamp_ns - bag_start) / 1e9 / self.options.rate
        period = 1.0 / self.options.clock_hz if self.clock_publisher else None
        while not stop.is_set():
            remaining = wall_target - time.monotonic()
            if remaining <= 0:
                return
            if period is None:
                stop.wait(min(remaining, MAX_WAIT_SLICE_S))
                continue
            stop.wait(min(remaining, period, MAX_WAIT_SLICE_S))
            elapsed_ns = int((time.monotonic() - wall_start) * self.options.rate * 1e9)
            self._publish_clock(min(bag_start + elapsed_ns, stamp_ns))

    def play(self, stop: threading.Event) -> PlaySummary:
        """Play once, or until ``stop`` with ``--loop``, each pass after ``--delay`` (ros2 bag play: "Sleep
        duration before play (each loop)"); returns the summary."""
        bag_start = self.reader.start_time + int(self.options.start_offset * 1e9)
        wall_begin = time.monotonic()
        while not stop.wait(self.options.delay):
            wall_start = time.monotonic()
            last_ns = bag_start
            messages_before = self.summary.messages
            for conn, stamp_ns, raw in self.reader.messages(connections=self.connections, start=bag_start):
                self._sleep_until(stamp_ns, wall_start, bag_start, stop)
                if stop.is_set():
                    break
                if self.clock_publisher:
                    self._publish_clock(stamp_ns)
                self.publishers[self._topic_of[conn.id]].publish(raw)
                self.summary.messages += 1
                last_ns = stamp_ns
            self.summary.bag_seconds += (last_ns - bag_start) / 1e9
            self.summary.passes += 1
            if not self.options.loop:
                break
            if messages_before == self.summary.messages and not stop.is_set():
                # an empty pass would repeat at once, forever, at 100 % CPU (an empty bag, --start-offset
                # past the end, --topics without messages)
                self.node.get_logger().warning("nothing to play in this pass (no message at or after the "
                                               "start offset); not looping")
                break
        self.summary.wall_seconds = time.monotonic() - wall_begin
        self.summary.interrupted = stop.is_set()
        return self.summary


def split_ros_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(own arguments, --ros-args section)``; ``rclpy``'s ``remove_ros_args`` would also eat our
    ``--remap old:=new`` values, which rcl still reads as (deprecated) remap rules."""
    own, ros, inside = [], [], False
    for arg in argv:
        if arg == "--ros-args":
            inside = True
            ros.append(arg)
        elif inside and arg == "--":
            inside = False
        else:
            (ros if inside else own).append(arg)
    return own, ros


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="bag_player", description=__doc__.splitlines()[0])
    parser.add_argument("bag", help="rosbag2 folder (metadata.yaml + .mcap or .db3)")
    parser.add_argument("-r", "--rate", type=FLAG_BOUNDS["rate"], default=1.0,
                        help="playback speed factor (default 1; 1e-6 to 1e6)")
    parser.add_argument("-l", "--loop", action="store_true", help="play again from the start until Ctrl-C")
    parser.add_argument("--topics", nargs="+", default=[], metavar="TOPIC", help="play only these topics")
    parser.add_argument("-m", "--remap", nargs="+", default=[], metavar="OLD:=NEW",
                        help="publish topic OLD as NEW")
    parser.add_argument("--start-offset", type=FLAG_BOUNDS["start_offset"], default=0.0, metavar="SECONDS",
                        help="skip this many seconds from the bag's start (at most 1e9)")
    parser.add_argument("-d", "--delay", type=FLAG_BOUNDS["delay"], default=0.0, metavar="SECONDS",
                        help="sleep this long before each pass, as ros2 bag play (after --wait-for-subscribers; "
                             "at most 1e9)")
    parser.add_argument("--clock", type=FLAG_BOUNDS["clock"], nargs="?", const=DEFAULT_CLOCK_HZ, default=None,
                        metavar="HZ",
                        help=f"publish /clock with bag time at HZ (default {DEFAULT_CLOCK_HZ:g} when given)")
    parser.add_argument("--wait-for-subscribers", type=FLAG_BOUNDS["wait_for_subscribers"], default=0.0,
                        metavar="SECONDS",
                        help="before playing, wait up to SECONDS until every topic has a subscriber")
    return parser


def options_from_args(args: argparse.Namespace) -> PlayOptions:
    """Options of parsed arguments; ranges (:data:`FLAG_BOUNDS`) are checked again here for callers that
    build the Namespace themselves."""
    parser_errors = [f"--{name.replace('_', '-')} {error}" for name, bounds in FLAG_BOUNDS.items()
                     if getattr(args, name) is not None and (error := bounds.error(getattr(args, name)))]
    if parser_errors:
        raise argparse.ArgumentTypeError("; ".join(parser_errors))
    return PlayOptions(rate=args.rate, loop=args.loop, topics=list(args.topics),
                       remap=parse_remaps(args.remap), start_offset=args.start_offset, delay=args.delay,
                       clock_hz=args.clock, wait_for_subscribers=args.wait_for_subscribers)


def clock_range_error(reader, options: PlayOptions) -> str | None:
    """Why ``--clock`` cannot publish this bag's times (outside :data:`CLOCK_RANGE_NS`), or None."""
    if options.clock_hz is None or not reader.message_count:
        return None
    first = reader.start_time + int(options.start_offset * 1e9)
    low, high = CLOCK_RANGE_NS
    if first < low or reader.end_time - 1 > high:   # rosbags' end_time is the last stamp + 1
        return (f"cannot publish /clock for bag {reader.path}: its times ({reader.start_time} to "
                f"{reader.end_time - 1} ns) are not all within 0 to {high} ns, what builtin_interfaces/Time "
                "(int32 seconds) and ROS time (>= 0) hold; play it without --clock")
    return None


def main(argv: list[str] | None = None) -> int:
    own_args, ros_args = split_ros_args(sys.argv if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(own_args[1:])
    try:
        options = options_from_args(args)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    try:
        reader = open_bag(args.bag)
    except BagError as exc:
        say(f"bag_player: {exc}")
        return 2

    try:
        mismatch = start_time_mismatch(reader)
    except damaged_bag_errors() as exc:
        reader.close()
        say(f"bag_player: {damaged_bag_line(reader.path, exc)}")
        return 2
    if mismatch:
        reader.close()
        say(f"bag_player: cannot read bag {reader.path}: metadata.yaml does not match its storage file ({mismatch}); "
            f"'xdrcdepth bag-reindex --force {reader.path}' rewrites metadata.yaml from the file")
        return 2
    if error := clock_range_error(reader, options):
        reader.close()
        say(f"bag_player: {error}")
        return 2
    try:
        stop = init_ros_with_stop_event(own_args[:1] + ros_args)
        node = create_tool_node("bag_player", cli_args=remap_arguments(options.remap))
    except RosArgumentError as exc:
        reader.close()
        say(f"bag_player: {exc}")
        return 2
    try:
        try:
            player = BagPlayer(node, reader, options)
        except PlayConflict as exc:
            say(f"bag_player: {exc}")
            return 2
        if not player.publishers:
            say(f"bag_player: nothing to play in {reader.path} (topics: "
                f"{', '.join(c.topic for c in reader.connections) or 'none'})")
            return 1
        if options.wait_for_subscribers > 0:
            player.wait_for_subscribers(stop)
        try:
            summary = player.play(stop)
        except damaged_bag_errors() as exc:
            say(f"bag_player: {damaged_bag_line(reader.path, exc)}")
            return 2
        except Exception as exc:  # any other bad row mid-bag: report it against the bag, not a traceback
            say(f"bag_player: error while playing bag {reader.path}: {exc}")
            return 2
        print(summary.line(Path(reader.path), options.rate), flush=True)
        player.flush()
        return 0
    finally:
        reader.close()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
