"""``xdrcdepth bag-reindex BAG``: finalise a bag whose recording was killed (SIGKILL, OOM, power loss, full
disk), as ``ros2 bag reindex`` does.

``bag_recorder`` records in place (:mod:`.mcap_storage`): complete checksummed chunks reach the file at
least twice a second, ``metadata.yaml`` and the MCAP summary only at the end. After a crash the folder holds
the ``.mcap`` without them; this command reads it record by record, verifies each chunk's CRC32 (a chunk
that fails is skipped and counted), stops at the torn tail of the last write, and rewrites the file with
its summary and footer plus ``metadata.yaml``: the bag then plays (``bag_player``, ``ros2 bag play``) and
reads (rosbags, Foxglove). The original file is replaced only when the new one is complete.

sqlite3 bags (rows committed twice a second) need only their ``metadata.yaml``, rebuilt from the tables.

A bag that already opens, and (MCAP) whose every chunk passes its CRC, is left alone (``--force`` rebuilds it
anyway); one with a corrupt chunk is rebuilt without that chunk. Exit codes: 0 recovered or
already complete, 2 not a bag folder / nothing recoverable, 1 could not write.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from xdrcdepth_core.atomic import temp_prefix
from xdrcdepth_core.cli_args import os_error_line, path_argument, say
from xdrcdepth_ros.bag.decompression import bounded_reader, decompress_chunk
from xdrcdepth_ros.bag.files import MAX_READ_BYTES
from xdrcdepth_ros.bag.mcap_storage import MAGIC, Connection, McapBagWriter, bag_metadata, write_metadata_yaml

PROG = "xdrcdepth bag-reindex"


class ReindexError(RuntimeError):
    """The folder holds nothing this command can recover; the message names it."""


@dataclass
class ReindexSummary:
    bag: Path
    storage: str
    messages: int = 0
    topics: int = 0
    chunks: int = 0
    corrupt_chunks: int = 0
    torn_bytes: int = 0
    skipped_messages: int = 0
    already_complete: bool = False
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.already_complete:
            return f"bag-reindex: {self.bag} is complete already ({self.storage}); nothing to do (--force rebuilds)"
        text = (f"bag-reindex: {self.bag} ({self.storage}): {self.messages} messages on {self.topics} topics "
                f"recovered")
        if self.storage == "mcap":
            text += f" from {self.chunks} chunks"
        if self.torn_bytes:
            text += f"; dropped the torn tail of the last write ({self.torn_bytes} bytes)"
        if self.corrupt_chunks:
            text += f"; skipped {self.corrupt_chunks} chunks failing their CRC"
        if self.skipped_messages:
            text += f"; skipped {self.skipped_messages} messages of unknown channels"
        return text + "".join(f"; {note}" for note in self.notes)


# -- mcap -----------------------------------------------------------------------------------------------

def _records(data: bytes):
    """``(opcode, body)`` of the records in ``data`` (a chunk's content); ValueError if malformed."""
    offset = 0
    while offset < len(data):
        if offset + 9 > len(data):
            raise ValueError("record header past the end of the chunk")
        op, length = struct.unpack_from("<BQ", data, offset)
        if offset + 9 + length > len(data):
            raise ValueError("record past the end of the chunk")
        yield op, data[offset + 9:offset + 9 + length]
        offset += 9 + length


class McapScan:
    """Reads an MCAP file record by record, tolerating a torn end; yields schemas, channels, messages."""

    def __init__(self, path: Path):
        self.path = path
        self.chunks = 0
        self.corrupt_chunks = 0
        self.torn_bytes = 0
        self.data_end_seen = False

    def _check_size(self, nbytes: int, offset: int, how: str) -> None:
        """A record (or a chunk once decompressed) over :data:`MAX_READ_BYTES` is refused, the bag left as it is:
        skipped, it would be gone from the rebuilt file."""
        if nbytes > MAX_READ_BYTES:
            raise ReindexError(f"{self.path}: the record at byte {offset} holds {nbytes / 2**20:.0f} MiB{how}, more "
                               f"than the {MAX_READ_BYTES >> 20} MiB the bag tools read at once; the bag is left as "
                               "it is")

    def __iter__(self):
        from mcap.data_stream import ReadDataStream
        from mcap.opcode import Opcode
        from mcap.records import Channel, Chunk, Message, Schema

        readers = {Opcode.SCHEMA: Schema.read, Opcode.CHANNEL: Channel.read,
                   Opcode.MESSAGE: lambda stream, length: Message.read(stream, length)}

        def parse(op, body):
            stream = ReadDataStream(io.BytesIO(body))
            return readers[op](stream, len(body)) if op == Opcode.MESSAGE else readers[op](stream)

        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise ReindexError(f"{self.path} is not an MCAP file (bad magic)")
            offset = len(MAGIC)
            while True:
                head = f.read(9)
                if len(head) < 9:
                    self.torn_bytes = len(head)
                    return
                op, length = struct.unpack("<BQ", head)
                if offset + 9 + length > size:
                    self.torn_bytes = size - offset
                    return
                self._check_size(length, offset, "")
                body = f.read(length)
                record_offset, offset = offset, offset + 9 + length
                if op == Opcode.DATA_END:
                    self.data_end_seen = True
                    return
                if op in readers:
                    yield parse(op, body)
                elif op == Opcode.CHUNK:
                    try:
                        chunk = Chunk.read(ReadDataStream(io.BytesIO(body)))
                    except Exception:  # noqa: BLE001 - a chunk record that does not parse: skip it, count it
                        self.corrupt_chunks += 1
                        continue
                    self._check_size(chunk.uncompressed_size, record_offset, " once decompressed")
                    try:
                        data = decompress_chunk(chunk.data, chunk.compression, chunk.uncompressed_size)
                        if len(data) != chunk.uncompressed_size or (
                                chunk.uncompressed_crc and zlib.crc32(data) != chunk.uncompressed_crc):
                            raise ValueError("CRC or size mismatch")
                        inner = [parse(iop, ibody) for iop, ibody in _records(data) if iop in readers]
                    except Exception:  # noqa: BLE001 - any damage inside a chunk: skip the chunk, count it
                        self.corrupt_chunks += 1
                        continue
                    self.chunks += 1
                    yield from inner


def _qos_list(text: str) -> list:
    try:
        value = yaml.safe_load(text) if text else []
    except yaml.YAMLError:
        return []
    return value if isinstance(value, list) else []


def _digest(msgtype: str) -> str:
    from rosbags.typesys import Stores, get_typestore

    try:
        return get_typestore(Stores.ROS2_KILTED).hash_rihs01(msgtype)
    except Exception:  # noqa: BLE001 - a type this typestore does not know: no hash, as ros2 bag writes ''
        return ""


def reindex_mcap(bag: Path, source: Path) -> ReindexSummary:
    from mcap.records import Channel, Schema

    summary = ReindexSummary(bag, "mcap")
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(bag), suffix=".tmp", dir=bag.parent))
    try:
        writer = McapBagWriter(tmp / bag.name, file_name=source.name, flush_period=float("inf")).open()
        schemas: dict[int, Schema] = {}
        channels: dict[int, Connection] = {}
        scan = McapScan(source)
        try:
            for record in scan:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    schema = schemas.get(record.schema_id)
                    if record.id in channels or schema is None:
                        continue
                    channels[record.id] = writer.add_channel(
                        record.topic, schema.name, schema.data.decode(), digest=_digest(schema.name),
                        qos=_qos_list(record.metadata.get("offered_qos_profiles", "")),
                        serialization_format=record.message_encoding, schema_encoding=schema.encoding)
                elif record.channel_id in channels:
                    writer.write(channels[record.channel_id], record.log_time, record.data)
                else:
                    summary.skipped_messages += 1
            writer.close()
        except BaseException:
            writer.abort()
            raise
        if not channels and not summary.skipped_messages and scan.chunks == 0 and scan.corrupt_chunks:
            raise ReindexError(f"{source}: no readable chunk left")
        os.replace(tmp / bag.name / source.name, source)
        os.replace(tmp / bag.name / "metadata.yaml", bag / "metadata.yaml")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary.messages = sum(writer.counts.values())
    summary.topics = len(writer.connections)
    summary.chunks, summary.corrupt_chunks, summary.torn_bytes = scan.chunks, scan.corrupt_chunks, scan.torn_bytes
    return summary


