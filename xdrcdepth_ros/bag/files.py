"""rosbag2 folders written atomically with ``rosbags`` (no rclpy): the bag appears under its final name only
when it is complete.

A rosbag2 is a folder (``metadata.yaml`` + one ``.mcap``/``.db3``), so the single-file helper of
:mod:`xdrcdepth_core.atomic` does not apply: the bag is written into a hidden temporary folder next to the
target, its files are fsynced, and the finished folder is renamed onto the target (``rename`` of a
directory is atomic on one file system). An exception (or Ctrl-C) while writing removes the temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

#: ``--storage`` choices -> rosbags storage plugin names.
STORAGE_CHOICES = ("mcap", "sqlite3")
#: rosbag2 metadata version written (ROS 2 Jazzy/Kilted write 9).
BAG_VERSION = 9


def latched_qos():
    """The offered QoS ``ros2 bag record`` stores for ``/tf_static``: RELIABLE, TRANSIENT_LOCAL, depth 1.

    The bag player offers topics recorded with TRANSIENT_LOCAL durability as latched again.
    """
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)
    return Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
               never, never, QosLiveliness.AUTOMATIC, never, False)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_bag_writer(path: str | os.PathLike, storage: str = "mcap", overwrite: bool = False) -> Iterator:
    """An opened ``rosbags.rosbag2.Writer`` whose bag appears at ``path`` when the block exits cleanly.

    ``path`` must not exist unless ``overwrite`` (then the old bag is replaced only after the new one is
    complete). Raises ``FileExistsError`` naming the folder otherwise.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGE_CHOICES:
        raise ValueError(f"storage must be one of {', '.join(STORAGE_CHOICES)}, got {storage!r}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (remove it or pass --overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        writer = Writer(tmp / path.name, version=BAG_VERSION, storage_plugin=plugin)
        writer.open()
        try:
            yield writer
        finally:
            writer.close()
        _fsync_tree(tmp / path.name)
        if path.exists():
            os.rename(path, tmp / "replaced")
        os.rename(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
