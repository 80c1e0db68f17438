"""Stand-in for ``rosidl_runtime_py.utilities.get_message``: message classes from ROS type names
(``sensor_msgs/msg/Image``).

``rosidl_runtime_py`` is not available from the ROS wheels, and the bag player, recorder and the Foxglove
viewer only know types as strings (from a bag's metadata or the ROS graph). :func:`get_message` has the
upstream name; :func:`message_class` raises :class:`UnknownMessageType` (a ``LookupError``) with a reason.
Follows ros2/rosidl_runtime_py ``rosidl_runtime_py/import_message.py`` (rolling)
``import_message_from_namespaced_type``: the module ``pkg.kind`` is imported (a missing one is upstream's
``ImportError``), the class is an attribute of it (a missing one: ``AttributeError``), and an action's
``Name_FeedbackMessage`` is ``Name.Impl.FeedbackMessage`` (the type of ``_action/feedback`` topics). The
errors here are those exceptions too (:class:`MalformedTypeName` also a ``ValueError``), so code written
for either catches them. Tested in test/test_standin_rosidl_runtime_py.py.
"""

from __future__ import annotations

import importlib


class UnknownMessageType(LookupError):
    """The type name is malformed or its interface package is not importable here."""


class MalformedTypeName(UnknownMessageType, ValueError):
    """Not ``pkg/msg/Name`` (nor ``pkg/Name``)."""


class MissingInterfacePackage(UnknownMessageType, ImportError):
    """``pkg.kind`` is not importable (upstream: the ``ImportError`` of ``importlib.import_module``)."""


class MissingMessage(UnknownMessageType, AttributeError):
    """The module has no such class (upstream: the ``AttributeError`` of ``getattr``)."""


def message_class(type_name: str) -> type:
    """The generated Python class for ``pkg/msg/Name`` (also accepts the ROS 1 style ``pkg/Name``)."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise MalformedTypeName(f"malformed message type name {type_name!r} (want pkg/msg/Name)")
    package, kind, name = parts
    try:
        module = importlib.import_module(f"{package}.{kind}")
    except ImportError as exc:
        raise MissingInterfacePackage(f"message package {package!r} for {type_name} is not installed "
                                      f"({exc})") from exc
    try:
        if name.endswith("_FeedbackMessage"):   # an action's feedback message: Action.Impl.FeedbackMessage
            action, inner = name.split("_", 1)
            return getattr(getattr(getattr(module, action), "Impl"), inner)
        return getattr(module, name)
    except AttributeError:
        raise MissingMessage(f"{package}.{kind} has no message {name!r} ({type_name})") from None


def get_message(identifier: str) -> type:
    """``rosidl_runtime_py.utilities.get_message``: the class for ``pkg/msg/Name``."""
    return message_class(identifier)
