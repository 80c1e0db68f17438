"""nuscenes2bag on hostile input built from the real scene-0061 samples: a decompression-bomb JPEG is refused
from its header (one line naming it, exit 2, nothing decoded), malformed or inconsistent tables are one line
naming the table file, a channel named twice is converted once, an empty ``--scene`` is a usage error, and an
output the OS cannot write (a file where a folder must go, a read-only folder) is ``cannot write <out>: ...``
with exit code 1."""

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader

from fs_faults import readonly_dir
from xdrcdepth_core.data.real_samples import assemble_real_samples
from xdrcdepth_ros.bag.nuscenes2bag import DEFAULT_MAX_IMAGE_PIXELS, main

pytestmark = pytest.mark.slow   # a few conversions of the real samples: left out of the edit loop

SCENE = "scene-0061"
CAMERA_TOPIC = "/cam_front/image_rect_compressed"
#: Address-space limit for the bomb run: a normal conversion needs under 2 GB, the bomb's RGB buffer 10.8 GB.
ADDRESS_SPACE_LIMIT = 3 << 30


@pytest.fixture
def dataroot(tmp_path, nuscenes_samples):
    """A nuScenes folder of the real samples in tmp_path (data files are symlinks to the read-only originals)."""
    return assemble_real_samples(tmp_path / "nuscenes", nuscenes_samples)


def camera_files(root: Path) -> list[Path]:
    return sorted((root / "samples" / "CAM_FRONT").glob("*.jpg"))


