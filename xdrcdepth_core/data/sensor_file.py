"""Reading one sensor file of an untrusted nuScenes-format folder, with a bound on what it may cost.

A ``filename`` in ``sample_data.json`` may name any path: ``/dev/zero`` (endless) or a huge file was read whole
until the kernel killed the process (23.8 GB RSS, a black-box run of ``nuscenes2bag`` and ``prepare``). Sensor
files are small: a nuScenes CAM_FRONT JPEG ~0.2 MB, a LiDAR sweep ~0.7 MB, a radar PCD ~10 kB, and even a
4096 x 4096 RGB PNG (the tools' largest image) is under 50 MB stored without compression. Our choice: a
regular file of at most :data:`MAX_SENSOR_FILE_BYTES`, else ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
import stat

#: The largest sensor file read (our choice, see the module docstring).
MAX_SENSOR_FILE_BYTES = 128 * 2**20


def read_sensor_file(path: str | os.PathLike, limit: int = MAX_SENSOR_FILE_BYTES) -> bytes:
    """The bytes of ``path``; ``ValueError`` naming it when it is no regular file or larger than ``limit``,
    ``OSError`` when it cannot be read."""
    with open(path, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{path}: not a regular file (a device, pipe or socket is no sensor file)")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path}: larger than {limit // 2**20} MiB, more than any sensor file of a recording")
    return data
