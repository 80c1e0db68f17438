"""The docs say what the package does: every path, console script, flag, parameter, launch argument and
nuScenes bag topic that README.md, docs/ and config/ name is checked against the code.

- every ``docs/``, ``config/``, ``launch/``, ``rviz/``, ``scripts/``, ``test/``, ``xdrcdepth_core/``,
  ``xdrcdepth_ros/`` path and every ``*.launch.py`` named exists (outputs a command writes are listed in
  :data:`WRITTEN_BY_A_COMMAND`);
- every console script of ``setup.py`` exits 0 on ``--help`` with a usage text and starts nothing;
- every command line shown (code blocks and inline code) of a console script, ``xdrcdepth <command>``,
  ``python -m <module>``, ``torchrun -m xdrcdepth_core.cli`` or ``ros2 run xdrcdepth_ros``: each ``--flag`` /
  ``-f`` it passes is an option of that command's ``--help``; for the nodes, each ``-p NAME:=`` is a declared
  parameter and each ``-r FROM:=`` one of the node's topics;
- every launch argument given on a ``ros2 launch`` / ``xdrcdepth launch`` line and every row of an
  "Argument" table is declared by the launch file named, and the tables list every declared argument;
- the parameter tables (``docs/depth_node.md``, the Foxglove viewer's) equal the declared parameters:
  names, defaults, ranges, read-only;
- every ``/cam_*``, ``/radar_*``, ``/lidar_*`` topic named is one ``nuscenes2bag`` writes;
- the README's start-up promise holds: bad parameters -> one line naming each, exit code 2;
- the README's example experiment YAML resolves and each of its losses builds with the options shown.

Rename a file, a flag, a launch argument or a parameter and a test here fails, naming the doc and the line.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
#: reports a command generates (they record the command line that made them; regenerated, never edited)
GENERATED = [REPO / "docs" / "benchmarks", REPO / "docs" / "results"]
CONFIGS = sorted((REPO / "config").rglob("*.yaml"))
#: paths the docs name as a command's output (they appear when the command runs): path -> the command
WRITTEN_BY_A_COMMAND = {"docs/results": "xdrcdepth ablate (report of config/ablation/synthetic.yaml)",
                        "docs/benchmarks/inference_gpu": "scripts/bench_gpu.sh on a CUDA machine (.md and .json)"}
PATH = re.compile(r"(?<![\w/.<>$~-])((?:docs|config|launch|rviz|scripts|test|xdrcdepth_core|xdrcdepth_ros)/"
                  r"[\w.\-/*<>]*)")
LAUNCH_FILE = re.compile(r"(?<![\w/.-])([a-z_]+\.launch\.py)\b")
BAG_TOPIC = re.compile(r"(?<![\w/<>-])(/(?:cam|radar|lidar)_[A-Za-z_]+(?:/[A-Za-z_]+)?)", re.IGNORECASE)
FLAG = re.compile(r"^--?[A-Za-z][\w-]*")
HELP_OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
#: ``python -m`` modules of the console scripts besides those in setup.py
MODULE_SCRIPTS = {"xdrcdepth_core.cli": "xdrcdepth"}


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def console_scripts() -> dict[str, str]:
    """``{script: "module:function"}`` from setup.py's entry points."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            entries = ast.literal_eval(node.value)["console_scripts"]
            return dict(tuple(part.strip() for part in e.split("=", 1)) for e in entries)
    raise AssertionError("setup.py has no console_scripts")


SCRIPTS = console_scripts()
MODULES = {**{target.split(":")[0]: name for name, target in SCRIPTS.items()}, **MODULE_SCRIPTS}


# --- commands shown in the docs ---------------------------------------------------------------------------

@dataclass
class Command:
    where: str           # doc:line
    script: str          # console script name
    args: list[str]      # after the script (for xdrcdepth: the sub-command first)


def _snippets(text: str):
    """``(line number, text)`` of every code-block line (continuations joined) and inline code span."""
    in_block, joined, start = False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            if not joined:
                start = number
            joined += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
            if not line.rstrip().endswith("\\"):
                yield start, joined
                joined = ""
        else:
            for span in re.findall(r"`([^`]+)`", line):
                yield number, span


