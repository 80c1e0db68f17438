"""Stand-in for ``rosidl_runtime_py.utilities.get_message``: message classes from ROS type names
(``sensor_msgs/msg/Image``).

``rosidl_runtime_py`` is not available from the ROS wheels, and the bag player, recorder and the Foxglove
viewer only know types as strings (from a bag's metadata or the ROS graph). :func:`get_message` has the
upstream name; :func:`message_class` raises :class:`UnknownMessageType` (a ``LookupError``) with a reason.
"""

from __future__ import annotations

import importlib


class UnknownMessageType(LookupError):
    """The type name is malformed or its interface package is not importable here."""


def message_class(type_name: str) -> type:
    """The generated Python class for ``pkg/msg/Name`` (also accepts the ROS 1 style ``pkg/Name``)."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise UnknownMessageType(f"malformed message type name {type_name!r} (want pkg/msg/Name)")
    package, kind, name = parts
    try:
        module = importlib.import_module(f"{package}.{kind}")
    except ImportError as exc:
        raise UnknownMessageType(f"message package {package!r} for {type_name} is not installed "
                                 f"({exc})") from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise UnknownMessageType(f"{package}.{kind} has no message {name!r} ({type_name})") from None


def get_message(identifier: str) -> type:
    """``rosidl_runtime_py.utilities.get_message``: the class for ``pkg/msg/Name``."""
    return message_class(identifier)
