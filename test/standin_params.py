"""pytest params for the conformance suites of :mod:`xdrcdepth_ros.standins`: our stand-in, and the upstream module
where it is importable (a full ROS 2 install), so one suite checks both."""

import importlib

import pytest

from xdrcdepth_ros.standins import UPSTREAM


def implementations(name: str) -> list:
    """``pytest.param``s of stand-in ``name`` (id ``standin``) and of its upstream module (id: its name) if present."""
    params = [pytest.param(importlib.import_module(f"xdrcdepth_ros.standins.{name}"), id="standin")]
    try:
        params.append(pytest.param(importlib.import_module(UPSTREAM[name]), id=UPSTREAM[name]))
    except ImportError:
        pass
    return params
