"""Read a ROS 2 Python launch file without ROS 2 launch: the process graph it describes, as plain data.

``launch``/``launch_ros`` cannot be installed from PyPI, yet ``xdrcdepth launch`` must run the same graph
as ``ros2 launch``. So the launch files in ``launch/`` stay the one description, written in ordinary
launch_ros style, and this module evaluates the part of the launch API they use *statically* (``ast``;
the file is never executed):

- ``DeclareLaunchArgument(name, default_value=..., description=...)`` and ``LaunchConfiguration(name)``
  (a default may be a list of text and configurations, concatenated, as in launch);
- ``Node(package, executable, name, namespace, parameters=[yaml path | {name: value}], remappings,
  arguments, condition)`` and ``ExecuteProcess(cmd=[...], name, condition)``; parameter dicts are typed
  as launch_ros types them (:func:`_parameters`) and go to the node as parameters files in their place in
  the list (:meth:`Process.params_yaml`), not as ``-p``;
- ``IfCondition`` / ``UnlessCondition`` on a configuration (``true``/``false``/``1``/``0``);
- ``IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments={...}.items())``,
  evaluated with the includer's configurations plus the given arguments (its own stay local);
- ``RegisterEventHandler(OnProcessExit(target_action=x, on_exit=[EmitEvent(event=Shutdown())]))``:
  the whole graph stops when process ``x`` exits; with
  ``on_exit=[TimerAction(period=p, actions=[EmitEvent(event=Shutdown())])]`` it stops ``p`` seconds
  later (``p`` a number, text or ``LaunchConfiguration``, as launch's ``TimerAction`` accepts);
- ``get_package_share_directory(pkg)``, ``os.path.join``, plain assignments in
  ``generate_launch_description()``.

Anything else is a :class:`LaunchFileError` naming the file and line, so an edit this reader does not
understand fails loudly (and test_launch.py with it) instead of being silently dropped. This module
imports neither rclpy nor torch.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from xdrcdepth_core import share as shared_files
from xdrcdepth_core.share import PACKAGE

TRUE_WORDS, FALSE_WORDS = ("true", "1"), ("false", "0")


class LaunchFileError(ValueError):
    """A launch file this reader cannot evaluate, or arguments that do not fit it."""


def share_directory(package: str = PACKAGE) -> Path:
    """:func:`xdrcdepth_core.share.share_directory`; a package without one is a :class:`LaunchFileError`."""
    try:
        return shared_files.share_directory(package)
    except shared_files.NoShareFolder as exc:
        raise LaunchFileError(str(exc)) from None


# --- values a launch file can build -------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    """``LaunchConfiguration(name)``."""

    name: str


@dataclass(frozen=True)
class PathJoin:
    """``os.path.join`` over text and substitutions."""

    parts: tuple


@dataclass(frozen=True)
class Condition:
    """``IfCondition(x)`` (``negate=False``) or ``UnlessCondition(x)``."""

    value: object
    negate: bool
    where: str


@dataclass(frozen=True)
class Argument:
    """``DeclareLaunchArgument``; ``default is None`` means the argument is required; ``choices``: the values
    it may take (launch refuses any other), empty for any."""

    name: str
    default: object
    description: str
    where: str
    choices: tuple = ()


@dataclass(eq=False)
class NodeAction:
    package: str
    executable: object
    name: object
    namespace: object
    parameters: list
    remappings: list
    arguments: list
    condition: Condition | None
    where: str


@dataclass(eq=False)
class ProcessAction:
    cmd: list
    name: object
    condition: Condition | None
    where: str


@dataclass(frozen=True)
class Include:
    path: object
    launch_arguments: dict
    where: str


@dataclass(frozen=True)
class ShutdownOnExit:
    """``OnProcessExit(target_action=target, ...)`` ending in ``Shutdown``, ``period`` s after the exit
    (``None``: at once; else a number or substitution, resolved with the configurations)."""

    target: object
    period: object
    where: str


@dataclass(frozen=True)
class _Tag:
    """Intermediate values: LaunchDescription, PythonLaunchDescriptionSource, EmitEvent, Shutdown,
    TimerAction."""

    kind: str
    value: object = None


# --- the resolved graph -------------------------------------------------------------------------

@dataclass
class Process:
    """One process of the graph with every substitution resolved."""

    name: str
    executable: str
    package: str | None = None  # None for ExecuteProcess
    arguments: list[str] = field(default_factory=list)
    node_name: str | None = None
    namespace: str | None = None
    #: ``parameters=`` in its order: a parameters file's path, or a dict's parameters (name -> typed value)
    parameters: list[str | dict] = field(default_factory=list)
    remappings: list[tuple[str, str]] = field(default_factory=list)
    #: seconds after this process exits until the whole graph stops (``None``: its exit stops nothing)
    shutdown_after_exit: float | None = None

    @property
    def is_node(self) -> bool:
        return self.package is not None

    def absolute_namespace(self) -> str:
        """``namespace`` as launch_ros passes it (``make_namespace_absolute``; rcl refuses ``__ns:=robot1``)."""
        return self.namespace if self.namespace.startswith("/") else "/" + self.namespace

    def params_yaml(self, values: dict) -> str:
        """A parameters file holding one ``parameters=`` dict, as launch_ros writes it
        (``Node._create_params_file_from_dict``): under the node's fully qualified name when the ``Node`` has
        both ``name`` and ``namespace`` (``is_node_name_fully_specified``), else under ``/**``; ``yaml.dump``
        with its default style, but lists as plain YAML lists where launch_ros's tuples get a ``!!python/tuple``
        tag that rcl ignores, and text that rcl would read as a bool or number quoted (:class:`_ParamsDumper`)."""
        if self.node_name and self.namespace is not None:
            key = f"{self.absolute_namespace().rstrip('/')}/{self.node_name}"   # launch_ros's prefix_namespace
        else:
            key = "/**"
        return yaml.dump({key: {"ros__parameters": values}}, Dumper=_ParamsDumper, default_flow_style=False)

    def ros_args(self, params_file) -> list[str]:
        """The ``--ros-args`` section ``launch_ros`` would pass. Every ``parameters=`` entry is a
        ``--params-file`` in the list's order (later ones win in rcl), a dict's path being
        ``params_file(self, values)`` (which writes it, or names it for ``--print``)."""
        if not self.is_node:
            return []
        args = ["--ros-args"]
        if self.node_name:
            args += ["-r", f"__node:={self.node_name}"]
        if self.namespace:
            args += ["-r", f"__ns:={self.absolute_namespace()}"]
        for entry in self.parameters:
            args += ["--params-file", entry if isinstance(entry, str) else params_file(self, entry)]
        for old, new in self.remappings:
            args += ["-r", f"{old}:={new}"]
        return args


class _ParamsDumper(yaml.SafeDumper):
    """``yaml.safe_dump`` that keeps text text for rcl too. launch_ros means a Python ``str`` to stay a string
    (``normalize_parameter_dict`` dumps it with ``yaml.dump``), but PyYAML leaves ``y``, ``N``, ``1e5``,
    ``inf``, ``nan`` unquoted (its resolver takes them for no bool or number), and rcl's parameter
    parser reads as a bool or a double (seen with rclpy here: ``{'x': '1e5'}`` reached the node as 100000.0);
    such text is written quoted. rcl reads quoted keys as their text."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    try:
        float(text)     # what rcl's strtod takes for a number (inf, nan, 1e5, ...), PyYAML's own included
        number = True
    except ValueError:
        number = False
    style = "'" if number or text in ("y", "Y", "n", "N") else None   # rcl's bools that YAML 1.1 lacks
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ParamsDumper.add_representer(str, _represent_text)


@dataclass
class Graph:
    """What a launch file starts, for given ``name:=value`` arguments."""

    arguments: list[Argument]
    processes: list[Process]


# --- reading (ast) -------------------------------------------------------------------------------

class _FileReader:
    """Evaluates one launch file's ``generate_launch_description()`` into action objects."""

    def __init__(self, path: Path):
        self.path = path
        self.imports: dict[str, str] = {}
        self.handlers = {
            "launch.LaunchDescription": self._launch_description,
            "launch.actions.DeclareLaunchArgument": self._declare_argument,
            "launch.actions.ExecuteProcess": self._execute_process,
            "launch.actions.IncludeLaunchDescription": self._include,
            "launch.actions.RegisterEventHandler": self._register_event_handler,
            "launch.actions.TimerAction": self._timer_action,
            "launch.actions.EmitEvent": lambda a, k, w: _Tag("emit", self._only(k, {"event"}, w)["event"]),
            "launch.conditions.IfCondition": lambda a, k, w: Condition(self._one(a, k, w), False, w),
            "launch.conditions.UnlessCondition": lambda a, k, w: Condition(self._one(a, k, w), True, w),
            "launch.event_handlers.OnProcessExit": self._on_process_exit,
            "launch.events.Shutdown": lambda a, k, w: _Tag("shutdown", self._only(k, {"reason"}, w)),
            "launch.launch_description_sources.PythonLaunchDescriptionSource":
                lambda a, k, w: _Tag("python_source", self._one(a, k, w)),
            "launch.substitutions.LaunchConfiguration": lambda a, k, w: Config(self._text_arg(a, k, w)),
            "launch_ros.actions.Node": self._node,
            "ament_index_python.packages.get_package_share_directory":
                lambda a, k, w: str(share_directory(self._text_arg(a, k, w))),
            "os.path.join": lambda a, k, w: PathJoin(tuple(a)),
        }

    def error(self, where: str, message: str) -> LaunchFileError:
        return LaunchFileError(f"{where}: {message}")

    def where(self, node: ast.AST) -> str:
        return f"{self.path}:{getattr(node, 'lineno', '?')}"

    def read(self) -> list:
        try:
            tree = ast.parse(self.path.read_text(encoding="utf-8"), filename=str(self.path))
        except OSError as exc:
            raise LaunchFileError(f"cannot read launch file {self.path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise LaunchFileError(f"{self.path}: not a Python launch file (not UTF-8 text: byte "
                                  f"{exc.object[exc.start]:#04x} at offset {exc.start})") from None
        except SyntaxError as exc:
            line = f":{exc.lineno}" if exc.lineno else ""
            raise LaunchFileError(f"{self.path}{line}: syntax error: {exc.msg}") from None
        env: dict[str, object] = {}
        function = None
        for stmt in tree.body:
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    self.imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0])
            elif isinstance(stmt, ast.ImportFrom):
                for alias in stmt.names:
                    self.imports[alias.asname or alias.name] = f"{stmt.module}.{alias.name}"
            elif isinstance(stmt, ast.FunctionDef) and stmt.name == "generate_launch_description":
                function = stmt
            elif isinstance(stmt, ast.Assign):
                self._assign(stmt, env)
            elif not _is_docstring(stmt):
                raise self.error(self.where(stmt), f"unsupported statement {type(stmt).__name__} at module level")
        if function is None:
            raise LaunchFileError(f"{self.path}: no generate_launch_description() function")
        for stmt in function.body:
            if isinstance(stmt, ast.Assign):
                self._assign(stmt, env)
            elif isinstance(stmt, ast.Return):
                result = self.eval(stmt.value, env)
                if not (isinstance(result, _Tag) and result.kind == "launch_description"):
                    raise self.error(self.where(stmt), "generate_launch_description() must return "
                                                       "LaunchDescription([...])")
                return result.value
            elif not _is_docstring(stmt):
                raise self.error(self.where(stmt), f"unsupported statement {type(stmt).__name__}")
        raise LaunchFileError(f"{self.path}: generate_launch_description() returns nothing")

    def _assign(self, stmt: ast.Assign, env: dict) -> None:
        if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            raise self.error(self.where(stmt), "only `name = value` assignments are supported")
        env[stmt.targets[0].id] = self.eval(stmt.value, env)

    def qualified_name(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.imports.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified_name(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def eval(self, node: ast.AST, env: dict):
        where = self.where(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.eval(item, env) for item in node.elts]
        if isinstance(node, ast.Dict):
            if any(key is None for key in node.keys):
                raise self.error(where, "** in a dict literal is not supported")
            keys = [self.eval(k, env) for k in node.keys]
            if not all(isinstance(k, str) for k in keys):
                raise self.error(where, "dict keys must be string literals")
            return dict(zip(keys, (self.eval(v, env) for v in node.values)))
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            raise self.error(where, f"unknown name {node.id!r}")
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr == "items" and not node.args:
                mapping = self.eval(node.func.value, env)
                if isinstance(mapping, dict):
                    return mapping  # launch_arguments={...}.items()
            qualified = self.qualified_name(node.func)
            handler = self.handlers.get(qualified)
            if handler is None:
                raise self.error(where, f"unsupported call {qualified or ast.unparse(node.func)}()")
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                raise self.error(where, "*args/**kwargs are not supported")
            args = [self.eval(a, env) for a in node.args]
            kwargs = {k.arg: self.eval(k.value, env) for k in node.keywords}
            return handler(args, kwargs, where)
        raise self.error(where, f"unsupported expression {ast.unparse(node)!r}")

    # --- argument helpers
    def _only(self, kwargs: dict, allowed: set, where: str) -> dict:
        unknown = set(kwargs) - allowed
        if unknown:
            hint = ("; node_executable= was removed in ROS 2 Foxy, use executable="
                    if "node_executable" in unknown else "")
            raise self.error(where, f"unsupported keyword(s) {', '.join(sorted(unknown))}{hint}")
        return kwargs

    def _one(self, args: list, kwargs: dict, where: str):
        if len(args) != 1 or kwargs:
            raise self.error(where, "expected exactly one positional argument")
        return args[0]

    def _list(self, kwargs: dict, name: str, where: str) -> list:
        """The keyword ``name`` as a list (``[]`` when absent): launch iterates these, a string or number there
        is a mistake."""
        value = kwargs.get(name, [])
        if not isinstance(value, list):
            raise self.error(where, f"{name}= must be a list, got {value!r}")
        return value

    def _pairs(self, kwargs: dict, name: str, where: str) -> list[tuple]:
        """The keyword ``name`` as a list of ``(from, to)`` pairs (``remappings=``)."""
        pairs = self._list(kwargs, name, where)
        if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
            raise self.error(where, f"{name}= must be a list of (from, to) pairs, got {pairs!r}")
        return [tuple(pair) for pair in pairs]

    def _text_arg(self, args, kwargs, where) -> str:
        value = self._one(args, kwargs, where)
        if not isinstance(value, str):
            raise self.error(where, f"expected a string literal, got {value!r}")
        return value

    # --- handlers
    def _launch_description(self, args, kwargs, where):
        actions = self._one(args, kwargs, where)
        if not isinstance(actions, list):
            raise self.error(where, f"LaunchDescription wants a list of actions, got {actions!r}")
        return _Tag("launch_description", actions)

    def _declare_argument(self, args, kwargs, where):
        self._only(kwargs, {"name", "default_value", "description", "choices"}, where)
        name = args[0] if args else kwargs.get("name")
        if not isinstance(name, str) or len(args) > 1:
            raise self.error(where, "DeclareLaunchArgument wants the argument name as a string")
        choices = self._list(kwargs, "choices", where)
        if not all(isinstance(c, str) for c in choices):
            raise self.error(where, f"choices= must be a list of strings, got {choices!r}")
        return Argument(name, kwargs.get("default_value"), kwargs.get("description", ""), where, tuple(choices))

    def _node(self, args, kwargs, where):
        if args:
            raise self.error(where, "Node() takes keyword arguments only")
        self._only(kwargs, {"package", "executable", "name", "namespace", "parameters", "remappings",
                            "arguments", "output", "condition", "emulate_tty"}, where)
        if not isinstance(kwargs.get("package"), str) or "executable" not in kwargs:
            raise self.error(where, "Node() needs package= (a string) and executable=")
        return NodeAction(kwargs["package"], kwargs["executable"], kwargs.get("name"), kwargs.get("namespace"),
                          self._list(kwargs, "parameters", where), self._pairs(kwargs, "remappings", where),
                          self._list(kwargs, "arguments", where), kwargs.get("condition"), where)

    def _execute_process(self, args, kwargs, where):
        if args:
            raise self.error(where, "ExecuteProcess() takes keyword arguments only")
        self._only(kwargs, {"cmd", "name", "output", "condition", "emulate_tty"}, where)
        if not self._list(kwargs, "cmd", where):
            raise self.error(where, "ExecuteProcess() needs cmd=[...]")
        return ProcessAction(kwargs["cmd"], kwargs.get("name"), kwargs.get("condition"), where)

    def _include(self, args, kwargs, where):
        self._only(kwargs, {"launch_description_source", "launch_arguments"}, where)
        source = args[0] if args else kwargs.get("launch_description_source")
        if not (isinstance(source, _Tag) and source.kind == "python_source"):
            raise self.error(where, "IncludeLaunchDescription wants PythonLaunchDescriptionSource(path)")
        return Include(source.value, dict(kwargs.get("launch_arguments", {})), where)

    def _timer_action(self, args, kwargs, where):
        if args:
            raise self.error(where, "TimerAction() takes keyword arguments only")
        self._only(kwargs, {"period", "actions", "cancel_on_shutdown"}, where)
        if "period" not in kwargs or not isinstance(kwargs.get("actions"), list):
            raise self.error(where, "TimerAction() needs period= and actions=[...]")
        return _Tag("timer", (kwargs["period"], kwargs["actions"]))

    def _on_process_exit(self, args, kwargs, where):
        self._only(kwargs, {"target_action", "on_exit"}, where)
        events = kwargs.get("on_exit", [])
        events = events if isinstance(events, list) else [events]
        period = None
        if len(events) == 1 and isinstance(events[0], _Tag) and events[0].kind == "timer":
            period, events = events[0].value
        if len(events) != 1 or not _is_shutdown(events[0]):
            raise self.error(where, "OnProcessExit supports only on_exit=[EmitEvent(event=Shutdown())] or "
                                    "on_exit=[TimerAction(period=..., actions=[EmitEvent(event=Shutdown())])]")
        if not isinstance(kwargs.get("target_action"), (NodeAction, ProcessAction)):
            raise self.error(where, "OnProcessExit needs target_action= a Node or ExecuteProcess")
        return ShutdownOnExit(kwargs["target_action"], period, where)

    def _register_event_handler(self, args, kwargs, where):
        handler = self._one(args, kwargs, where) if args else kwargs.get("event_handler")
        if not isinstance(handler, ShutdownOnExit):
            raise self.error(where, "RegisterEventHandler supports OnProcessExit(...) only")
        return handler


def _is_shutdown(event) -> bool:
    """``EmitEvent(event=Shutdown(...))``."""
    return (isinstance(event, _Tag) and event.kind == "emit" and isinstance(event.value, _Tag)
            and event.value.kind == "shutdown")


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


# --- resolving ------------------------------------------------------------------------------------

def _text(value, configs: dict[str, str], where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, Config):
        if value.name not in configs:
            raise LaunchFileError(f"{where}: launch configuration {value.name!r} is not set")
        return configs[value.name]
    if isinstance(value, list):  # launch's SomeSubstitutionsType: text and substitutions, joined
        return "".join(_text(part, configs, where) for part in value)
    if isinstance(value, PathJoin):
        return str(Path(*(_text(part, configs, where) for part in value.parts)))
    raise LaunchFileError(f"{where}: cannot use {value!r} as text")


# --- parameter dicts: launch_ros's utilities/normalize_parameters.py and evaluate_parameters.py ---------

def _parameters(entry: dict, configs: dict[str, str], where: str, prefix: str = "") -> dict:
    """A ``parameters=[{...}]`` dict as launch_ros hands it to the node: nested dicts flattened to dotted
    names (``{'a': {'b': 1}}`` is ``a.b``; ``normalize_parameter_dict``), each value typed by
    :func:`_parameter_value`."""
    values = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            values.update(_parameters(value, configs, where, f"{prefix}{key}."))
        else:
            values[prefix + key] = _parameter_value(prefix + key, value, configs, where)
    return values


def _parameter_value(name: str, value, configs: dict[str, str], where: str):
    """One parameter value as launch_ros types it (``normalize_parameter_dict``): a Python ``str`` stays a
    string, whatever it looks like (``yaml.dump``, then ``yaml.safe_load`` in ``evaluate_parameter_dict``:
    ``''``, ``'123'``, ``'true'`` stay text); bool, int and float stay as they are; a substitution
    (``LaunchConfiguration``) is read as YAML (:func:`_substituted`); a list follows
    :func:`_parameter_list`; anything else (``None``) is an error there and here."""
    if isinstance(value, (str, PathJoin)):   # os.path.join of text is a str in a launch file
        return _text(value, configs, where)
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Config):
        return _substituted(name, _text(value, configs, where), where)
    if isinstance(value, list):
        return _parameter_list(name, value, configs, where)
    raise LaunchFileError(f"{where}: parameter {name!r}: launch_ros takes no {type(value).__name__} value "
                          f"({value!r}); a str, bool, int, float, substitution, list or dict")


def _parameter_list(name: str, items: list, configs: dict[str, str], where: str) -> list:
    """A list value as launch_ros makes it (``_normalize_parameter_array_value``, then
    ``evaluate_parameter_dict``): ints stay ints; floats, or ints mixed with floats, become floats; bools stay
    bools; text with at least one substitution is joined into one text read as YAML (:func:`_substituted`);
    otherwise each item is itself (text stays text) or, a substitution or list of them, its text read as YAML,
    and the items must then be of one type (:func:`_uniform`): an empty list, ``['a', 1]`` or ``[True, 1]``
    are errors there and here."""
    kinds = set()
    for item in items:
        if isinstance(item, (bool, int, float, str, Config, list)):
            kinds.add(type(item))
        elif isinstance(item, PathJoin):
            kinds.add(str)
        else:
            raise LaunchFileError(f"{where}: parameter {name!r}: launch_ros takes no {type(item).__name__} item "
                                  f"({item!r}) in a list; str, bool, int, float or substitutions")
    if kinds == {int}:
        return list(items)
    if kinds in ({float}, {int, float}):
        return [float(item) for item in items]
    if Config in kinds and kinds <= {str, Config, list}:
        return _substituted(name, _text(items, configs, where), where)
    if kinds == {bool}:
        return list(items)
    return _uniform(name, [item if isinstance(item, (bool, int, float, str)) else
                           _load_yaml(name, _text(item, configs, where), where) for item in items], where)


def _substituted(name: str, text: str, where: str):
    """A substitution's text as launch_ros evaluates it (``evaluate_parameter_dict``): read as YAML, it must be
    a bool, int, float or str (``"''"`` is the empty string; an empty text, YAML null, is an error), or a list
    of one of them (:func:`_uniform`)."""
    value = _load_yaml(name, text, where)
    if type(value) in (bool, int, float, str):
        return value
    if isinstance(value, list):
        return _uniform(name, value, where)
    raise LaunchFileError(f"{where}: parameter {name!r}: {text!r} reads as YAML {type(value).__name__}; "
                          "launch_ros allows bool, int, float, str or a list of one of them")


def _load_yaml(name: str, text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise LaunchFileError(f"{where}: parameter {name!r}: {text!r} is not YAML ({problem})") from None


def _uniform(name: str, values: list, where: str) -> list:
    """launch_ros's ``check_sequence_type_is_allowed``: a non-empty list whose items are all instances of the
    first item's type, one of bool, int, float, str (so ``[1, True]`` passes, as a bool is an int, and
    ``[True, 1]`` does not)."""
    first = type(values[0]) if values else None
    if first not in (bool, int, float, str) or not all(isinstance(v, first) for v in values):
        raise LaunchFileError(f"{where}: parameter {name!r}: {values!r} is not a non-empty list of one type "
                              "(bool, int, float or str), as launch_ros requires")
    return values


def _seconds(period, configs: dict[str, str], where: str) -> float:
    """A ``TimerAction`` period (``None``: no timer) as non-negative seconds."""
    if period is None:
        return 0.0
    if isinstance(period, (bool, int)):  # launch's ensure_argument_type accepts float or substitutions only
        raise LaunchFileError(f"{where}: TimerAction period must be a float or text, got {period!r}")
    text = period if isinstance(period, float) else _text(period, configs, where)
    try:
        seconds = float(text)
    except ValueError:
        raise LaunchFileError(f"{where}: TimerAction period wants seconds, got {text!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise LaunchFileError(f"{where}: TimerAction period must be a finite number >= 0, got {text!r}")
    return seconds


def _enabled(condition: Condition | None, configs: dict[str, str]) -> bool:
    if condition is None:
        return True
    word = _text(condition.value, configs, condition.where).strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise LaunchFileError(f"{condition.where}: condition wants true/false, got {word!r}")
    return (word in TRUE_WORDS) != condition.negate


class _Resolver:
    """Walks the actions in launch order, keeping the configurations as ``ros2 launch`` would.

    ``placeholders``: a required argument without a value reads as ``<name>`` instead of failing
    (to list the arguments of a file before the user gave any).
    """

    def __init__(self, placeholders: bool = False):
        self.placeholders = placeholders
        self.arguments: list[Argument] = []
        self.processes: list[Process] = []
        self._by_action: dict[int, Process] = {}
        self._shutdown_targets: list[tuple[object, float]] = []
        self._reading: list[Path] = []   # the files being read, includer first: an include cycle is an error

    def walk(self, path: Path, configs: dict[str, str]) -> None:
        self._reading.append(Path(path).resolve())
        try:
            self._walk_actions(path, configs)
        finally:
            self._reading.pop()

    def _walk_actions(self, path: Path, configs: dict[str, str]) -> None:
        for action in _FileReader(path).read():
            if isinstance(action, Argument):
                self.arguments.append(action)
                if action.name in configs:
                    self._check_choice(action, configs[action.name])
                    continue
                if action.default is not None:
                    configs[action.name] = _text(action.default, configs, action.where)
                    self._check_choice(action, configs[action.name])
                elif self.placeholders:
                    configs[action.name] = f"<{action.name}>"
                else:
                    raise LaunchFileError(f"missing launch argument {action.name}:=... ({action.description}; "
                                          f"declared at {action.where})")
            elif isinstance(action, Include):
                self._include(action, configs)
            elif isinstance(action, NodeAction):
                if _enabled(action.condition, configs):
                    self._add(action, self._node(action, configs))
            elif isinstance(action, ProcessAction):
                if _enabled(action.condition, configs):
                    cmd = [_text(part, configs, action.where) for part in action.cmd]
                    name = _text(action.name, configs, action.where) if action.name else Path(cmd[0]).name
                    self._add(action, Process(name=name, executable=cmd[0], arguments=cmd[1:]))
            elif isinstance(action, ShutdownOnExit):
                self._shutdown_targets.append((action.target, _seconds(action.period, configs, action.where)))
            else:
                raise LaunchFileError(f"{path}: unsupported entry {action!r} in LaunchDescription")

    def _check_choice(self, argument: Argument, value: str) -> None:
        """launch's check of an argument's value against ``DeclareLaunchArgument(choices=...)`` (not while
        listing the arguments: placeholders are no values)."""
        if argument.choices and value not in argument.choices and not self.placeholders:
            raise LaunchFileError(f"launch argument {argument.name}:={value!r} is not one of "
                                  f"{', '.join(argument.choices)} (declared at {argument.where})")

    def _include(self, action: Include, configs: dict[str, str]) -> None:
        included = Path(_text(action.path, configs, action.where))
        if included.resolve() in self._reading:
            raise LaunchFileError(f"{action.where}: include cycle: {included} is already being read "
                                  f"({' -> '.join(p.name for p in self._reading)} -> {included.name})")
        child = dict(configs)
        child.update({str(k): _text(v, configs, action.where) for k, v in action.launch_arguments.items()})
        self.walk(included, child)

    def _node(self, action: NodeAction, configs: dict[str, str]) -> Process:
        where = action.where
        executable = _text(action.executable, configs, where)
        node_name = _text(action.name, configs, where) if action.name is not None else None
        process = Process(
            name=node_name or executable, executable=executable, package=action.package,
            arguments=[_text(a, configs, where) for a in action.arguments], node_name=node_name,
            namespace=_text(action.namespace, configs, where) if action.namespace is not None else None,
            remappings=[(_text(old, configs, where), _text(new, configs, where)) for old, new in action.remappings])
        process.parameters = [_parameters(entry, configs, where) if isinstance(entry, dict)
                              else _text(entry, configs, where) for entry in action.parameters]
        return process

    def _add(self, action, process: Process) -> None:
        taken = {p.name for p in self.processes}
        base, n = process.name, 2
        while process.name in taken:
            process.name, n = f"{base}-{n}", n + 1
        self.processes.append(process)
        self._by_action[id(action)] = process

    def finish(self) -> None:
        for target, period in self._shutdown_targets:
            if id(target) in self._by_action:  # a target whose condition was false starts nothing
                self._by_action[id(target)].shutdown_after_exit = period


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``['name:=value', ...]`` (the ``ros2 launch`` argument syntax) to a dict."""
    values = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise LaunchFileError(f"launch arguments are name:=value, got {item!r}")
        values[name] = value
    return values


def launch_file(graph: str) -> Path:
    """A graph name (``xdrcdepth`` -> ``<share>/launch/xdrcdepth.launch.py``) or a launch file path."""
    if graph.endswith(".py") or "/" in graph:
        path = Path(graph)
        if not path.is_file():
            raise LaunchFileError(f"launch file {path} " + ("is a folder" if path.is_dir() else "does not exist"))
        return path
    folder = share_directory() / "launch"
    path = folder / f"{graph}.launch.py"
    if not path.is_file():
        known = sorted(p.name.removesuffix(".launch.py") for p in folder.glob("*.launch.py"))
        raise LaunchFileError(f"no launch graph {graph!r} in {folder} (have: {', '.join(known) or 'none'})")
    return path


def declared_arguments(path: Path) -> list[Argument]:
    """The arguments a launch file and the files it includes declare; starts nothing, needs no values."""
    resolver = _Resolver(placeholders=True)
    resolver.walk(Path(path), {})
    return resolver.arguments


def load_graph(path: Path, values: dict[str, str]) -> Graph:
    """Resolve a launch file with ``name:=value`` arguments into its processes."""
    resolver = _Resolver()
    resolver.walk(Path(path), dict(values))
    declared = {a.name for a in resolver.arguments}
    unknown = sorted(set(values) - declared)
    if unknown:
        raise LaunchFileError(f"{path}: unknown launch argument(s) {', '.join(unknown)} "
                              f"(declared: {', '.join(sorted(declared))})")
    resolver.finish()
    return Graph(arguments=resolver.arguments, processes=resolver.processes)
