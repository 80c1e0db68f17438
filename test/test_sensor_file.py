"""A sensor file named by an untrusted table is read with a bound: /dev/zero (endless) and a file over the
limit are one ValueError naming the file, before their bytes are held (both were read whole until the kernel
killed the process); the readers of radar PCDs and LiDAR sweeps go through it."""

import pytest

from xdrcdepth_core.data.lidar import read_lidar_bin
from xdrcdepth_core.data.radar_pcd import read_radar_pcd
from xdrcdepth_core.data.sensor_file import MAX_SENSOR_FILE_BYTES, read_sensor_file


def test_a_file_within_the_limit_is_read_whole(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    assert read_sensor_file(path, limit=3000) == b"abc" * 1000


def test_a_file_over_the_limit_is_named(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(3 * 2**20 + 1))
    with pytest.raises(ValueError, match=f"^{path}: larger than 3 MiB, more than any sensor file of a recording$"):
        read_sensor_file(path, limit=3 * 2**20)
    assert MAX_SENSOR_FILE_BYTES == 128 * 2**20


@pytest.mark.parametrize("reader", [read_sensor_file, read_radar_pcd, read_lidar_bin])
def test_a_device_is_no_sensor_file(reader):
    with pytest.raises(ValueError, match="^/dev/zero: not a regular file"):
        reader("/dev/zero")
