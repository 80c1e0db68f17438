"""rosbag2 folders: written atomically (converters) or in place (the recorder), and replaced only when
what is there is recognisably a bag.

A rosbag2 is a folder (``metadata.yaml`` + the storage files it lists). Two ways of writing one:

* :func:`atomic_bag_writer` (``nuscenes2bag``): the bag is written into a hidden temporary folder next
  to the target (``.<name>.<pid>.<random>.tmp``, :mod:`xdrcdepth_core.atomic`), its files are fsynced,
  and the finished folder is renamed onto the target (``rename`` of a directory is atomic on one file
  system). An exception or Ctrl-C removes the temporary folder; one left by a SIGKILL is removed by the
  next run (:func:`remove_stale_bag_temporaries`).
* :func:`recording_bag_writer` (``bag_recorder``): in place, like ``ros2 bag record``; mcap chunks with
  CRCs flushed at least twice a second (:mod:`.mcap_storage`), sqlite3 committed as often. A killed
  recording keeps all but its last half second; ``xdrcdepth bag-reindex`` finalises it.

Overwriting (``--overwrite``) deletes only a *recognisable bag*: a folder holding ``metadata.yaml`` that
parses as rosbag2 metadata (an integer ``version``, ``storage_identifier`` mcap or sqlite3) and, besides it,
nothing but the storage files it lists, named as that storage's (``.mcap``/``.db3``, and sqlite's
``-journal``/``-wal``/``-shm`` companions). Anything else, e.g. a folder of unrelated files or an
unfinalised recording, is refused with a message naming the folder (:class:`NotABagError`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Iterator

import yaml

from xdrcdepth_core.atomic import remove_stale_temporaries, temp_prefix
from xdrcdepth_ros.bag.mcap_storage import BAG_VERSION, BagWriteError, McapBagWriter

#: Seconds a recorded message may wait in memory before it is written (SIGKILL loses at most this much).
RECORDING_FLUSH_PERIOD_S = 0.5
#: ``--storage`` choices -> rosbags storage plugin names.
STORAGE_CHOICES = ("mcap", "sqlite3")
SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")

__all__ = ["BAG_VERSION", "MAX_READ_BYTES", "BagWriteError", "NotABagError", "STORAGE_CHOICES", "atomic_bag_writer",
           "bag_files", "check_output_folder", "latched_qos", "offered_qos", "recording_bag_writer", "remove_bag",
           "remove_stale_bag_temporaries", "unfinalised_recording"]


class NotABagError(FileExistsError):
    """The output folder exists and is not something we may replace; the message names it."""


def latched_qos():
    """The offered QoS ``ros2 bag record`` stores for ``/tf_static``: RELIABLE, TRANSIENT_LOCAL, depth 1.

    The bag player offers topics recorded with TRANSIENT_LOCAL durability as latched again.
    """
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)
    return Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
               never, never, QosLiveliness.AUTOMATIC, never, False)


def offered_qos(profile):
    """The rosbags ``Qos`` of a publisher's offered ``rclpy.qos.QoSProfile`` (from
    ``get_publishers_info_by_topic``), as ``ros2 bag record`` stores one per publisher in ``offered_qos_profiles``
    (``ros2 bag play`` and ``ros2 bag info -v`` read them): policies by name, durations to the nanosecond."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def duration(value) -> QosTime:
        sec, nsec = divmod(value.nanoseconds, 1_000_000_000)
        return QosTime(sec=sec, nsec=nsec)

    return Qos(QosHistory[profile.history.name], profile.depth, QosReliability[profile.reliability.name],
               QosDurability[profile.durability.name], duration(profile.deadline), duration(profile.lifespan),
               QosLiveliness[profile.liveliness.name], duration(profile.liveliness_lease_duration),
               profile.avoid_ros_namespace_conventions)


