"""Test-wide settings: DDS stays on loopback, each ROS test gets its own domain, paths to shared data."""

import itertools
import os
import signal
import sys
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# one OpenMP thread per test process: on the shared 2-core machine, torch's idle OpenMP threads spin while
# other jobs hold the cores, and `pytest -m "not slow"` took 260 s with 2 threads next to a training run
# against 35 s with 1 (2026-12-03); the node tests run their nodes with cpu_threads 1 anyway
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The tests that Ctrl-C a program expect it to act on SIGINT, as it does started from a terminal. A suite started in
# the background of a non-interactive shell (`scripts/run.sh test &`) inherits SIGINT ignored, and POSIX keeps an
# ignored signal ignored across exec, so every program a test started ignored it too: five such tests failed
# (2026-12-07). A handler, unlike SIG_IGN, is reset to the default action in a child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
# exports, parity frames and auto-selection records of the tests (git-ignored, kept between runs, never ~/.cache)
os.environ.setdefault("XDRCDEPTH_CACHE", str(REPO / ".cache" / "test"))
SHARED = REPO.parent / "shared"
# the real nuScenes samples: ../shared/data/nuscenes_samples, or where $XDRCDEPTH_NUSCENES_SAMPLES says (as the package)
NUSCENES_SAMPLES = Path(os.environ.get("XDRCDEPTH_NUSCENES_SAMPLES", "") or SHARED / "data" / "nuscenes_samples")
ARTIFACTS = REPO / "artifacts" / "test"

# ROS_DOMAIN_IDs 1-200, split between the pytest-xdist workers (scripts/run.sh test runs two per core): worker
# k of n takes its own span, in which its tests (one at a time) cycle; the start is spread by pid so that two
# runs side by side rarely meet.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_DOMAIN_SPAN = 200 // _WORKERS
# (modulo: a worker that replaces a crashed one is numbered on, gw2 of 2, and must stay below Fast DDS's 232)
_FIRST_DOMAIN = 1 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]) % _WORKERS * _DOMAIN_SPAN
_domain_ids = itertools.count(os.getpid() % _DOMAIN_SPAN)


@pytest.fixture
def ros_domain_id(monkeypatch):
    """A ROS_DOMAIN_ID no other test running at the same time uses; set in os.environ for child processes."""
    domain = _FIRST_DOMAIN + next(_domain_ids) % _DOMAIN_SPAN
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


@pytest.fixture
def ros_context(ros_domain_id):
    """An initialised rclpy context of its own on the test's ROS_DOMAIN_ID, shut down after the test."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.fixture
def installed_share(tmp_path, monkeypatch):
    """The share folder of a non-editable ``pip install`` (``<prefix>/share/xdrcdepth_ros`` with its ``launch/``),
    which :func:`xdrcdepth_core.share.share_directory` then finds before the checkout (no ament index here);
    empty otherwise: a test puts there what the install it plays holds."""
    share = tmp_path / "prefix" / "share" / "xdrcdepth_ros"
    (share / "launch").mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    return share


@pytest.fixture
def one_torch_thread():
    """torch on one CPU thread for this test, as the depth node under test runs (``cpu_threads: 1``): the core's
    numbers then equal the node's bit for bit (oneDNN's reductions follow the thread count, and an earlier test
    in this worker may have set another); the previous count is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def nuscenes_samples():
    """The real nuScenes samples in ../shared or ``$XDRCDEPTH_NUSCENES_SAMPLES`` (read-only; never copied into the
    repo)."""
    if not (NUSCENES_SAMPLES / "frames.json").exists():
        pytest.fail(f"real nuScenes samples missing at {NUSCENES_SAMPLES}")
    return NUSCENES_SAMPLES


@pytest.fixture
def artifacts_dir():
    """Folder for test artifacts (overlay PNGs etc.), kept after the run, ignored by git."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
