"""Bags survive what kills or starves their writer, and ``--overwrite`` deletes only bags.

* Overwrite: a folder holding an unrelated file is refused by ``nuscenes2bag --overwrite`` and
  ``bag_recorder --overwrite`` (one line naming it, exit 2) and left as it was; a real bag is replaced.
* Crash: ``bag_recorder`` SIGKILLed mid-recording keeps all but the last second: ``bag_player`` says the
  bag needs ``xdrcdepth bag-reindex``, which finalises it; the messages read back are a gap-free prefix of
  what was published.
* Full disk (a file size limit in the recorder's process): recording stops cleanly, what was written is
  kept and readable, one line says why, exit code 1.
* Corruption: every mcap chunk carries a CRC; a flipped byte makes rosbags (and so ``bag_player``) fail,
  and ``bag-reindex`` (no --force needed: it checks every chunk) drops just that chunk.
"""

import contextlib
import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader

from xdrcdepth_ros.bag import mcap_storage
from xdrcdepth_ros.bag.files import NotABagError, bag_files, check_output_folder, recording_bag_writer
from xdrcdepth_ros.bag.mcap_storage import BagWriteError, McapBagWriter
from xdrcdepth_ros.bag.reindex import ReindexError, reindex

TOPIC = "/chatter"


def typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_KILTED)


def string_cdr(ts, text: str) -> bytes:
    return bytes(ts.serialize_cdr(ts.types["std_msgs/msg/String"](data=text), "std_msgs/msg/String"))


def read_texts(bag: Path) -> list[tuple[int, str]]:
    ts = typestore()
    with Reader(bag) as reader:
        return [(stamp, ts.deserialize_cdr(raw, conn.msgtype).data) for conn, stamp, raw in reader.messages()]


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def small_bag(path: Path, n=3) -> Path:
    ts = typestore()
    writer = McapBagWriter(path).open()
    conn = writer.add_connection(TOPIC, "std_msgs/msg/String", typestore=ts)
    for i in range(n):
        writer.write(conn, 1_000 + i, string_cdr(ts, f"m{i}"))
    writer.close()
    return path


# -- overwrite --------------------------------------------------------------------------------------------

def test_only_recognisable_bags_are_overwritten(tmp_path):
    bag = small_bag(tmp_path / "bag")
    assert [p.name for p in bag_files(bag)] == ["metadata.yaml", "bag.mcap"]
    assert check_output_folder(bag, overwrite=True) is True
    with pytest.raises(FileExistsError, match="already exists"):
        check_output_folder(bag, overwrite=False)
    (bag / "notes.txt").write_text("mine")             # a bag plus something else is not just a bag
    with pytest.raises(NotABagError, match=f"refusing to overwrite {bag}"):
        check_output_folder(bag, overwrite=True)
    important = tmp_path / "important"
    important.mkdir()
    (important / "thesis.tex").write_text("years of work")
    with pytest.raises(NotABagError, match=f"refusing to overwrite {important}"):
        recording_bag_writer(important, overwrite=True)
    assert (important / "thesis.tex").read_text() == "years of work"
    (tmp_path / "empty").mkdir()
    assert check_output_folder(tmp_path / "empty", overwrite=True) is False   # nothing to lose
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotABagError, match="not a folder"):
        check_output_folder(tmp_path / "file", overwrite=True)