#: The most one MCAP chunk (decompressed) or one sqlite3 message may hold for the bag tools to read it: a chunk is
#: decompressed whole and a message copied several times on its way to a publisher (~5x its size in memory; a 34 kB
#: bag with one 1 GiB zstd chunk took 5.3 GB). 256 MiB is ten 4K rgb8 frames; recorders write chunks of about 1 MB.
MAX_READ_BYTES = 256 * 1024 * 1024

#: A metadata.yaml is a few kB per topic; a larger one is not read (YAML parsing costs many times its size).
MAX_METADATA_BYTES = 16 * 1024 * 1024


def read_bag_info(bag: str | os.PathLike) -> dict:
    """The ``rosbag2_bagfile_information`` mapping of ``bag/metadata.yaml``; ``ValueError`` in plain words
    (naming the file) when it is larger than :data:`MAX_METADATA_BYTES`, not YAML, or not that mapping;
    ``OSError`` when it cannot be read."""
    meta = Path(bag) / "metadata.yaml"
    with open(meta, "rb") as f:
        raw = f.read(MAX_METADATA_BYTES + 1)
    if len(raw) > MAX_METADATA_BYTES:
        raise ValueError(f"{meta}: larger than {MAX_METADATA_BYTES} bytes, not a bag's metadata")
    try:
        data = yaml.safe_load(raw.decode())
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{meta}: not YAML ({' '.join(str(exc).split())})") from None
    info = data.get("rosbag2_bagfile_information") if isinstance(data, dict) else None
    if not isinstance(info, dict):
        raise ValueError(f"{meta}: no 'rosbag2_bagfile_information' mapping (found {type(data).__name__})")
    return info


#: The storage file suffix of each ``storage_identifier`` our writers produce (they never compress whole files).
STORAGE_FILE_SUFFIXES = {"mcap": ".mcap", "sqlite3": ".db3"}