def declare_size(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with the size in its SOF header replaced (the entropy-coded data stays as it is)."""
    i = 2
    while True:
        assert jpeg[i] == 0xFF, "no SOF marker before the image data"
        marker, length = jpeg[i + 1], int.from_bytes(jpeg[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):   # SOF0-2: length, precision, height, width
            return jpeg[:i + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[i + 9:]
        i += 2 + length


def replace_link(link: Path, data: bytes) -> None:
    """Write ``data`` in place of the symlink ``link`` (never through it: the original is read-only and shared)."""
    link.unlink()
    link.write_bytes(data)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def image_count(bag: Path) -> tuple[int, int]:
    with Reader(bag) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    return counts[CAMERA_TOPIC], counts["/cam_front/camera_info"]


def limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def test_decompression_bomb_jpeg_is_refused_from_its_header(dataroot, tmp_path):
    bomb = camera_files(dataroot)[0]
    replace_link(bomb, declare_size(bomb.read_bytes(), 60000, 60000))
    bag = tmp_path / "bag"
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.nuscenes2bag", "--dataroot", str(dataroot),
                           "--out", str(bag), "--scene", SCENE, "--no-progress"], capture_output=True, text=True,
                          timeout=180, preexec_fn=limit_address_space,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith(f"nuscenes2bag: {bomb}: camera image of 60000x60000 = 3600000000 pixels > "
                           f"--max-image-pixels {DEFAULT_MAX_IMAGE_PIXELS} (not decoded)"), line
    assert not bag.exists()


def test_max_image_pixels_bounds_real_images_and_skip_bad_counts_them(dataroot, tmp_path, capsys):
    first = camera_files(dataroot)[0]
    args = ["--dataroot", str(dataroot), "--scene", SCENE, "--no-progress", "--max-image-pixels", "1440000"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0      # 1600 x 900 = 1440000: exactly at the bound
    assert image_count(tmp_path / "a") == (6, 6)
    capsys.readouterr()
    args[-1] = "1439999"
    assert main([*args, "--out", str(tmp_path / "b")]) == 2
    assert one_line(capsys.readouterr().err) == (f"nuscenes2bag: {first}: camera image of 1600x900 = 1440000 pixels "
                                                 "> --max-image-pixels 1439999 (not decoded)")
    assert not (tmp_path / "b").exists()
    assert main([*args, "--out", str(tmp_path / "c"), "--skip-bad"]) == 0
    assert "skipped 6 unreadable files (--skip-bad)" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["object_table", "not_json", "record_without_token", "missing_ego_poses"])
def test_malformed_tables_are_one_line_naming_the_table(dataroot, tmp_path, capsys, case):
    tables = dataroot / "v1.0-mini"
    sample_data = json.loads((tables / "sample_data.json").read_text())
    if case == "object_table":
        table, content = tables / "sample_data.json", '{"a": 1}'
        want = f"{table}: not a list of records (a JSON dict)"
    elif case == "not_json":
        table, content = tables / "sample_data.json", '[{"token": '
        want = f"{table}: not valid JSON ("
    elif case == "record_without_token":
        table, content = tables / "calibrated_sensor.json", json.dumps([{"name": "x"}])
        want = f"{table}: record 0 is not an object with a string 'token'"
    else:
        first = min((r for r in sample_data if r["filename"].startswith("samples/CAM_FRONT")),
                    key=lambda r: r["timestamp"])
        table, content = tables / "ego_pose.json", "[]"
        want = (f"{table}: no record '{first['ego_pose_token']}' (the ego_pose_token of sample_data "
                f"{first['token']})")
    table.write_text(content)
    bag = tmp_path / "bag"
    assert main(["--dataroot", str(dataroot), "--out", str(bag), "--scene", SCENE, "--no-progress"]) == 2
    line = one_line(capsys.readouterr().err)
    assert want in line, line
    if case != "missing_ego_poses":   # a load error: the folder, then the table file, as for missing tables
        assert line.startswith(f"nuscenes2bag: {tables}: cannot load the nuScenes tables ({table}: "), line
    assert not bag.exists()


@pytest.mark.parametrize("name", ["../escaped", "ABSOLUTE", 61])
def test_a_scene_name_that_is_no_file_name_is_refused_before_anything_is_written(dataroot, tmp_path, capsys,
                                                                                 name):
    """Without ``--scene`` each bag folder is named by its scene: a name from the table that is a path (or no
    string) wrote the bag outside ``--out`` (``../x``, ``/tmp/x``) or ended in a TypeError."""
    escaped = tmp_path / "escaped"
    name = str(escaped) if name == "ABSOLUTE" else name
    table = dataroot / "v1.0-mini" / "scene.json"
    scenes = json.loads(table.read_text())
    scenes[0]["name"] = name
    table.write_text(json.dumps(scenes))
    bags = tmp_path / "bags" / "all"
    assert main(["--dataroot", str(dataroot), "--out", str(bags), "--no-progress"]) == 2
    line = one_line(capsys.readouterr().err)
    assert (line.startswith(f"nuscenes2bag: {table}: the scene name {name!r} is no plain file name")
            if isinstance(name, str) else f"({table}: record {scenes[0]['token']}: 'name' must be a string, got 61)"
            in line), line
    assert not escaped.exists() and not (tmp_path / "bags").exists()


@pytest.mark.parametrize("table_name, link", [("sample", "next"), ("sample_data", "next"), ("sample_data", "prev")])
def test_links_that_loop_are_one_line_not_an_endless_run(dataroot, tmp_path, capsys, table_name, link):
    """A ``next``/``prev`` link back to a record already passed: the walk along the chain never ended and its
    records filled the memory (2 GB in 2 minutes)."""
    table = dataroot / "v1.0-mini" / f"{table_name}.json"
    records = json.loads(table.read_text())
    record = next(r for r in records if table_name == "sample" or r["filename"].startswith("samples/CAM_FRONT"))
    record[link] = record["token"]
    table.write_text(json.dumps(records))
    bag = tmp_path / "bag"
    assert main(["--dataroot", str(dataroot), "--out", str(bag), "--scene", SCENE, "--no-progress"]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"nuscenes2bag: {table}: the '{link}' links loop back to record {record['token']!r} (the {link} of "
        f"{table_name} {record['token']})")
    assert not bag.exists()


def test_channel_named_twice_is_converted_once(dataroot, tmp_path):
    bag = tmp_path / "bag"
    assert main(["--dataroot", str(dataroot), "--out", str(bag), "--scene", SCENE, "--no-progress",
                 "--channels", "CAM_FRONT", "CAM_FRONT"]) == 0
    assert image_count(bag) == (6, 6)


@pytest.mark.parametrize("name", ["", "  "])
def test_empty_scene_name_is_a_usage_error(dataroot, tmp_path, capsys, name):
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataroot", str(dataroot), "--out", str(tmp_path / "bags"), "--scene", name])
    assert exit_info.value.code == 2
    assert one_line(capsys.readouterr().err).startswith("nuscenes2bag: error: argument --scene: a scene name must "
                                                        "not be empty")
    assert not (tmp_path / "bags").exists()


@pytest.mark.parametrize("below", ["x", "x/y"])
def test_a_file_in_the_output_path_is_cannot_write(dataroot, tmp_path, capsys, below):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not ours")
    out = blocker / below
    assert main(["--dataroot", str(dataroot), "--out", str(out), "--scene", SCENE, "--no-progress"]) == 1
    assert one_line(capsys.readouterr().err).startswith(f"nuscenes2bag: cannot write {out}: {blocker} is a file, "
                                                        "not a folder [Errno ")
    assert blocker.read_text() == "not ours"


def test_unwritable_bag_folder_names_the_bag_not_its_temporary(dataroot, tmp_path, capsys):
    with readonly_dir(tmp_path / "ro") as ro:
        assert main(["--dataroot", str(dataroot), "--out", str(ro / "a"), "--scene", SCENE, "--no-progress"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"nuscenes2bag: cannot write {ro / 'a'}: "), line
    assert "read-only file system" in line or "permission denied" in line
