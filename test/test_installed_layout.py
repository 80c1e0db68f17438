"""What a non-editable install (``pip wheel`` + ``pip install``, run from outside the checkout) holds and finds.

Building a wheel takes too long for a test, so the pieces are checked one by one: the ``data_files`` setup.py
hands to setuptools against a walk of the repository's ``config/``, and the repository-relative defaults
(:func:`xdrcdepth_core.share.shipped_file`) with the current folder outside the checkout and a share folder laid
out as the install lays it out (conftest's ``installed_share``).
"""

import os
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest
import setuptools

from conftest import REPO
from xdrcdepth_core.cli import main
from xdrcdepth_core.share import shipped_file

DATA_CONFIG = "config/data/synthetic_benchmark.yaml"


@pytest.fixture(scope="module")
def setup_arguments():
    """The keyword arguments setup.py passes to ``setuptools.setup`` (run from the repository root, as pip and
    colcon run it)."""
    seen = {}
    patch = pytest.MonkeyPatch()
    patch.setattr(setuptools, "setup", lambda **kwargs: seen.update(kwargs))
    patch.chdir(REPO)
    try:
        runpy.run_path(str(REPO / "setup.py"))
    finally:
        patch.undo()
    return seen


def test_setup_installs_every_config_file_under_share_config_keeping_its_folder(setup_arguments):
    """``glob("config/*.yaml")`` installed config/xdrcdepth.yaml alone: ablation/, data/, train/ were nowhere."""
    installed = {(folder, source) for folder, sources in setup_arguments["data_files"] for source in sources}
    in_repo = {os.path.relpath(os.path.join(root, name), REPO)
               for root, _, names in os.walk(REPO / "config") for name in names}
    assert {"config/ablation/synthetic.yaml", DATA_CONFIG, "config/train/synthetic/teacher.yaml"} <= in_repo
    assert {(f"share/xdrcdepth_ros/{os.path.dirname(path)}", path) for path in in_repo} <= installed


def test_setup_package_data_patterns_each_name_a_file(setup_arguments):
    """``xdrcdepth_core/configs/*.yaml`` named a folder that does not exist."""
    for package, patterns in setup_arguments["package_data"].items():
        for pattern in patterns:
            assert list((REPO / package).glob(pattern)), f"{package}/{pattern} matches nothing"


def test_a_repository_relative_default_is_the_local_file_else_the_installed_copy(installed_share, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.chdir(REPO)                  # a source checkout run from its root: the same relative path as before
    assert shipped_file(DATA_CONFIG) == Path(DATA_CONFIG)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert shipped_file(DATA_CONFIG) == Path(DATA_CONFIG)          # not installed either: named as it was
    (installed_share / DATA_CONFIG).parent.mkdir(parents=True)
    shutil.copyfile(REPO / DATA_CONFIG, installed_share / DATA_CONFIG)
    assert shipped_file(DATA_CONFIG) == installed_share / DATA_CONFIG
    (work / DATA_CONFIG).parent.mkdir(parents=True)
    (work / DATA_CONFIG).write_text("root: mine\n")
    assert shipped_file(DATA_CONFIG) == Path(DATA_CONFIG)          # the current folder's own copy first
    assert shipped_file(work / "absent.yaml") == work / "absent.yaml"


def test_build_data_without_config_reads_the_installed_copy_and_a_given_path_as_given(installed_share, tmp_path,
                                                                                      monkeypatch, capsys):
    """Installed, `xdrcdepth build-data` said "cannot read data config config/data/synthetic_benchmark.yaml",
    exit 2. The installed copy here lacks a key, so the command stops at reading it, naming the file it read."""
    monkeypatch.chdir(tmp_path)
    installed = installed_share / DATA_CONFIG
    installed.parent.mkdir(parents=True)
    installed.write_text("root: .cache/x\n")
    assert main(["build-data"]) == 2
    assert capsys.readouterr().err.startswith(f"xdrcdepth build-data: {installed}: unknown keys [], missing keys [")
    assert main(["build-data", "--config", DATA_CONFIG]) == 2     # typed by the user: relative to the current folder
    assert capsys.readouterr().err.startswith(f"xdrcdepth build-data: cannot read data config {DATA_CONFIG}: ")


def test_ablate_without_config_runs_the_installed_study_and_its_referenced_configs(installed_share, tmp_path,
                                                                                   monkeypatch, capsys):
    """The ablation YAML names its data, teacher and student configs repository-relative (as run from a checkout's
    root); installed, those are found in the share folder too."""
    shutil.copytree(REPO / "config", installed_share / "config")
    monkeypatch.chdir(tmp_path)
    assert main(["ablate", "--dry-run", "--only", "direct"]) == 0
    assert capsys.readouterr().out.splitlines() == ["teacher: to do", "direct seed 0: to do", "direct seed 1: to do",
                                                    "direct seed 2: to do"]
    assert not (tmp_path / "runs").exists()


def test_setup_installs_the_tf2_msgs_generator_where_the_missing_line_names_it(setup_arguments):
    """tf2_msgs has no wheel; an installed package must be able to generate it (xdrcdepth_ros/tf_messages.py)."""
    from xdrcdepth_ros.tf_messages import BUILD_REQUIREMENTS, GENERATOR

    installed = {(os.path.normpath(folder), source) for folder, sources in setup_arguments["data_files"]
                 for source in sources}
    for path in (GENERATOR, BUILD_REQUIREMENTS):
        assert (os.path.normpath(os.path.join("share/xdrcdepth_ros", os.path.dirname(path))), path) in installed


def test_the_sdist_manifest_holds_every_tracked_file_the_build_and_the_tests_need(tmp_path):
    """Without MANIFEST.in the sdist lacked the test helpers, requirements*.txt, scripts/, config subfolders, docs/
    and .ci/. setuptools' own reading of MANIFEST.in, over a clean export of the tracked files (building the sdist
    takes longer), against ``git ls-files``."""
    from setuptools.command.egg_info import FileList

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout (an unpacked sdist): no tracked files to compare with")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(f"git -C {REPO} archive --format=tar HEAD | tar -x -C {tmp_path}", shell=True, check=True)
    shutil.copyfile(REPO / "MANIFEST.in", tmp_path / "MANIFEST.in")      # the one under test, committed or not
    (tmp_path / "test" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "test" / "__pycache__" / "conftest.cpython-311.pyc").write_bytes(b"")
    for ignored in (".venv/bin/python", ".cache/test/x.npz", "artifacts/demo/x.png", "mutants/x.py"):
        (tmp_path / ignored).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / ignored).write_bytes(b"")
    files = FileList()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        for line in (tmp_path / "MANIFEST.in").read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                files.process_template_line(line)
    listed = set(files.files)
    needed = {path for path in tracked if "/" not in path or path.split("/")[0] in (
        "test", "scripts", "config", "docs", ".ci", "launch", "rviz", "resource")}
    assert {"test/conftest.py", "test/fs_faults.py", "requirements.txt", "scripts/build_tf2_msgs.sh",
            "config/train/synthetic/student.yaml", ".ci/run"} <= needed
    assert needed - {"setup.py", "MANIFEST.in"} <= listed
    assert not {path for path in listed if path.split("/")[0] in (".venv", ".cache", "artifacts", "mutants")
                or "__pycache__" in path or path.endswith(".pt")}
