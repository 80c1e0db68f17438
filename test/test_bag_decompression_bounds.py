"""Bags whose compressed data lies about its size, read by the bag tools with bounded memory, and ``--overwrite``
refusing a metadata.yaml that only lists files.

Every bag is built here for real (our writer or rosbags', then one stored frame replaced by a zstd frame of
hundreds of MiB of zeros, a few kB on disk). Each player run is a child process that reports how far its peak RSS
rose while the player ran: without the bound the child held the whole inflated frame, several times over. (Its
peak as a whole, ``os.wait4``'s, also counts the pages of the pytest worker it was forked from, ~950 MB once
torch is loaded there: in the full suite that failed every bound.)
"""

import os
import random
import resource
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from test_bag_recording_safety import one_line, small_bag, string_cdr, typestore

MIB = 1 << 20


def zeros_frame(mib: int) -> bytes:
    """One zstd frame (streamed, so its header declares no content size) of ``mib`` MiB of zeros."""
    from backports import zstd

    compressor = zstd.ZstdCompressor()
    block = bytes(16 * MIB)
    return b"".join(compressor.compress(block) for _ in range(mib // 16)) + compressor.flush()


#: runs a module as ``python -m`` would, then writes how many MB its peak RSS rose meanwhile to argv[1]
MEASURED_RUN = """
import resource, runpy, sys
report, module = sys.argv[1], sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
finally:
    with open(report, "w") as f:
        f.write(str((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024))
"""


def run_measured(args, tmp_path: Path, env=None, preexec_fn=None) -> tuple[int, str, str, float]:
    """``(exit code, stdout, stderr, MB its peak RSS rose)`` of ``args`` (``python -m module ...``) run as a child."""
    assert args[:2] == [sys.executable, "-m"], args
    out, err, report = tmp_path / "child.out", tmp_path / "child.err", tmp_path / "child.rss"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        code = subprocess.run([sys.executable, "-c", MEASURED_RUN, str(report), *args[2:]], stdout=stdout,
                              stderr=stderr, env=env, preexec_fn=preexec_fn).returncode
    return code, out.read_text(), err.read_text(), float(report.read_text())


def player(bag: Path, *args) -> list[str]:
    return [sys.executable, "-m", "xdrcdepth_ros.bag.player", str(bag), *args]


@pytest.mark.slow
def test_an_mcap_chunk_inflating_past_its_declared_size_is_refused_with_bounded_memory(tmp_path):
    """A chunk declaring 20 kB whose data is a 400 MiB zstd frame (padded with a skippable frame to the chunk's
    length, so every offset, index and declared size still holds): rosbags decompressed it whole (the black-box
    run's 2 GiB frame took 4.2 GB) because the declared-size check never fired. The bounded decompression stops
    at the declared size: one line naming the .mcap, exit 2, and the player stays small."""
    from rosbags.rosbag2 import Reader

    from xdrcdepth_ros.bag.mcap_storage import McapBagWriter
    from xdrcdepth_ros.bag.player import BagError, open_bag
    from xdrcdepth_ros.bag.replay_eval import reading

    bag = tmp_path / "bomb"
    ts = typestore()
    writer = McapBagWriter(bag).open()
    conn = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=ts)
    noise = random.Random(0).randbytes(20000).hex()        # incompressible: the chunk keeps room for the frame
    writer.write(conn, 1_000, string_cdr(ts, noise))
    writer.close()
    with Reader(bag) as reader:
        chunk = reader.storage.storages[0].chunks[0]
    frame = zeros_frame(400)
    pad = chunk.compressed_size - len(frame) - 8
    assert pad >= 0 and chunk.uncompressed_size < MIB
    data = bag / "bomb.mcap"
    content = bytearray(data.read_bytes())
    start = chunk.chunk_start_offset + 9 + 40 + len(chunk.compression)
    content[start:start + chunk.compressed_size] = frame + struct.pack("<II", 0x184D2A50, pad) + bytes(pad)
    data.write_bytes(content)

    code, out, err, peak_mb = run_measured(player(bag), tmp_path)
    assert code == 2 and out == "", err
    assert one_line(err) == (f"bag_player: cannot read bag {bag}: bomb.mcap: a zstd chunk decompresses to more "
                             f"than {chunk.uncompressed_size} bytes, the size it declares")
    assert peak_mb < 300, peak_mb
    with pytest.raises(BagError, match="bomb.mcap: a zstd chunk decompresses to more than"):   # replay-eval's reader
        with reading(bag):
            reader = open_bag(bag)
            try:
                list(reader.messages())
            finally:
                reader.close()
    open_bag(small_bag(tmp_path / "fine")).close()           # an honest chunk reads as before


def message_compressed_bag(path: Path, raw_message: bytes | None = None) -> Path:
    """A sqlite3 bag written by rosbags with ``compression_mode: message`` (zstd), one /chatter String 'hello';
    its stored (compressed) bytes replaced by ``raw_message`` when given."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

    ts = typestore()
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3)
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    with writer:
        conn = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=ts)
        writer.write(conn, 1_600_000_000_000_000_000, string_cdr(ts, "hello"))
    if raw_message is not None:
        con = sqlite3.connect(next(path.glob("*.db3")))
        with con:
            con.execute("UPDATE messages SET data = ?", (raw_message,))
        con.close()
    return path


@pytest.mark.slow
def test_a_compressed_message_inflating_past_the_read_limit_is_refused_with_bounded_memory(tmp_path):
    """compression_mode: message (rosbags and ros2 bag write it): a 640 MiB zstd frame stored as the one message
    of a small sqlite3 bag. The size check measured LENGTH(data), the compressed size; the black-box run's 2 GiB
    frame took 6.3 GB and was published. Now the message is decompressed at most to the 256 MiB read limit:
    one line naming the .db3, exit 2, nothing published, the player well under the frame's size."""
    from xdrcdepth_ros.bag.player import open_bag

    bag = message_compressed_bag(tmp_path / "msgbomb", zeros_frame(640))
    code, out, err, peak_mb = run_measured(player(bag, "-r", "100"), tmp_path)
    assert code == 2 and out == "", err
    assert one_line(err) == (f"bag_player: cannot read bag {bag}: msgbomb.db3: a zstd-compressed message "
                             "decompresses to more than 268435456 bytes, the 256 MiB the bag tools read at once")
    assert peak_mb < 900, peak_mb        # the limit's 256 MiB (twice, while joined) and the interpreter; not 640 MiB
    honest = message_compressed_bag(tmp_path / "honest")
    reader = open_bag(honest)
    try:
        ts = typestore()
        assert [ts.deserialize_cdr(raw, c.msgtype).data for c, _, raw in reader.messages()] == ["hello"]
    finally:
        reader.close()


@pytest.mark.slow
def test_a_file_compressed_bag_is_refused_before_anything_is_unpacked(tmp_path):
    """compression_mode: file: rosbags unpacked the whole storage file into $TMPDIR when it opened the bag (2 GB
    written from a 65 kB file). The bag tools refuse such a bag with one line naming the file and saying how to
    unpack it, before anything is written: here the child may write no file over 16 MiB, and its 300 MiB frame
    would have needed one."""
    import yaml

    bag = small_bag(tmp_path / "filebomb")
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())
    info = meta["rosbag2_bagfile_information"]
    info.update(compression_format="zstd", compression_mode="file", relative_file_paths=["filebomb.mcap.zstd"])
    info["files"][0]["path"] = "filebomb.mcap.zstd"
    (bag / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (bag / "filebomb.mcap").unlink()
    (bag / "filebomb.mcap.zstd").write_bytes(zeros_frame(300))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * MIB, 16 * MIB))

    code, out, err, peak_mb = run_measured(player(bag), tmp_path, env={**os.environ, "TMPDIR": str(tmpdir)},
                                           preexec_fn=small_files)
    assert code == 2 and out == "", err
    assert one_line(err) == (
        f"bag_player: cannot read bag {bag}: filebomb.mcap.zstd is compressed as a whole (compression_mode: file), "
        f"which the bag tools do not read (rosbags would unpack it whole into {tmpdir} first); unpack it with "
        "'zstd -d' and set compression_mode and compression_format to '' in metadata.yaml")
    assert list(tmpdir.iterdir()) == [] and peak_mb < 300, peak_mb


