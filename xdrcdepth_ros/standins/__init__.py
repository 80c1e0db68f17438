"""Stand-ins for upstream ROS 2 Python libraries that do not install from PyPI, one module each, named
after what it replaces and offering the upstream API (the subset this package uses, with the upstream
semantics; each module's docstring says which and where it is tested):

========================  =====================================  ==========================================
module here               replaces                                conformance tests
========================  =====================================  ==========================================
``message_filters``       ``message_filters`` (Python)            test/test_sync_conformance.py,
                                                                  test/test_standin_message_filters.py
``tf2_ros``               ``tf2_ros`` (``tf2_ros_py``)            test/test_tf_buffer.py,
                                                                  test/test_standin_tf2.py
``cv_bridge``             ``cv_bridge.CvBridge`` (numpy path)     test/test_cv_bridge.py,
                                                                  test/test_standin_cv_bridge.py
``point_cloud2``          ``sensor_msgs_py.point_cloud2``         test/test_point_cloud2.py,
                                                                  test/test_standin_point_cloud2.py
``rosidl_runtime_py``     ``rosidl_runtime_py.utilities``         test/test_nuscenes2bag.py (message_class),
                                                                  test/test_standin_rosidl_runtime_py.py
========================  =====================================  ==========================================

:func:`active` gives the module to use: the upstream one when it is importable (a full ROS 2 install),
ours otherwise. Importing this package imports none of them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: our module -> the upstream module it stands in for
UPSTREAM = {
    "message_filters": "message_filters",
    "tf2_ros": "tf2_ros",
    "cv_bridge": "cv_bridge",
    "point_cloud2": "sensor_msgs_py.point_cloud2",
    "rosidl_runtime_py": "rosidl_runtime_py.utilities",
}


def active(name: str) -> ModuleType:
    """The upstream module for ``name`` (a key of :data:`UPSTREAM`) when importable, else our stand-in."""
    try:
        return importlib.import_module(UPSTREAM[name])
    except ImportError:
        return importlib.import_module(f"{__name__}.{name}")


def implementation(name: str) -> str:
    """The module name :func:`active` returns for ``name`` (logged by the node at start-up)."""
    return active(name).__name__