# -- sqlite3 ----------------------------------------------------------------------------------------------

def reindex_sqlite(bag: Path, source: Path) -> ReindexSummary:
    summary = ReindexSummary(bag, "sqlite3")
    try:
        db = sqlite3.connect(f"file:{source}", uri=True)     # rolls back a hot journal: committed rows stay
        try:
            columns = {row[1] for row in db.execute("PRAGMA table_info(topics)")}
            digest = "type_description_hash" if "type_description_hash" in columns else "''"
            topics = db.execute(f"SELECT id, name, type, serialization_format, offered_qos_profiles, {digest} "
                                "FROM topics ORDER BY id").fetchall()
            stats = db.execute("SELECT topic_id, COUNT(*), MIN(timestamp), MAX(timestamp) FROM messages "
                               "GROUP BY topic_id").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise ReindexError(f"{source}: not a readable rosbag2 sqlite3 database ({exc})") from None
    connections = [Connection(tid, name, msgtype, digest_ or "", fmt, _qos_list(qos))
                   for tid, name, msgtype, fmt, qos, digest_ in topics]
    counts = {tid: n for tid, n, _, _ in stats}
    starts = [lo for _, _, lo, _ in stats]
    ends = [hi for _, _, _, hi in stats]
    write_metadata_yaml(bag, bag_metadata([source.name], "sqlite3", connections, counts,
                                          min(starts, default=0), max(ends, default=0)))
    summary.messages, summary.topics = sum(counts.values()), len(connections)
    return summary


