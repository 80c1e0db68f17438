"""nuscenes2bag on damaged input and hostile conditions: truncated or garbled JPEGs are found (exit 2 naming
the file, or skipped and counted with ``--skip-bad``), a ``sample_data`` record without ``filename`` is a
clear error, Ctrl-C is one line and exit 130 (counting a bag that was complete when it came; ignored once the
program has finished), a SIGKILLed run's temporary folder is removed by the next run, and a read-only or full
output disk is one line naming the path and the cause. The commands run as processes
(``python -m xdrcdepth_ros.bag.nuscenes2bag``, what the console script runs)."""

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from rosbags.rosbag2 import Reader

from fs_faults import blocking_input, file_size_limit, full_dir, readonly_dir, sigint_default
from test_nuscenes2bag_folders import build_folder

pytestmark = pytest.mark.slow   # over ~2 s on 2 cores: left out of the edit loop

CAMERA_TOPIC = "/cam_front/image_rect_compressed"


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "nuscenes"
    return root, build_folder(root)


def convert(root, out, *extra, preexec_fn=None):
    return subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.nuscenes2bag", "--dataroot", str(root),
                           "--out", str(out), "--scene", "scene-a", "--no-progress", *map(str, extra)],
                          capture_output=True, text=True, timeout=180, preexec_fn=preexec_fn,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))


