"""rosbag2 ``mcap`` storage written the way ``ros2 bag record`` writes it: in place, in checksummed chunks,
flushed to the file at least every ``flush_period`` seconds, and recoverable after a crash.

File layout (MCAP v0, profile ``ros2``, read by ``rosbags``, ``mcap``/``mcap_ros2``, Foxglove and
``ros2 bag``)::

    magic, Header
    Schema / Channel records            written (and flushed) as soon as a topic is added
    Chunk + its MessageIndex records     one write per chunk; chunk CRC32 over the uncompressed records
    ...
    Metadata "rosbag2", DataEnd (CRC32 of the data section), summary, summary offsets, Footer, magic
    (written in one piece by ``close``)

``metadata.yaml`` (rosbag2 metadata version 9) is written atomically by ``close``. Every write of the file
is a complete record group; when one fails (disk full, file size limit, I/O error) the file is truncated
back to the end of the previous group, so the file only ever holds whole records, and
:class:`BagWriteError` tells the caller how many messages were lost. A SIGKILL/OOM leaves whole chunks
plus at most one partial write at the end and no ``metadata.yaml``: ``xdrcdepth bag-reindex BAG``
(:mod:`xdrcdepth_ros.bag.reindex`) checks the chunk CRCs, drops the torn tail and finalises the bag.

Messages wait in memory for at most ``flush_period`` (the owner calls :meth:`flush_if_due` regularly;
``write`` does too) or until the chunk holds ``chunk_size`` bytes, so a killed recorder loses at most
the last ``flush_period`` of data (page cache survives the process; ``close`` fsyncs).
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mcap.data_stream import RecordBuilder
from mcap.opcode import Opcode
from mcap.records import (Channel, Chunk, ChunkIndex, DataEnd, Footer, Header, Message, MessageIndex, Metadata,
                          MetadataIndex, Schema, Statistics, SummaryOffset)

try:
    import zstandard
except ImportError:  # mcap depends on it; without it chunks are stored uncompressed
    zstandard = None

MAGIC = b"\x89MCAP0\r\n"
PROFILE = "ros2"
LIBRARY = "xdrcdepth rosbag2 mcap writer"
#: rosbag2 metadata version written (ROS 2 Jazzy/Kilted write 9).
BAG_VERSION = 9
CHUNK_SIZE = 1 << 20
FLUSH_PERIOD_S = 0.5
_UNSET_START = 2 ** 63 - 1


class BagWriteError(OSError):
    """Writing the bag failed; ``lost`` messages (the chunk being written) are not in the file.

    Everything written before is intact. ``finalized`` says whether the bag could still be closed
    (summary and ``metadata.yaml`` written); otherwise ``xdrcdepth bag-reindex`` finalises it later.
    """

    def __init__(self, cause: OSError, path: Path, lost: int, finalized: bool = False):
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.cause = cause
        self.path = path
        self.lost = lost
        self.finalized = finalized


@dataclass
class Connection:
    """One topic of the bag (what ``write`` takes)."""

    id: int
    topic: str
    msgtype: str
    digest: str = ""
    serialization_format: str = "cdr"
    qos: list = field(default_factory=list)       # metadata v9 dicts (rosbags ``dump_qos_v9``)


def qos_dicts(profiles) -> list:
    """rosbags ``Qos`` tuples -> the v9 metadata dicts (as ``ros2 bag record`` stores them)."""
    from rosbags.rosbag2.metadata import dump_qos_v9

    return dump_qos_v9(list(profiles))


def bag_metadata(files: list[str], storage: str, connections: list[Connection], counts: dict[int, int],
                 start_ns: int, end_ns: int) -> dict:
    """The ``rosbag2_bagfile_information`` of a bag (the content rosbags' Writer gives metadata.yaml)."""
    count = sum(counts.values())
    duration = max(0, end_ns - start_ns) if count else 0
    start = start_ns if count else _UNSET_START
    return {"rosbag2_bagfile_information": {
        "version": BAG_VERSION,
        "storage_identifier": storage,
        "relative_file_paths": list(files),
        "duration": {"nanoseconds": duration},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": count,
        "topics_with_message_count": [
            {"topic_metadata": {"name": c.topic, "type": c.msgtype, "serialization_format": c.serialization_format,
                                "offered_qos_profiles": c.qos, "type_description_hash": c.digest},
             "message_count": counts.get(c.id, 0)} for c in connections],
        "compression_format": "",
        "compression_mode": "",
        "files": [{"path": name, "starting_time": {"nanoseconds_since_epoch": start},
                   "duration": {"nanoseconds": duration}, "message_count": count} for name in files],
        "custom_data": None,
        "ros_distro": "kilted",
    }}


def write_metadata_yaml(folder: Path, metadata: dict) -> None:
    from xdrcdepth_core.atomic import atomic_write_bytes

    atomic_write_bytes(folder / "metadata.yaml", yaml.safe_dump(metadata, default_flow_style=False,
                                                                sort_keys=False).encode())


class McapBagWriter:
    """A rosbag2 folder with one ``<name>.mcap`` (same surface as the ``rosbags`` Writer the tools used).

    ``open()`` creates the folder (it may exist if empty) and the file; ``add_connection``, ``write``,
    ``flush``/``flush_if_due``, ``close``. Not thread-safe: one thread writes.
    """

    storage = "mcap"

    def __init__(self, folder: str | os.PathLike, chunk_size: int = CHUNK_SIZE,
                 flush_period: float = FLUSH_PERIOD_S, compression: str = "zstd", file_name: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / (file_name or f"{self.folder.name}.mcap")
        self.chunk_size = chunk_size
        self.flush_period = flush_period
        self.compression = compression if (compression != "zstd" or zstandard is not None) else ""
        self.connections: list[Connection] = []
        self.counts: dict[int, int] = {}
        self._schemas: dict[str, Schema] = {}
        self._channels: list[Channel] = []
        self._chunk_indexes: list[ChunkIndex] = []
        self._fd: int | None = None
        self._end = 0                 # file offset after the last complete write
        self._data_crc = 0
        self._start_ns, self._end_ns = _UNSET_START, 0
        self._chunk = RecordBuilder()
        self._chunk_index: dict[int, list[tuple[int, int]]] = {}
        self._chunk_messages = 0
        self._chunk_times = (_UNSET_START, 0)
        self._pending_since: float | None = None
        self.closed = False

    # -- file primitives --------------------------------------------------------------------------
    def _write(self, data: bytes, crc: bool = True) -> None:
        """Append ``data`` in full, or truncate back to the previous end and raise :class:`BagWriteError`."""
        view, start = memoryview(data), self._end
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            try:
                os.ftruncate(self._fd, start)
                os.lseek(self._fd, start, os.SEEK_SET)
            except OSError:
                pass
            raise BagWriteError(exc, self.path, lost=0) from exc
        self._end = start + len(data)
        if crc:
            self._data_crc = zlib.crc32(data, self._data_crc)

    # -- rosbags Writer API -------------------------------------------------------------------------
    def open(self) -> "McapBagWriter":
        self.folder.mkdir(parents=True, exist_ok=True)
        if any(self.folder.iterdir()):
            raise FileExistsError(f"{self.folder} is not empty")
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise BagWriteError(exc, self.path, lost=0) from exc
        builder = RecordBuilder()
        Header(profile=PROFILE, library=LIBRARY).write(builder)
        self._write(MAGIC + builder.end())
        return self

    def add_connection(self, topic: str, msgtype: str, *, typestore=None, msgdef: str | None = None,
                       rihs01: str | None = None, serialization_format: str = "cdr",
                       offered_qos_profiles=()) -> Connection:
        """Register a topic (schema from ``typestore`` unless ``msgdef``/``rihs01`` are given); returns its
        connection. The schema and channel records are written to the file at once."""
        if msgdef is None or rihs01 is None:
            if typestore is None:
                raise ValueError(f"{topic}: need a typestore or msgdef + rihs01 for {msgtype}")
            msgdef, _ = typestore.generate_msgdef(msgtype, ros_version=2)
            rihs01 = typestore.hash_rihs01(msgtype)
        return self.add_channel(topic, msgtype, msgdef, digest=rihs01, qos=qos_dicts(offered_qos_profiles),
                                serialization_format=serialization_format)

    def add_channel(self, topic: str, msgtype: str, msgdef: str, digest: str = "", qos: list | None = None,
                    serialization_format: str = "cdr", schema_encoding: str | None = None) -> Connection:
        """Register a topic from its schema text and v9 QoS dicts (what ``bag-reindex`` recovers)."""
        if any(c.topic == topic and c.msgtype == msgtype for c in self.connections):
            raise ValueError(f"{topic} ({msgtype}) was added already")
        builder = RecordBuilder()
        schema = self._schemas.get(msgtype)
        if schema is None:
            encoding = schema_encoding or ("ros2idl" if msgdef.startswith("=" * 80 + "\nIDL: ") else "ros2msg")
            schema = Schema(id=len(self._schemas) + 1, name=msgtype, encoding=encoding, data=msgdef.encode())
            schema.write(builder)
        qos = list(qos or [])
        channel = Channel(id=len(self._channels) + 1, topic=topic, message_encoding=serialization_format,
                          schema_id=schema.id,
                          metadata={"offered_qos_profiles": yaml.safe_dump(qos, default_flow_style=False).strip()
                                    if qos else ""})
        channel.write(builder)
        self._write(builder.end())
        self._schemas[msgtype] = schema
        self._channels.append(channel)
        connection = Connection(channel.id, topic, msgtype, digest or "", serialization_format, qos)
        self.connections.append(connection)
        self.counts[connection.id] = 0
        return connection

    def write(self, connection: Connection, timestamp: int, data: bytes) -> None:
        """Queue one message; the chunk goes to the file when full or ``flush_period`` old."""
        if self._chunk_messages == 0:
            self._pending_since = time.monotonic()
        self._chunk_index.setdefault(connection.id, []).append((timestamp, self._chunk.count))
        Message(channel_id=connection.id, sequence=0, log_time=timestamp, publish_time=timestamp,
                data=bytes(data)).write(self._chunk)
        self._chunk_messages += 1
        lo, hi = self._chunk_times
        self._chunk_times = (min(lo, timestamp), max(hi, timestamp))
        if self._chunk.count >= self.chunk_size:
            self.flush()
        else:
            self.flush_if_due()

    @property
    def pending_messages(self) -> int:
        return self._chunk_messages

    def flush_if_due(self, now: float | None = None) -> None:
        if self._pending_since is not None and (time.monotonic() if now is None else now) - self._pending_since \
                >= self.flush_period:
            self.flush()

    def flush(self) -> None:
        """Write the pending chunk (one write: chunk + message indexes). On failure the chunk's messages
        are dropped and :class:`BagWriteError` says how many."""
        if not self._chunk_messages:
            return
        records = self._chunk.end()
        index, n = self._chunk_index, self._chunk_messages
        start_ns, end_ns = self._chunk_times
        self._chunk_index, self._chunk_messages, self._pending_since = {}, 0, None
        self._chunk_times = (_UNSET_START, 0)
        compressed = zstandard.compress(records) if self.compression == "zstd" else records
        builder = RecordBuilder()
        Chunk(compression=self.compression, data=compressed, message_start_time=start_ns, message_end_time=end_ns,
              uncompressed_crc=zlib.crc32(records), uncompressed_size=len(records)).write(builder)
        chunk_length = builder.count
        offsets = {}
        for cid in sorted(index):
            offsets[cid] = self._end + builder.count
            MessageIndex(channel_id=cid, records=index[cid]).write(builder)
        chunk_start = self._end
        try:
            self._write(builder.end())
        except BagWriteError as exc:
            exc.lost = n
            raise
        self._chunk_indexes.append(ChunkIndex(
            message_start_time=start_ns, message_end_time=end_ns, chunk_start_offset=chunk_start,
            chunk_length=chunk_length, message_index_offsets=offsets,
            message_index_length=self._end - chunk_start - chunk_length, compression=self.compression,
            compressed_size=len(compressed), uncompressed_size=len(records)))
        for cid, entries in index.items():
            self.counts[cid] += len(entries)
        self._start_ns, self._end_ns = min(self._start_ns, start_ns), max(self._end_ns, end_ns)

    def metadata(self) -> dict:
        return bag_metadata([self.path.name], self.storage, self.connections, self.counts, self._start_ns,
                            self._end_ns)

    def close(self) -> None:
        """Flush, write the summary and footer, fsync, then ``metadata.yaml``. On a write error the file is
        left with its complete chunks (unfinalised) and :class:`BagWriteError` is raised."""
        if self.closed:
            return
        lost = 0
        try:
            self.flush()
        except BagWriteError as exc:
            lost = exc.lost
        try:
            self._write_tail()
            os.fsync(self._fd)
        except OSError as exc:
            os.close(self._fd)
            self.closed = True
            raise BagWriteError(getattr(exc, "cause", exc), self.path, lost=lost) from exc
        os.close(self._fd)
        self.closed = True
        try:
            write_metadata_yaml(self.folder, self.metadata())
        except OSError as exc:
            raise BagWriteError(exc, self.folder / "metadata.yaml", lost=lost) from exc
        if lost:
            raise BagWriteError(OSError(0, "the last chunk could not be written"), self.path, lost=lost,
                                finalized=True)

    def abort(self) -> None:
        """Close the file as it is (complete chunks, no summary): recoverable with ``bag-reindex``."""
        if not self.closed and self._fd is not None:
            os.close(self._fd)
        self.closed = True

    def _write_tail(self) -> None:
        meta_text = yaml.safe_dump(self.metadata()["rosbag2_bagfile_information"], default_flow_style=False,
                                   sort_keys=False).strip()
        data = RecordBuilder()
        metadata_start = self._end
        Metadata(name="rosbag2", metadata={"serialized_metadata": meta_text}).write(data)
        metadata_length = data.count
        head = data.end()
        data_crc = zlib.crc32(head, self._data_crc)
        tail = RecordBuilder()
        DataEnd(data_section_crc=data_crc).write(tail)
        summary_start = self._end + len(head) + tail.count
        summary = RecordBuilder()
        offsets = []

        def group(opcode, records):
            begin = summary.count
            for record in records:
                record.write(summary)
            if summary.count > begin:
                offsets.append(SummaryOffset(group_opcode=opcode, group_start=summary_start + begin,
                                             group_length=summary.count - begin))

        group(Opcode.SCHEMA, sorted(self._schemas.values(), key=lambda s: s.id))
        group(Opcode.CHANNEL, self._channels)
        count = sum(self.counts.values())
        group(Opcode.STATISTICS, [Statistics(
            message_count=count, schema_count=len(self._schemas), channel_count=len(self._channels),
            attachment_count=0, metadata_count=1, chunk_count=len(self._chunk_indexes),
            message_start_time=self._start_ns if count else 0, message_end_time=self._end_ns if count else 0,
            channel_message_counts={cid: n for cid, n in self.counts.items() if n})])
        group(Opcode.CHUNK_INDEX, self._chunk_indexes)
        group(Opcode.METADATA_INDEX, [MetadataIndex(offset=metadata_start, length=metadata_length, name="rosbag2")])
        summary_offset_start = summary_start + summary.count
        for offset in offsets:
            offset.write(summary)
        summary_bytes = summary.end()
        footer_crc = zlib.crc32(struct.pack("<BQQQ", Opcode.FOOTER, 20, summary_start, summary_offset_start),
                                zlib.crc32(summary_bytes))
        footer = RecordBuilder()
        Footer(summary_start=summary_start, summary_offset_start=summary_offset_start,
               summary_crc=footer_crc).write(footer)
        self._write(head + tail.end() + summary_bytes + footer.end() + MAGIC, crc=False)
