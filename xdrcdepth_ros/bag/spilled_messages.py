"""Messages read from a bag, kept on disk instead of in memory until they are used.

``xdrcdepth replay-eval`` needs every depth image of a recording by header stamp before it walks the source
bag, and held them all as messages: 5.8 MB per 1600 x 900 32FC1 frame, 1.4 GB for a 20 s nuScenes scene at
12 Hz and 40 GB for ten minutes -- a recording's length decided what the command cost in memory. Here each
message's serialized bytes go to an anonymous temporary file (in ``folder`` where it can be written, as the
bag's own folder sits on a disk sized for bags; else ``$TMPDIR``), and a lookup deserializes one message at a
time. The file has no name (Linux ``O_TMPFILE`` or unlinked at once), so nothing is left behind when the
process ends, however it ends.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path


class SpilledMessages(Mapping):
    """A read-only mapping key -> message of ``msg_class`` whose serialized (CDR) bytes live in a temporary
    file; :meth:`add` appends one. Each ``self[key]`` deserializes anew, so callers keep what they need."""

    def __init__(self, msg_class, folder: str | Path | None = None):
        self._msg_class = msg_class
        try:
            self._file = tempfile.TemporaryFile(dir=folder)
        except OSError:   # a read-only or missing folder (someone else's recording): the system's temporary folder
            self._file = tempfile.TemporaryFile()
        self._index: dict = {}   # key -> (offset, length)

    def add(self, key, raw: bytes) -> None:
        offset = self._file.seek(0, 2)
        self._file.write(raw)
        self._index[key] = (offset, len(raw))

    def __getitem__(self, key):
        from rclpy.serialization import deserialize_message

        offset, length = self._index[key]
        self._file.seek(offset)
        return deserialize_message(self._file.read(length), self._msg_class)

    def __contains__(self, key) -> bool:   # Mapping's own would deserialize the message to find out
        return key in self._index

    def __iter__(self) -> Iterator:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def close(self) -> None:
        self._file.close()
