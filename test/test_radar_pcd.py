"""nuScenes radar PCD reading/writing against the official files in ../shared and the devkit reader."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from nuscenes.utils.data_classes import RadarPointCloud

from xdrcdepth_core.data.radar_pcd import (RADAR_FIELDS, RADAR_RECORD_DTYPE, TRAILING_ZERO_BYTES,
                                           radar_pcd_bytes, read_radar_pcd, write_radar_pcd)

KF0_RADAR = "samples/RADAR_FRONT/n015-2018-07-24-11-22-45+0800__RADAR_FRONT__1532402927664178.pcd"


def _official_sha256(samples: Path) -> dict[str, str]:
    """File name -> sha256 of the official v1.0-mini files (from Git-LFS pointers, see SOURCES.md)."""
    lines = (samples / "meta" / "official_sha256_scene-0061.txt").read_text().splitlines()
    return {name: digest for name, digest, _ in (ln.split() for ln in lines if not ln.startswith("#"))}


def test_record_layout_is_43_packed_bytes():
    assert RADAR_RECORD_DTYPE.itemsize == 43
    assert len(RADAR_FIELDS) == 18


def test_read_then_write_reproduces_every_official_file(nuscenes_samples, tmp_path):
    files = sorted((nuscenes_samples / "samples" / "RADAR_FRONT").glob("*.pcd"))
    assert len(files) == 39
    official = _official_sha256(nuscenes_samples)
    for src in files:
        fields = read_radar_pcd(src)
        out = tmp_path / src.name
        write_radar_pcd(out, fields)
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        assert digest == hashlib.sha256(src.read_bytes()).hexdigest() == official[src.name], src.name
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temp file behind"


def test_fields_match_the_devkit_reader(nuscenes_samples):
    path = nuscenes_samples / KF0_RADAR
    fields = read_radar_pcd(path)
    assert len(fields["x"]) == 125
    all_states = list(range(18))
    devkit = RadarPointCloud.from_file(str(path), invalid_states=all_states,
                                       dynprop_states=all_states, ambig_states=all_states).points
    ours = np.stack([fields[name].astype(np.float64) for name in RADAR_FIELDS])
    np.testing.assert_array_equal(ours, devkit)
    assert np.all(fields["z"] == 0)  # nuScenes radar has no elevation


def test_empty_cloud_round_trips_as_devkit_nan_record(tmp_path):
    empty = {name: np.zeros(0) for name in RADAR_FIELDS}
    path = tmp_path / "empty.pcd"
    write_radar_pcd(path, empty)
    assert path.stat().st_size == len(radar_pcd_bytes(empty))
    assert b"WIDTH 1\n" in path.read_bytes()
    assert all(len(v) == 0 for v in read_radar_pcd(path).values())
    assert RadarPointCloud.from_file(str(path)).nbr_points() == 0


def test_written_synthetic_cloud_reads_back_in_the_devkit(tmp_path):
    rng = np.random.default_rng(0)
    n = 7
    fields = {name: np.zeros(n) for name in RADAR_FIELDS}
    fields.update(x=rng.uniform(1, 80, n), y=rng.uniform(-10, 10, n), rcs=rng.uniform(-5, 30, n),
                  vx_comp=rng.normal(size=n), id=np.arange(n) + 300, dyn_prop=np.full(n, 1),
                  ambig_state=np.full(n, 3), pdh0=np.full(n, 1))
    path = tmp_path / "synthetic.pcd"
    write_radar_pcd(path, fields)
    header_bytes = 370 - 4  # official header with "WIDTH 7"/"POINTS 7" instead of "125"
    assert path.stat().st_size == header_bytes + 43 * n + TRAILING_ZERO_BYTES
    pc = RadarPointCloud.from_file(str(path))  # default filters keep all: valid, unambiguous, dyn_prop 1
    assert pc.nbr_points() == n
    np.testing.assert_allclose(pc.points[0], fields["x"].astype(np.float32))
    np.testing.assert_array_equal(pc.points[4], fields["id"])


def test_write_rejects_bad_fields(tmp_path):
    fields = {name: np.zeros(3) for name in RADAR_FIELDS}
    with pytest.raises(ValueError, match="missing"):
        write_radar_pcd(tmp_path / "a.pcd", {k: v for k, v in fields.items() if k != "rcs"})
    with pytest.raises(ValueError, match="different lengths"):
        write_radar_pcd(tmp_path / "a.pcd", {**fields, "rcs": np.zeros(4)})
    with pytest.raises(ValueError, match="dyn_prop"):
        write_radar_pcd(tmp_path / "a.pcd", {**fields, "dyn_prop": np.array([0, 1, 300])})
    with pytest.raises(ValueError, match="id"):
        write_radar_pcd(tmp_path / "a.pcd", {**fields, "id": np.array([0, 1.5, 2])})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("corrupt, message", [
    (lambda b: b[:370 + 43 * 10], "truncated"),
    (lambda b: b.replace(b"DATA binary", b"DATA ascii "), "binary only"),
    (lambda b: b.replace(b"POINTS 125", b"POINTS 126"), "WIDTH x HEIGHT"),
    (lambda b: b.replace(b"SIZE 4 4 4 1 2", b"SIZE 4 4 4 1"), "different lengths"),
    (lambda b: b.replace(b"vx_rms vy_rms", b"vx_rms vy_xx"), "lacks fields vy_rms"),
    (lambda b: b[:200], "no complete header"),
    (lambda b: b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000, "not a PCD"),
])
def test_malformed_files_name_the_file(nuscenes_samples, tmp_path, corrupt, message):
    bad = tmp_path / "bad_radar.pcd"
    bad.write_bytes(corrupt((nuscenes_samples / KF0_RADAR).read_bytes()))
    with pytest.raises(ValueError, match=message) as err:
        read_radar_pcd(bad)
    assert "bad_radar.pcd" in str(err.value)