def _split_commands(snippet: str) -> list[list[str]]:
    """Token lists of the commands in one shell line (comments dropped, ``;``/``&&``/``|`` split)."""
    snippet = re.sub(r"(^|\s)#.*$", "", snippet).replace("\\|", "|")
    try:
        tokens = shlex.split(snippet)
    except ValueError:
        tokens = snippet.split()
    commands, current = [], []
    for token in tokens:
        if token in (";", "&&", "||", "|"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [c for c in commands + [current] if c]


def _script_of(tokens: list[str]) -> tuple[str | None, list[str]]:
    """The console script a token list runs and its arguments, or ``(None, [])``."""
    name = Path(tokens[0]).name
    if name in SCRIPTS:
        return name, tokens[1:]
    if name in ("python", "python3", "torchrun") and "-m" in tokens:
        index = tokens.index("-m")
        if index + 1 < len(tokens) and tokens[index + 1] in MODULES:
            return MODULES[tokens[index + 1]], tokens[index + 2:]
    if tokens[:3] == ["ros2", "run", "xdrcdepth_ros"] and len(tokens) > 3 and tokens[3] in SCRIPTS:
        return tokens[3], tokens[4:]
    return None, []


def documented_commands() -> list[Command]:
    commands = []
    for doc in (d for d in DOCS if not any(folder in d.parents for folder in GENERATED)):
        for number, snippet in _snippets(doc.read_text()):
            for tokens in _split_commands(snippet):
                tokens = [t.strip("[]") for t in tokens if t.strip("[]")]
                if not tokens:
                    continue
                script, args = _script_of(tokens)
                if script and args:   # a bare name is a mention, not a command line
                    commands.append(Command(f"{rel(doc)}:{number}", script, args))
    return commands


COMMANDS = documented_commands()


def _own_flags(args: list[str]) -> list[str]:
    """The ``--flag``/``-f`` options before ``--ros-args`` (``--x=v`` as ``--x``)."""
    own = args[:args.index("--ros-args")] if "--ros-args" in args else args
    return [FLAG.match(a).group(0) for a in own if FLAG.match(a) and a != "--" and not a.startswith("--ros-args")]


def _ros_assignments(args: list[str], option: str) -> list[str]:
    """Names given with ``option NAME:=VALUE`` after ``--ros-args``."""
    if "--ros-args" not in args:
        return []
    ros = args[args.index("--ros-args") + 1:]
    return [value.split(":=")[0] for opt, value in zip(ros, ros[1:]) if opt == option and ":=" in value]


# --- help texts ----------------------------------------------------------------------------------------

def _help_text(script: str, args: list[str]) -> str:
    """The ``--help`` output of a console script (for ``xdrcdepth``: of its sub-command), in this process."""
    if script == "xdrcdepth":
        from xdrcdepth_core import cli
        argv = ([args[0]] if args and args[0] in cli.COMMANDS else []) + ["--help"]
        main = cli.main
    else:
        module, function = SCRIPTS[script].split(":")
        main = getattr(__import__(module, fromlist=[function]), function)
        argv = None
    out = io.StringIO()
    saved = sys.argv
    sys.argv = [script, "--help"]
    try:
        with contextlib.redirect_stdout(out):
            code = main(argv) if argv is not None else main()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = saved
    assert code in (0, None), f"{script} {' '.join(argv or [])} --help exited {code}"
    return out.getvalue()


_HELP_CACHE: dict[tuple, set[str]] = {}


def help_options(script: str, args: list[str]) -> set[str]:
    from xdrcdepth_core import cli
    key = (script, args[0] if script == "xdrcdepth" and args and args[0] in cli.COMMANDS else None)
    if key not in _HELP_CACHE:
        _HELP_CACHE[key] = set(HELP_OPTION.findall(_help_text(script, args)))
    return _HELP_CACHE[key]


# --- tests ------------------------------------------------------------------------------------------------

def test_the_docs_show_commands_of_every_kind():
    """The parser finds what the docs show (guards the parser itself)."""
    scripts = {c.script for c in COMMANDS}
    assert {"xdrcdepth", "depth_node", "bag_player", "bag_recorder"} <= scripts
    subcommands = {c.args[0] for c in COMMANDS if c.script == "xdrcdepth" and c.args}
    assert {"train", "teacher-cache", "eval", "build-data", "ablate", "prepare", "launch", "replay-demo",
            "nuscenes2bag", "synth", "demo", "models"} <= subcommands
    # the README's DDP line and the module form of the node are recognised
    assert any(c.script == "xdrcdepth" and c.args[:1] == ["train"] and "README.md:" in c.where
               and "--config" in c.args for c in COMMANDS)


#: what MANIFEST.in leaves out of the sdist on purpose (the 90 MB of ablation teachers): an unpacked sdist, which has
#: no .git, names them without holding them
LEFT_OUT_OF_THE_SDIST = "xdrcdepth_core/checkpoints/"


def test_named_paths_exist():
    in_sdist = not (REPO / ".git").exists()
    missing = []
    for doc in DOCS + CONFIGS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for match in PATH.finditer(line):
                path = match.group(1).rstrip(".,;:)'\"").rstrip("/")
                if "<" in path or "*" in path or any(path.startswith(out) for out in WRITTEN_BY_A_COMMAND):
                    continue
                if not (REPO / path).exists() and not (in_sdist and path.startswith(LEFT_OUT_OF_THE_SDIST)):
                    missing.append(f"{rel(doc)}:{number}: {path}")
            for name in LAUNCH_FILE.findall(line):
                if not (REPO / "launch" / name).is_file():
                    missing.append(f"{rel(doc)}:{number}: launch file {name}")
    assert not missing, "named but missing:\n" + "\n".join(missing)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_script_help_exits_0_and_starts_nothing(script):
    module, function = SCRIPTS[script].split(":")
    proc = subprocess.run([sys.executable, "-c", f"import sys; sys.argv[0] = {script!r}; "
                           f"from {module} import {function}; sys.exit({function}())", "--help"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {script}"), proc.stdout[:200]


def test_every_documented_flag_is_an_option_of_its_command():
    unknown = []
    for command in COMMANDS:
        options = help_options(command.script, command.args)
        for flag in _own_flags(command.args):
            if flag not in options:
                unknown.append(f"{command.where}: {command.script} {' '.join(command.args[:1])} {flag}")
    assert not unknown, "flags the docs pass that the command does not know:\n" + "\n".join(unknown)


def test_every_xdrcdepth_command_in_the_docs_exists_and_answers_help():
    from xdrcdepth_core import cli
    for command in (c for c in COMMANDS if c.script == "xdrcdepth"):
        assert command.args and command.args[0] in cli.COMMANDS, f"{command.where}: xdrcdepth {command.args[:1]}"
    for name in {c.args[0] for c in COMMANDS if c.script == "xdrcdepth"}:
        assert f"usage: xdrcdepth {name}" in _help_text("xdrcdepth", [name])


def test_node_parameters_and_remaps_in_the_docs_are_declared():
    from xdrcdepth_ros.node.params import PARAMETERS
    from xdrcdepth_ros.tools.foxglove_viewer import DEFAULT_TOPICS, PARAMETERS as VIEWER_PARAMETERS
    known = {"depth_node": ({p.name for p in PARAMETERS},
                            {"image", "image/compressed", "camera_info", "radar/points", "__node", "__ns"}),
             "foxglove_viewer": ({p.name for p in VIEWER_PARAMETERS}, {*DEFAULT_TOPICS, "__node", "__ns"})}
    problems = []
    for command in (c for c in COMMANDS if c.script in known):
        parameters, topics = known[command.script]
        for name in _ros_assignments(command.args, "-p"):
            if name not in parameters | {"use_sim_time"} and not name.startswith("qos_overrides."):
                problems.append(f"{command.where}: {command.script} has no parameter {name}")
        for name in _ros_assignments(command.args, "-r"):
            if name not in topics:
                problems.append(f"{command.where}: {command.script} has no topic {name} to remap")
        ros = command.args[command.args.index("--ros-args") + 1:] if "--ros-args" in command.args else []
        for opt, path in zip(ros, ros[1:]):
            if opt == "--params-file" and not path.startswith("/") and not (REPO / path).is_file():
                problems.append(f"{command.where}: params file {path} does not exist")
    assert not problems, "\n".join(problems)


def _launch_lines():
    """``(where, launch file, {argument: value})`` of every ros2 launch / xdrcdepth launch line."""
    from xdrcdepth_ros.tools.launch_graph import launch_file
    for doc in DOCS:
        for number, snippet in _snippets(doc.read_text()):
            for tokens in _split_commands(snippet):
                if tokens[:3] == ["ros2", "launch", "xdrcdepth_ros"] and len(tokens) > 3:
                    path, rest = REPO / "launch" / tokens[3], tokens[4:]
                elif (_script_of(tokens)[0] == "xdrcdepth" and _script_of(tokens)[1][:1] == ["launch"]
                      and len(_script_of(tokens)[1]) > 1 and not _script_of(tokens)[1][1].startswith("<")):
                    path, rest = launch_file(_script_of(tokens)[1][1]), _script_of(tokens)[1][2:]
                else:
                    continue
                yield (f"{rel(doc)}:{number}", path,
                       dict(t.split(":=", 1) for t in rest if ":=" in t and not t.startswith("-")))


def test_launch_arguments_on_command_lines_are_declared():
    from xdrcdepth_ros.tools.launch_graph import declared_arguments
    lines = list(_launch_lines())
    assert len(lines) >= 6
    problems = []
    for where, path, values in lines:
        declared = {a.name for a in declared_arguments(path)}
        problems += [f"{where}: {path.name} declares no argument {name}" for name in values if name not in declared]
    assert not problems, "\n".join(problems)


def _tables(text: str, first_header: str):
    """``(line number, context before, [first-column names], rows)`` of the markdown tables whose first
    header cell is ``first_header``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_header and i + 1 < len(lines) and lines[i + 1].startswith("|-"):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))])
            yield i + 1, "\n".join(lines[max(0, i - 6):i]), rows


def test_launch_argument_tables_list_exactly_the_declared_arguments():
    from xdrcdepth_ros.tools.launch_graph import declared_arguments
    checked = 0
    for doc in DOCS:
        for number, context, rows in _tables(doc.read_text(), "Argument"):
            files = LAUNCH_FILE.findall(context)
            assert files, f"{rel(doc)}:{number}: an Argument table must follow the name of its launch file"
            path = REPO / "launch" / files[-1]
            own = [a for a in declared_arguments(path) if Path(a.where.split(":")[0]) == path]
            documented = [row[0].strip("`") for row in rows]
            assert documented == [a.name for a in own], f"{rel(doc)}:{number} ({path.name})"
            checked += 1
    assert checked >= 3


def _parse_default(text: str):
    text = text.strip("`")
    return {"true": True, "false": False}.get(text, text)


def test_depth_node_parameter_table_equals_the_declared_parameters():
    from xdrcdepth_ros.node.params import PARAMETERS
    ((number, _, rows),) = list(_tables((REPO / "docs" / "depth_node.md").read_text(), "Name"))
    table = {row[0].strip("`"): row for row in rows}
    assert list(table) == [p.name for p in PARAMETERS] + ["use_sim_time"], f"docs/depth_node.md:{number}"
    for p in PARAMETERS:
        _, kind, default, read_only, _ = table[p.name]
        expected = (f'"{p.default}"' if isinstance(p.default, str) else str(p.default).lower()
                    if isinstance(p.default, bool) else "[" + ", ".join(f'"{v}"' for v in p.default) + "]"
                    if isinstance(p.default, list) else str(p.default))
        assert default.strip("`") == expected, (p.name, default, expected)
        assert read_only == ("yes" if p.read_only else "no"), p.name
        if p.range:
            assert kind.endswith(f"[{p.range[0]}, {p.range[1]}]"), (p.name, kind)


def test_foxglove_viewer_parameter_table_equals_the_declared_parameters():
    from xdrcdepth_ros.tools.foxglove_viewer import PARAMETERS
    ((number, _, rows),) = list(_tables((REPO / "docs" / "launch_and_viewers.md").read_text(), "Parameter"))
    assert [row[0].strip("`") for row in rows] == [p.name for p in PARAMETERS], number
    topics = [t.strip(" `") for t in rows[[p.name for p in PARAMETERS].index("topics")][1].split(",")]
    assert topics == next(p.default for p in PARAMETERS if p.name == "topics")


def test_nuscenes_bag_topics_are_the_ones_nuscenes2bag_writes():
    from xdrcdepth_ros.bag.nuscenes2bag import camera_topics, cloud_topic
    cameras = [f"CAM_{side}" for side in ("FRONT", "FRONT_LEFT", "FRONT_RIGHT", "BACK", "BACK_LEFT", "BACK_RIGHT")]
    clouds = [f"RADAR_{side}" for side in ("FRONT", "FRONT_LEFT", "FRONT_RIGHT", "BACK_LEFT", "BACK_RIGHT")]
    written = {t for c in cameras for t in camera_topics(c)} | {cloud_topic(c) for c in clouds + ["LIDAR_TOP"]}
    wrong, seen = [], 0
    for doc in DOCS + CONFIGS + sorted((REPO / "launch").glob("*.launch.py")):
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for topic in BAG_TOPIC.findall(line):
                seen += 1
                if topic not in written:
                    wrong.append(f"{rel(doc)}:{number}: {topic}")
    assert seen >= 10
    assert not wrong, "topics nuscenes2bag does not write:\n" + "\n".join(wrong)


@pytest.mark.slow
def test_bad_parameters_stop_the_node_with_one_line_and_exit_2(ros_domain_id):
    """README: 'bad ones (all of them) ... stop it with one line naming the problem (exit code 2)'."""
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.node.depth_node", "--ros-args", "-p", "slop:=1",
                           "-p", "queue_size:=500", "-p", "device:=gpu"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot start" in lines[0], proc.stderr
    for expected in ("slop must be a double, got 1", "queue_size = 500 is outside [1, 100]", "device = 'gpu'"):
        assert expected in lines[0], lines[0]


def test_the_readme_experiment_yaml_is_a_valid_experiment():
    """The example under "Experiment YAML": it once passed ``distance: l1`` to ``xkd`` (the option is ``compare``),
    which stops a training at its start."""
    import yaml

    from xdrcdepth_core.distill import build_loss_entry
    from xdrcdepth_core.train.config import resolve_config

    text = (REPO / "README.md").read_text()
    block = re.search(r"\*\*Experiment YAML\*\*.*?```yaml\n(.*?)```", text, re.S).group(1)
    cfg = resolve_config(base=yaml.safe_load(block))
    assert [entry["name"] for entry in cfg["losses"]] == ["depth_l1", "xkd", "dkd"]
    for entry in cfg["losses"]:
        build_loss_entry(entry)