def start(root, out):
    return subprocess.Popen([sys.executable, "-m", "xdrcdepth_ros.bag.nuscenes2bag", "--dataroot", str(root),
                             "--out", str(out), "--scene", "scene-a", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def camera_count(bag: Path) -> int:
    with Reader(bag) as reader:
        return sum(c.msgcount for c in reader.connections if c.topic == CAMERA_TOPIC)


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_damaged_jpeg_is_an_error_or_skipped_and_counted(folder, tmp_path, damage):
    root, expected = folder
    jpeg = expected[("scene-a", "CAM_FRONT")][1][1]
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(buf, format="JPEG")
    data = buf.getvalue()
    if damage == "truncated":
        jpeg.write_bytes(data[:len(data) * 2 // 3])
    else:  # a stretch of the entropy-coded data overwritten with random bytes (the header still parses)
        start = len(data) // 2
        jpeg.write_bytes(data[:start] + rng.integers(0, 256, 512, dtype=np.uint8).tobytes() + data[start + 512:])
    bag = tmp_path / "bags" / "a"
    proc = convert(root, bag)
    assert proc.returncode == 2
    assert f"{jpeg}: cannot read the camera image" in one_line(proc.stderr)
    assert not bag.exists()
    proc = convert(root, bag, "--skip-bad")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 unreadable files (--skip-bad)" in proc.stdout
    assert f"skipping {jpeg}" in proc.stderr
    assert camera_count(bag) == 1                             # the other key frame's image


def test_sample_data_without_filename_is_a_clear_error(folder, tmp_path):
    root, _ = folder
    table = root / "v1.0-mini" / "sample_data.json"
    records = json.loads(table.read_text())
    victim = next(r for r in records if r["filename"].startswith("samples/CAM_FRONT"))
    del victim["filename"]
    table.write_text(json.dumps(records))
    proc = convert(root, tmp_path / "bag")
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert str(table) in line and victim["token"] in line and "no 'filename'" in line


def test_sigint_is_one_line_and_130_and_sigkill_leftovers_are_cleaned(folder, tmp_path):
    root, expected = folder
    bag = tmp_path / "bags" / "a"
    fifo = blocking_input(expected[("scene-a", "CAM_FRONT")][0][1])
    try:
        proc = start(root, bag)
        fifo.wait_reader(proc)                                # blocked mid-conversion, bag half written
        fifo.interrupt(proc)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130
        assert "nuscenes2bag: interrupted (SIGINT)" in one_line(err) and "Traceback" not in err
        assert not bag.parent.exists() or not list(bag.parent.iterdir())   # no partial bag, no temporary

        fifo.fd and os.close(fifo.fd)
        fifo.fd = None
        proc = start(root, bag)
        fifo.wait_reader(proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        leftovers = [p.name for p in bag.parent.iterdir()]
        assert len(leftovers) == 1 and leftovers[0].startswith(".a.") and leftovers[0].endswith(".tmp")
    finally:
        fifo.restore()
    (bag.parent / ".a.notes.tmp").write_text("not ours: another naming")   # left alone
    proc = convert(root, bag)
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 stale temporaries of a killed run" in proc.stdout
    assert sorted(p.name for p in bag.parent.iterdir()) == [".a.notes.tmp", "a"]


#: runs the console script's entry point after ``{patch}``: a SIGINT sent at an exact moment, no timing involved
DRIVER = """
import atexit, os, signal, sys
from pathlib import Path
from xdrcdepth_ros.entry_points import nuscenes2bag
{patch}
sys.exit(nuscenes2bag())
"""
#: os.rename patched to send SIGINT right after the bag folder is renamed into place (the bag is complete)
SIGINT_WHEN_THE_BAG_IS_IN_PLACE = """
bag, rename = Path(sys.argv[sys.argv.index("--out") + 1]), os.rename
def rename_then_sigint(src, dst):
    rename(src, dst)
    if Path(dst) == bag:
        os.kill(os.getpid(), signal.SIGINT)
os.rename = rename_then_sigint
"""
#: SIGINT once the program has returned, while the interpreter exits (atexit runs the earliest registered last)
SIGINT_WHILE_EXITING = "atexit.register(os.kill, os.getpid(), signal.SIGINT)"


def run_driver(root, bag, patch: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER.format(patch=patch), "--dataroot", str(root), "--out",
                           str(bag), "--scene", "scene-a", "--no-progress"], capture_output=True, text=True,
                          timeout=180, preexec_fn=sigint_default, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))


def test_sigint_when_the_bag_is_complete_counts_it(folder, tmp_path):
    """The bag is in place but not yet reported when Ctrl-C comes: it is reported, and the one line counts it."""
    root, expected = folder
    bag = tmp_path / "bags" / "a"
    proc = run_driver(root, bag, SIGINT_WHEN_THE_BAG_IS_IN_PLACE)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == ("nuscenes2bag: interrupted (SIGINT): 1 bag(s) complete (scene-a), no partial bag left; "
                           "finished files are complete, rerun to resume\n")
    assert proc.stdout.startswith(f"nuscenes2bag: scene-a -> {bag} (mcap, ") and proc.stdout.count("\n") == 1
    assert camera_count(bag) == len(expected[("scene-a", "CAM_FRONT")])
    assert sorted(p.name for p in bag.parent.iterdir()) == ["a"]                 # no temporary left


def test_sigint_once_the_program_has_finished_changes_nothing(folder, tmp_path):
    root, expected = folder
    bag = tmp_path / "bags" / "a"
    proc = run_driver(root, bag, SIGINT_WHILE_EXITING)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith(f"nuscenes2bag: scene-a -> {bag} (mcap, ") and proc.stdout.count("\n") == 1
    assert camera_count(bag) == len(expected[("scene-a", "CAM_FRONT")])


def test_read_only_output_is_one_line(folder, tmp_path):
    root, _ = folder
    with readonly_dir(tmp_path / "ro") as ro:
        proc = convert(root, ro / "bags" / "a")
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert f"nuscenes2bag: cannot write {ro / 'bags'}" in line
    assert "read-only file system" in line or "permission denied" in line


def test_file_size_limit_is_one_line_and_leaves_nothing(folder, tmp_path):
    root, _ = folder
    out = tmp_path / "bags"
    proc = convert(root, out / "a", preexec_fn=file_size_limit(2_000))
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert "nuscenes2bag: cannot write" in line and ".mcap: file too large" in line and "[Errno 27]" in line
    assert not list(out.iterdir())                            # no bag, no temporary folder


def test_full_disk_is_one_line_and_leaves_nothing(folder, tmp_path):
    root, _ = folder
    with full_dir(tmp_path / "small", size="4k") as small:
        proc = convert(root, small / "a")
        assert proc.returncode == 1
        line = one_line(proc.stderr)
        assert "nuscenes2bag: cannot write" in line and "disk full [Errno 28]" in line
        assert not list(small.iterdir())