@pytest.mark.slow
def test_nuscenes2bag_overwrite_refuses_a_folder_of_unrelated_files(tmp_path):
    from test_nuscenes2bag_folders import build_folder

    root = tmp_path / "nuscenes"
    build_folder(root)
    out = tmp_path / "important"
    out.mkdir()
    (out / "unrelated.txt").write_text("keep me")
    args = [sys.executable, "-m", "xdrcdepth_ros.bag.nuscenes2bag", "--dataroot", str(root), "--out", str(out),
            "--scene", "scene-a", "--overwrite", "--no-progress"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert f"refusing to overwrite {out}" in one_line(proc.stderr)
    assert [p.name for p in out.iterdir()] == ["unrelated.txt"] and (out / "unrelated.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["important", "nuscenes"]   # no temporary left


@pytest.mark.ros
def test_bag_recorder_overwrite_refuses_a_folder_of_unrelated_files(tmp_path, ros_domain_id):
    out = tmp_path / "important2"
    out.mkdir()
    (out / "unrelated.txt").write_text("keep me")
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.recorder", "-o", str(out), "--overwrite",
                           "--duration", "1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"refusing to overwrite {out}" in one_line(proc.stderr)
    assert [p.name for p in out.iterdir()] == ["unrelated.txt"]


# -- writer failures (in process) -----------------------------------------------------------------------------

class FailingWrites:
    """``os.write`` that fails with ENOSPC once ``budget`` bytes went to the bag file (a full disk)."""

    def __init__(self, monkeypatch, budget: int):
        self.budget = budget
        self.real = os.write
        monkeypatch.setattr(mcap_storage.os, "write", self)

    def __call__(self, fd, data):
        if len(data) > self.budget:
            self.real(fd, bytes(data[:self.budget]))          # a partial write, then the disk is full
            self.budget = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.budget -= len(data)
        return self.real(fd, data)


@pytest.mark.parametrize("room_after_failure", [True, False], ids=["summary-fits", "nothing-fits"])
def test_full_disk_keeps_every_complete_chunk(tmp_path, monkeypatch, room_after_failure):
    ts = typestore()
    bag = tmp_path / "bag"
    writer = McapBagWriter(bag, chunk_size=2_000, flush_period=float("inf")).open()
    conn = writer.add_connection(TOPIC, "std_msgs/msg/String", typestore=ts)
    payload = "x" * 200
    for i in range(25):                                       # several complete chunks
        writer.write(conn, 1_000 + i, string_cdr(ts, f"{i:03d}{payload}"))
    kept = sum(writer.counts.values())
    size = writer.path.stat().st_size
    failing = FailingWrites(monkeypatch, budget=100)
    with pytest.raises(BagWriteError) as info:
        for i in range(25, 40):
            writer.write(conn, 1_000 + i, string_cdr(ts, f"{i:03d}{payload}"))
    assert info.value.errno == errno.ENOSPC and info.value.lost > 0
    assert writer.path.stat().st_size == size                 # the torn chunk was cut off again
    if room_after_failure:
        failing.budget = 10_000
        writer.close()
        assert [t for _, t in read_texts(bag)] == [f"{i:03d}{payload}" for i in range(kept)]
    else:
        with pytest.raises(BagWriteError) as info:
            writer.close()
        assert not info.value.finalized and not (bag / "metadata.yaml").exists()
        monkeypatch.undo()
        summary = reindex(bag)                               # later, with space again
        assert summary.messages == kept and summary.corrupt_chunks == 0
        assert [t for _, t in read_texts(bag)] == [f"{i:03d}{payload}" for i in range(kept)]


def test_chunks_carry_crcs_and_corruption_is_found(tmp_path, ros_domain_id):
    from mcap.reader import make_reader

    ts = typestore()
    bag = tmp_path / "bag"
    writer = McapBagWriter(bag, chunk_size=500).open()
    conn = writer.add_connection(TOPIC, "std_msgs/msg/String", typestore=ts)
    for i in range(40):
        writer.write(conn, 1_000 + i, string_cdr(ts, f"message {i} " * 5))
    writer.close()
    with open(writer.path, "rb") as f:
        reader = make_reader(f, validate_crcs=True)
        chunk_indexes = reader.get_summary().chunk_indexes
        assert len(list(reader.iter_messages())) == 40
    assert len(chunk_indexes) > 3
    data = bytearray(writer.path.read_bytes())
    for index in chunk_indexes:
        crc = int.from_bytes(data[index.chunk_start_offset + 33:index.chunk_start_offset + 37], "little")
        assert crc != 0                                       # rosbags' own writer leaves it 0
    victim = chunk_indexes[2]
    data[victim.chunk_start_offset + victim.chunk_length - 3] ^= 0x40   # inside the compressed records
    writer.path.write_bytes(bytes(data))
    with pytest.raises(Exception):
        read_texts(bag)
    player = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.player", str(bag)], capture_output=True,
                            text=True, timeout=120)
    assert player.returncode == 2 and one_line(player.stderr).startswith(f"bag_player: cannot read bag {bag}: ")
    assert one_line(player.stderr).endswith(f"(the file is damaged; 'xdrcdepth bag-reindex {bag}' rebuilds it "
                                            "from its intact chunks)"), player.stderr
    summary = reindex(bag)     # it opens (its summary is intact), but a chunk fails: not "complete already"
    assert not summary.already_complete
    assert summary.corrupt_chunks == 1 and 0 < summary.messages < 40
    texts = [t for _, t in read_texts(bag)]
    assert len(texts) == summary.messages and texts == sorted(texts, key=lambda t: int(t.split()[1]))


def test_reindex_sqlite3_rebuilds_metadata(tmp_path):
    ts = typestore()
    bag = tmp_path / "bag"
    writer = recording_bag_writer(bag, "sqlite3")
    conn = writer.add_connection(TOPIC, "std_msgs/msg/String", typestore=ts)
    for i in range(5):
        writer.write(conn, 1_000 + i, string_cdr(ts, f"m{i}"))
    writer.flush()                                            # committed rows, then the process "dies"
    writer._writer.storage.conn.close()
    assert not (bag / "metadata.yaml").exists()
    summary = reindex(bag)
    assert summary.messages == 5 and [t for _, t in read_texts(bag)] == [f"m{i}" for i in range(5)]


@pytest.mark.parametrize("given", ["folder", "storage file"])
def test_a_reindex_write_error_names_the_bags_file_not_the_temporary(tmp_path, capsys, given):
    """metadata.yaml replaced by a folder: the rebuilt file cannot take its place, and the line named the hidden
    temporary folder the bag was rebuilt in (a black-box run); given the bag's .mcap instead of its folder too."""
    from xdrcdepth_core.cli import main

    bag = small_bag(tmp_path / "bag")
    (bag / "metadata.yaml").unlink()
    (bag / "metadata.yaml").mkdir()
    argument = bag if given == "folder" else next(bag.glob("*.mcap"))
    assert main(["bag-reindex", str(argument)]) == 1
    assert capsys.readouterr().err == (f"xdrcdepth bag-reindex: cannot write {bag / 'metadata.yaml'}: Is a directory "
                                       f"[Errno {errno.EISDIR}]\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]      # no temporary left


def test_a_storage_path_that_is_a_folder_is_named_and_not_sent_to_reindex(tmp_path, capsys):
    """bag_player called it damaged and pointed at bag-reindex, which then failed with 'cannot write' (a
    black-box run): there is nothing to salvage, and both say what is wrong."""
    from xdrcdepth_core.cli import main
    from xdrcdepth_ros.bag.player import damaged_bag_line

    bag = small_bag(tmp_path / "bag")
    data = next(bag.glob("*.mcap"))
    data.unlink()
    data.mkdir()
    assert damaged_bag_line(bag, IsADirectoryError(21, "Is a directory")) == (
        f"cannot read bag {bag}: {data.name} in it is not a file (a folder or device where the bag's data belongs)")
    assert main(["bag-reindex", str(bag)]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth bag-reindex: {data} is not a file (a folder or device where the "
                                       "bag's data belongs): nothing to rebuild from\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"] and data.is_dir()


# -- the recorder process ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_record_over_the_read_limit_is_refused_before_it_is_read(tmp_path, monkeypatch, storage):
    """A 34 kB bag whose one zstd chunk decompresses to 1 GiB took bag_player to 5.3 GB and, under a memory limit,
    ended in a MemoryError traceback; bag-reindex then called the valid bag damaged (a black-box run). Anything over
    the read limit is refused from the sizes the file declares, before it is read: bag_player (and replay-eval)
    with one line, bag-reindex leaving the file as it is. Here with the limit lowered to 4 kB and a 6 kB message."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from xdrcdepth_ros.bag import player
    from xdrcdepth_ros.bag import reindex as reindex_module
    from xdrcdepth_ros.bag.player import BagError, open_bag

    for module in (player, reindex_module):
        monkeypatch.setattr(module, "MAX_READ_BYTES", 4096)
    ts = typestore()
    bag = tmp_path / "big"
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    with Writer(bag, version=9, storage_plugin=plugin) as writer:
        conn = writer.add_connection(TOPIC, "std_msgs/msg/String", typestore=ts)
        writer.write(conn, 1_000, string_cdr(ts, "small"))
        writer.write(conn, 2_000, string_cdr(ts, "x" * 6000))
    (data,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    with pytest.raises(BagError) as info:
        open_bag(bag)
    what = (r"a chunk \(at byte \d+\) holds 0 MiB once decompressed" if storage == "mcap"
            else r"a message holds 0 MiB")
    assert re.fullmatch(f"cannot read bag {re.escape(str(bag))}: {data.name}: {what}, more than the 0 MiB the bag "
                        "tools read at once", str(info.value)), str(info.value)
    if storage == "mcap":
        before = data.read_bytes()
        with pytest.raises(ReindexError, match=r"the record at byte \d+ holds 0 MiB( once decompressed)?, more than "
                                               "the 0 MiB the bag tools read at once; the bag is left as it is"):
            reindex(bag, force=True)
        assert data.read_bytes() == before and sorted(p.name for p in bag.iterdir()) == ["big.mcap", "metadata.yaml"]
    monkeypatch.setattr(player, "MAX_READ_BYTES", 8192)
    open_bag(bag).close()                                          # under the limit: read as before


@pytest.fixture
def publisher(ros_domain_id):
    import rclpy
    from std_msgs.msg import String

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("recording_safety_publisher", context=context)
    pub = node.create_publisher(String, TOPIC, 100)
    yield node, pub, String
    node.destroy_node()
    rclpy.shutdown(context=context)


def wait_for(predicate, timeout, what, proc=None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.timeout(240)
def test_sigkilled_recording_loses_at_most_the_last_second(tmp_path, publisher):
    node, pub, String = publisher
    bag = tmp_path / "rec"
    recorder = subprocess.Popen([sys.executable, "-m", "xdrcdepth_ros.bag.recorder", "-o", str(bag), TOPIC],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sent = []                                                  # (wall time published, text)
    try:
        wait_for(lambda: pub.get_subscription_count() > 0, 60, "the recorder's subscription", recorder)
        mcap = bag / "rec.mcap"
        # publish at 20 Hz; once data reached the file and 3 s passed, go on for a random 0.5-1.5 s (so the
        # kill does not follow a flush) and kill mid-stream
        began, extra = time.monotonic(), None
        while extra is None or extra > 0:
            assert time.monotonic() - began < 120, "the recorder wrote nothing"
            pub.publish(String(data=f"{len(sent):05d}"))
            sent.append((time.time(), f"{len(sent):05d}"))
            time.sleep(0.05)
            if extra is None and mcap.exists() and mcap.stat().st_size > 1_000 and time.monotonic() - began > 3.0:
                extra = 10 + int.from_bytes(os.urandom(1), "little") % 20
            elif extra is not None:
                extra -= 1
        killed_at = time.time()
        recorder.send_signal(signal.SIGKILL)
        recorder.communicate(timeout=30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.communicate()
    assert recorder.returncode == -signal.SIGKILL
    assert not (bag / "metadata.yaml").exists()

    player = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.player", str(bag)], capture_output=True,
                            text=True, timeout=60)
    assert player.returncode == 2 and f"xdrcdepth bag-reindex {bag}" in one_line(player.stderr)
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "bag-reindex", str(bag)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    recovered = read_texts(bag)
    texts = [t for _, t in recovered]
    assert texts == [text for _, text in sent[:len(texts)]], "not a gap-free prefix of what was published"
    last_stamp_s = recovered[-1][0] / 1e9                     # receive time (wall clock) of the last kept one
    lost_published = [t for t, text in sent if text not in set(texts)]
    print(f"published {len(sent)} over {sent[-1][0] - sent[0][0]:.1f} s, recovered {len(texts)}; last kept "
          f"received {killed_at - last_stamp_s:.2f} s before the SIGKILL; lost messages published in the last "
          f"{killed_at - min(lost_published, default=killed_at):.2f} s; {proc.stdout.strip()}")
    assert killed_at - last_stamp_s <= 1.0
    assert len(texts) >= 20


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.timeout(240)
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("disk", ["file-size-limit", "tmpfs"])
def test_full_disk_stops_cleanly_and_keeps_what_was_written(tmp_path, publisher, disk, storage):
    """``file-size-limit``: RLIMIT_FSIZE of 3 MiB on the recorder (EFBIG, any user); ``tmpfs``: a real 3 MiB
    file system that fills up (ENOSPC; needs root and mount, else skipped). The summary, the failure line and
    metadata.yaml count what the bag holds: with sqlite3 they claimed the rows SQLite rolled back (a black-box
    run: 23 claimed, 17 in the file), and with mcap the summary's 'wrote' counted the lost chunk."""
    from fs_faults import file_size_limit, full_dir

    node, pub, String = publisher
    with contextlib.ExitStack() as stack:
        if disk == "tmpfs":
            bag = stack.enter_context(full_dir(tmp_path / "disk", size="3m")) / "full"
            preexec_fn, cause = None, "disk full [Errno 28]"
        else:
            bag, preexec_fn = tmp_path / "full", file_size_limit(3 * 1024 * 1024)
            cause = ("file too large for this file system or process limit [Errno 27]" if storage == "mcap"
                     else "disk I/O error")    # SQLite reports EFBIG as SQLITE_IOERR_WRITE, without the errno
        _record_until_full(bag, storage, pub, String, preexec_fn, cause)


def _record_until_full(bag, storage, pub, String, preexec_fn, cause):
    recorder = subprocess.Popen([sys.executable, "-m", "xdrcdepth_ros.bag.recorder", "-o", str(bag), "-s", storage,
                                 TOPIC], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=preexec_fn, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    sent = 0
    try:
        wait_for(lambda: pub.get_subscription_count() > 0, 60, "the recorder's subscription", recorder)
        deadline = time.monotonic() + 120
        while recorder.poll() is None:                         # it must stop by itself
            assert time.monotonic() < deadline, "the recorder did not stop on a full disk"
            pub.publish(String(data=f"{sent:05d}" + os.urandom(60_000).hex()))   # 120 kB, incompressible
            sent += 1
            time.sleep(0.05)
        out, err = recorder.communicate(timeout=30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.communicate()
    assert recorder.returncode == 1, err
    (line,) = [ln for ln in err.splitlines() if "cannot write" in ln]      # besides rclpy's INFO log lines
    data_file = bag / ("full.mcap" if storage == "mcap" else "full.db3")
    assert f"cannot write {data_file}: {cause}" in line and "stopped recording: kept" in line
    if "not finalised" in line:
        assert reindex(bag).messages > 0
    texts = [t[:5] for _, t in read_texts(bag)]
    assert texts and texts == [f"{i:05d}" for i in range(len(texts))]
    kept = int(re.search(r"kept (\d+) messages", line).group(1))
    wrote = re.search(r"wrote (\d+) messages .*: (\d+) /chatter", out)
    with Reader(bag) as reader:
        listed = reader.message_count
    assert (kept, int(wrote.group(1)), int(wrote.group(2)), listed) == (len(texts),) * 4, (out, line)
    print(f"full disk: {line}; read back {len(texts)} of {sent} published")


@pytest.mark.ros
def test_read_only_output_is_one_line(tmp_path, ros_domain_id):
    from fs_faults import readonly_dir

    with readonly_dir(tmp_path / "ro") as ro:
        proc = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.recorder", "-o", str(ro / "rec"),
                               TOPIC, "--duration", "30"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert f"bag_recorder: cannot write {ro / 'rec'}" in line
    assert "read-only file system" in line or "permission denied" in line
