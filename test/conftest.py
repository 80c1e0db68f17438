"""Test-wide settings: DDS stays on loopback, each ROS test gets its own domain, paths to shared data."""

import itertools
import os
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# one OpenMP thread per test process: on the shared 2-core machine, torch's idle OpenMP threads spin while
# other jobs hold the cores, and `pytest -m "not slow"` took 260 s with 2 threads next to a training run
# against 35 s with 1 (2026-12-03); the node tests run their nodes with cpu_threads 1 anyway
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
# exports, parity frames and auto-selection records of the tests (git-ignored, kept between runs, never ~/.cache)
os.environ.setdefault("XDRCDEPTH_CACHE", str(REPO / ".cache" / "test"))
SHARED = REPO.parent / "shared"
NUSCENES_SAMPLES = SHARED / "data" / "nuscenes_samples"
ARTIFACTS = REPO / "artifacts" / "test"

_domain_ids = itertools.count((os.getpid() % 40) * 2 + 10)


@pytest.fixture
def ros_domain_id(monkeypatch):
    """A ROS_DOMAIN_ID no other test in this run uses; set in os.environ for child processes."""
    domain = next(_domain_ids) % 200 + 1
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


@pytest.fixture
def nuscenes_samples():
    """The real nuScenes samples in ../shared (read-only; never copied into the repo)."""
    if not (NUSCENES_SAMPLES / "frames.json").exists():
        pytest.fail(f"real nuScenes samples missing at {NUSCENES_SAMPLES}")
    return NUSCENES_SAMPLES


@pytest.fixture
def artifacts_dir():
    """Folder for test artifacts (overlay PNGs etc.), kept after the run, ignored by git."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