def bag_files(path: str | os.PathLike) -> list[Path] | None:
    """The files that make up the bag at ``path`` (metadata.yaml first), or None if it is not
    recognisably a rosbag2 folder: metadata.yaml missing or unparsable, without an integer ``version`` and a
    ``storage_identifier`` of :data:`STORAGE_FILE_SUFFIXES`, listing a file that is missing or not named as a
    storage file of that storage (``<name>.mcap``/``<name>.db3``), or any other entry in the folder. A
    metadata.yaml listing ``thesis.tex`` must not make ``--overwrite`` delete it."""
    path = Path(path)
    meta = path / "metadata.yaml"
    try:
        info = read_bag_info(path)
        listed = [Path(name).name for name in info["relative_file_paths"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    storage = info.get("storage_identifier")
    suffix = STORAGE_FILE_SUFFIXES.get(storage) if isinstance(storage, str) else None
    if suffix is None or type(info.get("version")) is not int:
        return None
    if not listed or not all(isinstance(name, str) and name.endswith(suffix) and name != suffix for name in listed):
        return None
    allowed = {"metadata.yaml", *listed, *(name + c for name in listed for c in SQLITE_COMPANIONS)}
    entries = list(path.iterdir())
    if any(e.name not in allowed or e.is_dir() or e.is_symlink() for e in entries):
        return None
    if not all((path / name).is_file() for name in listed):
        return None
    return [meta] + [e for e in entries if e.name != "metadata.yaml"]


def unfinalised_recording(path: str | os.PathLike) -> Path | None:
    """The storage file of a killed ``bag_recorder`` run at ``path`` (the folder holds exactly
    ``<folder>.mcap`` or ``<folder>.db3`` and nothing else), or None."""
    path = Path(path)
    try:
        entries = list(path.iterdir())
    except OSError:
        return None
    names = {f"{path.name}.mcap", f"{path.name}.db3"}
    if len(entries) == 1 and entries[0].name in names and entries[0].is_file() and not entries[0].is_symlink():
        return entries[0]
    return None


def check_output_folder(path: str | os.PathLike, overwrite: bool) -> bool:
    """May a bag be written at ``path``? False if ``path`` is absent (or, with ``overwrite``, an empty
    folder), True if a recognisable bag there is to be replaced (``overwrite``); raises
    ``FileExistsError`` (exists, no ``overwrite``) or :class:`NotABagError` (not a bag) naming it."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return False
    if not path.is_dir() or path.is_symlink():
        raise NotABagError(f"{path} exists and is not a folder; not touching it")
    if not overwrite:
        raise FileExistsError(f"{path} already exists (remove it or pass --overwrite)")
    if not any(path.iterdir()):
        return False
    if bag_files(path) is None:
        hint = (f" (an unfinalised recording? run 'xdrcdepth bag-reindex {path}')"
                if list(path.glob("*.mcap")) or list(path.glob("*.db3")) else "")
        raise NotABagError(f"refusing to overwrite {path}: it is not a rosbag2 folder (metadata.yaml plus "
                           f"only the storage files it lists){hint}; nothing was deleted")
    return True


def remove_bag(path: str | os.PathLike) -> None:
    """Delete a recognisable bag: its listed files, metadata.yaml last, then the (now empty) folder."""
    path = Path(path)
    files = bag_files(path)
    if files is None:
        raise NotABagError(f"{path} is not a rosbag2 folder; not deleting it")
    for f in files[1:] + files[:1]:
        f.unlink()
    path.rmdir()


def remove_stale_bag_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders killed :func:`atomic_bag_writer` runs left for the bag ``path``."""
    path = Path(path)
    return remove_stale_temporaries(path.parent, lambda target: target == path.name)


def _sqlite_os_error(exc: sqlite3.Error) -> OSError:
    """sqlite reports a full disk as ``database or disk is full`` (SQLITE_FULL), not as an OSError."""
    full = "full" in str(exc).lower()
    return OSError(errno.ENOSPC if full else errno.EIO, os.strerror(errno.ENOSPC) if full else str(exc))


class SqliteBagWriter:
    """rosbags' sqlite3 Writer, committed by ``flush``/``flush_if_due`` so a killed recording keeps its rows.

    After a failed insert or commit (a full disk) the rows that did not reach the file are dropped and
    ``counts`` become what the file holds, so the :class:`BagWriteError` says how many were lost and ``close``
    writes ``metadata.yaml`` from the tables (as ``xdrcdepth bag-reindex`` does), not from what was handed in:
    SQLite rolls a transaction back on a full disk, and rosbags' own ``close`` counted those rows as written."""

    storage = "sqlite3"

    def __init__(self, folder: str | os.PathLike, flush_period: float = 0.5):
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.folder = Path(folder)
        self.flush_period = flush_period
        self._writer = Writer(self.folder, version=BAG_VERSION, storage_plugin=StoragePlugin.SQLITE3)
        self._dirty_since: float | None = None
        self._failed = False
        self.path = self.folder / f"{self.folder.name}.db3"

    def open(self) -> "SqliteBagWriter":
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()           # rosbags creates the folder itself
        self._writer.open()
        return self

    def add_connection(self, *args, **kwargs):
        connection = self._writer.add_connection(*args, **kwargs)
        self._dirty_since = self._dirty_since or time.monotonic()
        self.flush()   # the topic's row at once: a commit that fails later drops messages, never a topic
        return connection

    @property
    def counts(self) -> dict:
        return self._writer.counts

    def write(self, connection, timestamp: int, data: bytes) -> None:
        try:
            self._writer.write(connection, timestamp, data)
        except sqlite3.Error as exc:
            raise self._failure(exc, handed_in=1) from exc
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()
        self.flush_if_due()

    def flush_if_due(self, now: float | None = None) -> None:
        if self._dirty_since is not None and (time.monotonic() if now is None else now) - self._dirty_since \
                >= self.flush_period:
            self.flush()

    def flush(self) -> None:
        if self._dirty_since is None:
            return
        self._dirty_since = None
        try:
            self._writer.storage.conn.commit()
        except sqlite3.Error as exc:
            raise self._failure(exc, handed_in=0) from exc

    def _failure(self, exc: sqlite3.Error, handed_in: int) -> BagWriteError:
        """Keep what still fits, drop the rest, and count what the file holds; ``handed_in``: messages given to
        the writer but not yet in ``counts`` (the one whose insert failed)."""
        conn = self._writer.storage.conn
        claimed = sum(self.counts.values()) + handed_in
        with contextlib.suppress(sqlite3.Error):
            conn.commit()
        with contextlib.suppress(sqlite3.Error):
            conn.rollback()               # what the commit could not keep (a no-op after a commit)
        try:
            held = dict(conn.execute("SELECT topic_id, COUNT(*) FROM messages GROUP BY topic_id").fetchall())
        except sqlite3.Error:
            held = dict.fromkeys(self.counts, 0)   # unreadable: close() leaves the bag to bag-reindex
        for connection_id in self.counts:
            self.counts[connection_id] = held.get(connection_id, 0)
        self._failed = True
        self._dirty_since = None
        return BagWriteError(_sqlite_os_error(exc), self.path, lost=claimed - sum(self.counts.values()))

    def close(self) -> None:
        if self._failed:
            self._close_from_tables()
            return
        try:
            self._writer.close()
        except sqlite3.Error as exc:
            raise BagWriteError(_sqlite_os_error(exc), self.path, lost=0) from exc

    def _close_from_tables(self) -> None:
        """After a failure: ``metadata.yaml`` from what the database holds (``bag-reindex``'s sqlite3 path)."""
        from xdrcdepth_ros.bag.reindex import ReindexError, reindex_sqlite

        self.abort()
        try:
            reindex_sqlite(self.folder, self.path)
        except ReindexError as exc:
            raise BagWriteError(OSError(errno.EIO, str(exc)), self.path, lost=0) from exc
        except OSError as exc:
            raise BagWriteError(exc, self.folder / "metadata.yaml", lost=0) from exc

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.storage.conn.commit()
        with contextlib.suppress(Exception):
            self._writer.abort()


def open_writer(path: Path, storage: str, flush_period: float = float("inf")):
    """An opened writer for a new bag at ``path`` (an absent or empty folder). ``flush_period``: seconds a
    message may wait in memory (inf: chunks close by size only, so a converter's output is deterministic)."""
    if storage not in STORAGE_CHOICES:
        raise ValueError(f"storage must be one of {', '.join(STORAGE_CHOICES)}, got {storage!r}")
    writer = (McapBagWriter(path, flush_period=flush_period) if storage == "mcap"
              else SqliteBagWriter(path, flush_period=flush_period))
    return writer.open()


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_bag_writer(path: str | os.PathLike, storage: str = "mcap", overwrite: bool = False) -> Iterator:
    """An opened bag writer whose bag appears at ``path`` when the block exits cleanly.

    ``path`` must be absent, or (``overwrite``) an empty folder or a recognisable bag
    (the old bag is replaced only after the new one is complete); :func:`check_output_folder` raises
    otherwise, naming the folder.
    """
    if storage not in STORAGE_CHOICES:
        raise ValueError(f"storage must be one of {', '.join(STORAGE_CHOICES)}, got {storage!r}")
    path = Path(path)
    check_output_folder(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_bag_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        writer = open_writer(tmp / path.name, storage)
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        writer.close()
        _fsync_tree(tmp / path.name)
        if path.exists():
            if check_output_folder(path, True):         # checked again: it may have changed meanwhile
                os.rename(path, tmp / "replaced")
            else:
                path.rmdir()                            # an empty folder
        os.rename(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def recording_bag_writer(path: str | os.PathLike, storage: str = "mcap", overwrite: bool = False):
    """An opened writer recording in place at ``path`` (the caller closes or aborts it).

    An existing recognisable bag is deleted first when ``overwrite``; anything else is refused
    (:func:`check_output_folder`)."""
    path = Path(path)
    if check_output_folder(path, overwrite):
        remove_bag(path)
    return open_writer(path, storage, flush_period=RECORDING_FLUSH_PERIOD_S)
