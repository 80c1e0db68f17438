"""The package's installed non-Python files: its share folder, and repository-relative defaults found there.

``setup.py`` installs the launch files, the whole ``config/`` tree, ``rviz/``, ``scripts/build_tf2_msgs.sh`` and
``requirements-msggen.txt`` into ``<prefix>/share/xdrcdepth_ros/`` under the paths they have in the repository, so
a repository-relative path such as ``config/data/synthetic_benchmark.yaml`` names the same file in the share
folder of any install. Importing this module imports nothing heavy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: the ament package name; its share folder is ``share/<PACKAGE>``
PACKAGE = "xdrcdepth_ros"


class NoShareFolder(ValueError):
    """The package's share folder is nowhere: not in the ament index, ``<prefix>/share`` or a source checkout."""


def share_directory(package: str = PACKAGE) -> Path:
    """The package's share folder: the ament index (colcon install), ``<prefix>/share/<pkg>`` (pip install),
    else the source checkout this module runs from (``pip install -e .``)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(package))
    except (ImportError, LookupError, OSError):
        pass
    installed = Path(sys.prefix) / "share" / package
    if (installed / "launch").is_dir():
        return installed
    checkout = Path(__file__).resolve().parents[1]
    if package == PACKAGE and (checkout / "launch").is_dir():
        return checkout
    raise NoShareFolder(f"package {package!r} has no share folder (not in the ament index, "
                        f"{installed} or a source checkout)")


def shipped_file(path: str | os.PathLike) -> Path:
    """A repository-relative default or reference (``config/ablation/synthetic.yaml``): ``path`` itself where it
    exists relative to the current folder (a source checkout run from its root, as before), else the copy the
    package installed in its share folder, else ``path`` unchanged (the caller's error then names it). A path the
    user typed on a command line does not come here: it is taken as given."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    try:
        installed = share_directory() / path
    except NoShareFolder:
        return path
    return installed if installed.exists() else path