@pytest.mark.slow
def test_overwrite_refuses_a_metadata_yaml_that_only_lists_files(tmp_path):
    """`metadata.yaml` of just `rosbag2_bagfile_information: {relative_file_paths: [thesis.tex]}` made
    `nuscenes2bag --overwrite` delete thesis.tex (black-box run). A replaceable bag now needs the real metadata
    keys (an integer version, storage_identifier mcap or sqlite3) and lists only storage files of that storage."""
    import yaml

    from test_nuscenes2bag_folders import build_folder
    from xdrcdepth_ros.bag.files import bag_files

    root = tmp_path / "nuscenes"
    build_folder(root)
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "metadata.yaml").write_text("rosbag2_bagfile_information: {relative_file_paths: [thesis.tex]}\n")
    (out / "thesis.tex").write_text("keep me")
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.nuscenes2bag", "--dataroot", str(root), "--out",
                           str(out), "--scene", "scene-a", "--overwrite", "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"refusing to overwrite {out}" in one_line(proc.stderr)
    assert (out / "thesis.tex").read_text() == "keep me"

    bag = small_bag(tmp_path / "real")
    assert bag_files(bag) is not None                                     # our own bag stays replaceable
    good = yaml.safe_load((bag / "metadata.yaml").read_text())
    info = good["rosbag2_bagfile_information"]
    for change in ({"version": None}, {"version": "9"}, {"storage_identifier": None},
                   {"storage_identifier": "sqlite3"}, {"storage_identifier": ["mcap"]}):
        (bag / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": {**info, **change}}))
        assert bag_files(bag) is None, change
    (bag / "real.mcap").rename(bag / "real.tex")
    (bag / "metadata.yaml").write_text(yaml.safe_dump(
        {"rosbag2_bagfile_information": {**info, "relative_file_paths": ["real.tex"]}}))
    assert bag_files(bag) is None
