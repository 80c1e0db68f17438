"""Decompression with a hard bound on its output, shared by every reader of bags (``bag_player``, ``replay-eval``,
``replay-demo``, ``bag-reindex``).

rosbags decompresses an MCAP chunk, and each message of a ``compression_mode: message`` bag, whole, whatever size
the file declares: a chunk declaring 1.5 MB that held a 65 kB zstd frame of 2 GiB took 4.2 GB, and a 94 kB sqlite3
bag whose one message was such a frame took 6.3 GB and published the 2 GiB. A ``compression_mode: file`` bag is
unpacked whole into ``$TMPDIR`` when rosbags opens it (2 GB written from a 65 kB file). :func:`bounded_reader`
opens a bag with rosbags' decompressors replaced by :func:`decompress`, which stops as soon as the output passes
its limit and raises :class:`OversizedData`: a chunk may hold no more than it declares (itself at most
:data:`~xdrcdepth_ros.bag.files.MAX_READ_BYTES`), a message no more than ``MAX_READ_BYTES``. File-compressed bags
are refused (:class:`RefusedData`) before anything is unpacked; ``zstd -d`` unpacks one for the tools.
"""

from __future__ import annotations

import functools
import os
import sys
import types
from pathlib import Path

from xdrcdepth_ros.bag.files import MAX_READ_BYTES

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd


class DecompressionError(ValueError):
    """Compressed bag data that is corrupt, or that the bag tools do not read; the message says which."""


class RefusedData(DecompressionError):
    """Compressed bag data the tools refuse to read (no damage ``bag-reindex`` could repair)."""


class OversizedData(RefusedData):
    """Compressed bag data that decompresses to more than its limit; refused before more is held in memory."""


def _decompressor(compression: str):
    if compression == "zstd":
        return zstd.ZstdDecompressor()
    if compression == "lz4":
        import lz4.frame
        return lz4.frame.LZ4FrameDecompressor()
    raise DecompressionError(f"unsupported compression {compression!r}")


def decompress(data: bytes, compression: str, limit: int, what: str, why: str = "") -> bytes:
    """``data`` ('' none, 'zstd' or 'lz4'; every frame of it, as rosbags reads them) decompressed, never producing
    more than ``limit`` + 1 bytes: :class:`OversizedData` ("``what`` decompresses to more than ``limit`` bytes
    ``why``") past ``limit``, whatever a frame header claims; :class:`DecompressionError` for a corrupt or
    cut-short frame."""
    if not compression:
        return data
    parts, total = [], 0
    while data:
        decompressor = _decompressor(compression)
        try:
            part = decompressor.decompress(data, max_length=limit + 1 - total)
        except (zstd.ZstdError, RuntimeError) as exc:      # lz4 raises RuntimeError for corrupt frames
            raise DecompressionError(f"{what}: corrupt {compression} data ({exc})") from None
        parts.append(part)
        total += len(part)
        if total > limit:
            raise OversizedData(f"{what} decompresses to more than {limit} bytes{why}")
        if not decompressor.eof:
            raise DecompressionError(f"{what}: its {compression} data is cut short")
        data = decompressor.unused_data
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _limit_text() -> str:
    return f"the {MAX_READ_BYTES >> 20} MiB the bag tools read at once"


def decompress_chunk(data: bytes, compression: str, declared: int) -> bytes:
    """An MCAP chunk's records: at most the ``declared`` uncompressed size, which itself must not pass
    ``MAX_READ_BYTES``."""
    if declared > MAX_READ_BYTES:
        raise OversizedData(f"a chunk declares {declared / 2**20:.0f} MiB once decompressed, more than "
                            f"{_limit_text()}")
    return decompress(data, compression, declared, f"a {compression} chunk", ", the size it declares")


def _decompress_message(data: bytes) -> bytes:
    return decompress(data, "zstd", MAX_READ_BYTES, "a zstd-compressed message", f", {_limit_text()}")


def _refuse_file_compression(fileobj, _mode: str = "rb"):
    name = Path(getattr(fileobj, "name", "?")).name
    raise RefusedData(
        f"{name} is compressed as a whole (compression_mode: file), which the bag tools do not read (rosbags "
        f"would unpack it whole into {os.environ.get('TMPDIR', '/tmp')} first); unpack it with 'zstd -d' and set "
        "compression_mode and compression_format to '' in metadata.yaml")


@functools.cache
def _install() -> None:
    """Point rosbags' chunk decompressors and its reader's zstd (per-message and whole-file) at the bounded ones
    (once a process)."""
    from rosbags.rosbag2 import reader, storage_mcap

    for compression in ("zstd", "lz4"):
        storage_mcap.DECOMPRESSORS[compression] = (
            lambda data, declared, compression=compression: decompress_chunk(data, compression, declared))
    reader.zstd = types.SimpleNamespace(decompress=_decompress_message, open=_refuse_file_compression)


def bounded_reader(path: str | os.PathLike):
    """A (not yet opened) ``rosbags.rosbag2.Reader`` for ``path`` whose decompression is bounded (module docstring)."""
    from rosbags.rosbag2 import Reader

    _install()
    return Reader(path)