# -- command ----------------------------------------------------------------------------------------------

def bag_opens(bag: Path) -> bool:
    if not (bag / "metadata.yaml").is_file():
        return False
    try:
        with bounded_reader(bag):
            return True
    except Exception:  # noqa: BLE001 - any reader error means: not complete
        return False


def mcap_has_corrupt_chunks(source: Path) -> bool:
    """Whether a chunk of the MCAP file fails its CRC (or cannot be read): rosbags opens such a file from its
    summary and fails only when it reaches the chunk, so opening is no proof the bag is whole."""
    scan = McapScan(source)
    for _ in scan:
        pass
    return scan.corrupt_chunks > 0


def bag_folder(bag: str | os.PathLike) -> Path:
    """The bag folder ``bag`` names: itself, or the folder of the storage file given instead."""
    bag = Path(bag)
    return bag.parent if bag.is_file() and bag.suffix in (".mcap", ".db3") else bag


def reindex(bag: str | os.PathLike, force: bool = False) -> ReindexSummary:
    """Finalise the bag folder ``bag`` (or the one holding the storage file ``bag``; see the module docstring)."""
    bag = bag_folder(bag)
    if not bag.is_dir():
        raise ReindexError(f"{bag} is not a folder (give the bag folder)")
    storage_files = sorted(bag.glob("*.mcap")) + sorted(bag.glob("*.db3"))
    if not storage_files:
        raise ReindexError(f"{bag} holds no .mcap or .db3 file: nothing to reindex")
    if len(storage_files) > 1:
        raise ReindexError(f"{bag} holds several storage files ({', '.join(p.name for p in storage_files)}); "
                           "split bags are not supported")
    source = storage_files[0]
    if not source.is_file():
        raise ReindexError(f"{source} is not a file (a folder or device where the bag's data belongs): nothing to "
                           "rebuild from")
    if not force and bag_opens(bag) and not (source.suffix == ".mcap" and mcap_has_corrupt_chunks(source)):
        return ReindexSummary(bag, "mcap" if source.suffix == ".mcap" else "sqlite3", already_complete=True)
    return reindex_mcap(bag, source) if source.suffix == ".mcap" else reindex_sqlite(bag, source)


def _user_path(exc: OSError, bag: Path) -> str | Path | None:
    """The path to name for ``exc``: not the hidden temporary the rebuilt bag is written into but the file of
    the bag it was to replace (``os.replace``'s second path), or the bag; None where ``exc`` names a path of
    the user's already."""
    failed = exc.filename if isinstance(exc.filename, str) else ""
    if not any(part.startswith(temp_prefix(bag)) for part in Path(failed).parts):
        return None
    return exc.filename2 if isinstance(exc.filename2, str) else bag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=path_argument, help="bag folder left by an interrupted recording")
    parser.add_argument("--force", action="store_true", help="rebuild even if the bag opens already")


def run(args: argparse.Namespace) -> int:
    try:
        summary = reindex(args.bag, force=args.force)
    except ReindexError as exc:
        say(f"{PROG}: {exc}")
        return 2
    except OSError as exc:
        say(os_error_line(PROG, exc, _user_path(exc, bag_folder(args.bag))))
        return 1
    print(summary.line(), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from xdrcdepth_core.cli_args import ArgumentParser

    parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
