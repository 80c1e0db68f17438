"""rosidl_runtime_py message lookup, as ros2/rosidl_runtime_py ``rosidl_runtime_py/import_message.py``
(``import_message_from_namespaced_type``) and its ``test/rosidl_runtime_py/test_import_message.py`` define it:
``importlib.import_module('pkg.kind')`` then ``getattr``; ``Name_FeedbackMessage`` of an action resolves to
``Name.Impl.FeedbackMessage``. Runs against the stand-in (upstream needs rosidl_parser, not installed here).
"""

import sys
import types

import pytest
from sensor_msgs.msg import Image

from xdrcdepth_ros.standins import rosidl_runtime_py as standin


def test_message_class_by_name():
    assert standin.get_message("sensor_msgs/msg/Image") is Image


def test_action_feedback_message(monkeypatch):
    """test_import_namespaced_type_feedback_message: pkg/action/Fibonacci_FeedbackMessage is
    Fibonacci.Impl.FeedbackMessage (a fake action module stands in for test_msgs.action here)."""
    class FeedbackMessage:
        pass

    class Fibonacci:
        class Impl:
            pass

    Fibonacci.Impl.FeedbackMessage = FeedbackMessage
    package = types.ModuleType("xdrc_fake_actions")
    package.__path__ = []
    module = types.ModuleType("xdrc_fake_actions.action")
    module.Fibonacci = Fibonacci
    monkeypatch.setitem(sys.modules, "xdrc_fake_actions", package)
    monkeypatch.setitem(sys.modules, "xdrc_fake_actions.action", module)
    assert standin.get_message("xdrc_fake_actions/action/Fibonacci_FeedbackMessage") is FeedbackMessage


def test_errors_are_upstreams_exception_types():
    """A package that does not import: ImportError; a missing class: AttributeError (both also the
    stand-in's UnknownMessageType); a malformed name: ValueError."""
    with pytest.raises(ImportError):
        standin.get_message("no_such_pkg_xyz/msg/Thing")
    with pytest.raises(AttributeError):
        standin.get_message("sensor_msgs/msg/NoSuchMessage")
    with pytest.raises(ValueError):
        standin.get_message("sensor_msgs/msg/Image/extra")
    for name in ("no_such_pkg_xyz/msg/Thing", "sensor_msgs/msg/NoSuchMessage", "a/b/c/d"):
        with pytest.raises(standin.UnknownMessageType):
            standin.message_class(name)
