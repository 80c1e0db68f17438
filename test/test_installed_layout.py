"""What a non-editable install (``pip wheel`` + ``pip install``, run from outside the checkout) holds and finds.

Building a wheel takes too long for a test, so the pieces are checked one by one: the ``data_files`` setup.py
hands to setuptools against a walk of the repository's ``config/``, and the repository-relative defaults
(:func:`xdrcdepth_core.share.shipped_file`) with the current folder outside the checkout and a share folder laid
out as the install lays it out (conftest's ``installed_share``).
"""

import os
import runpy
import shutil
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
