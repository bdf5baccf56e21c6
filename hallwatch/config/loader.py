"""Load a hall's YAML file into a :class:`HallConfig`, with errors that name file and line.

Loading goes in three steps:

1. ruamel.yaml's round-trip loader parses the text and keeps the line and column of every
   key and list item (a syntax error becomes one issue at its line);
2. the tree is copied into plain Python data; in the string fields marked ``env_expand``
   (camera ``url``, ``mqtt.host``, ``mqtt.username``, ``mqtt.password``) every
   ``${VAR}`` is replaced by the environment variable ``VAR`` (``$${`` writes a literal
   ``${``). An unset variable is an error when ``require_env`` is true, else a warning and
   the placeholder stays as written;
   Top-level keys starting with ``x-`` are dropped: they hold YAML anchors
   (``x-camera: &cam {...}`` then ``<<: *cam`` in each camera);
3. pydantic validates the data; every error is mapped back to the YAML line of the
   offending key or item (a missing key: the line of the mapping that lacks it).

Expanded values never appear in issues, logs or ``repr``.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from hallwatch.config.models import (
    ID_PATTERN,
    HallConfig,
    Loc,
    LocatedValueError,
    format_field_path,
)

logger = logging.getLogger(__name__)

Severity = Literal["error", "warning"]
_PLACEHOLDER = re.compile(r"(\$?)\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem found in a config file.

    Attributes:
        file: The file name as given by the caller.
        line: 1-based line; 0 when the problem is with the file as a whole.
        column: 1-based column; 0 when unknown.
        field_path: Where in the config, e.g. ``posts[2].polygon[3]``; empty for syntax.
        message: What is wrong, in English.
        severity: ``error`` (the file is refused) or ``warning``.
    """

    file: str
    line: int
    column: int
    field_path: str
    message: str
    severity: Severity = "error"

    def render(self) -> str:
        """``FILE:LINE:COL: field.path: message`` (``warning:`` before a warning's text)."""
        head = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        text = f"warning: {self.message}" if self.severity == "warning" else self.message
        return f"{head}: {self.field_path}: {text}" if self.field_path else f"{head}: {text}"

    def __str__(self) -> str:
        return self.render()


class ConfigError(Exception):
    """A config file that cannot be used.

    Attributes:
        issues: Every issue found, errors and warnings, in file order.
    """

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__(self.__str__())

    @property
    def errors(self) -> list[ConfigIssue]:
        """The issues of severity ``error``."""
        return [i for i in self.issues if i.severity == "error"]

    def __str__(self) -> str:
        return "\n".join(issue.render() for issue in self.issues)


def expand_env(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace each ``${NAME}`` in ``text`` by ``env[NAME]``.

    ``$${`` stands for a literal ``${``. An unset variable's placeholder is kept as written.

    Args:
        text: The string from the YAML file.
        env: The environment (usually ``os.environ``).

    Returns:
        The expanded text and the names of the unset variables, in order of appearance.

    Raises:
        ValueError: A placeholder has an invalid name, or ``${`` is not closed.
    """
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(0)[1:]
        name = m.group(2)
        if not _VAR_NAME.fullmatch(name):
            raise ValueError(f"invalid environment variable name in ${{{name}}}")
        if name not in env:
            if name not in missing:
                missing.append(name)
            return m.group(0)
        return env[name]

    if "${" in _PLACEHOLDER.sub("", text):
        raise ValueError("unterminated '${' placeholder (write $${ for a literal ${)")
    return _PLACEHOLDER.sub(sub, text), missing


# --------------------------------------------------------------------------- type walking


def _unwrap(tp: Any) -> Any:
    """The non-None member of ``X | None``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return tp


def _as_model(tp: Any) -> type[BaseModel] | None:
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _child_type(tp: Any, part: str | int) -> tuple[Any, FieldInfo | None]:
    """The declared type (and field, for a model) at ``part`` below a value of type ``tp``."""
    model = _as_model(tp)
    if model is not None:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        return (field.annotation if field else None), field
    tp = _unwrap(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list and args:
        return args[0], None
    if origin is dict and len(args) == 2:
        return args[1], None
    return None, None


def _type_at(loc: Loc) -> Any:
    tp: Any = HallConfig
    for part in loc:
        tp, _ = _child_type(tp, part)
    return tp


# --------------------------------------------------------------------------- tree helpers


def _position(node: Any, loc: Loc) -> tuple[int, int]:
    """1-based line and column of the deepest node of ``loc`` present in the YAML tree."""
    line, col = (node.lc.line, node.lc.col) if hasattr(node, "lc") else (0, 0)
    for part in loc:
        try:
            if isinstance(node, CommentedMap):
                key = next((k for k in node if k == part or str(k) == str(part)), None)
                if key is None:
                    break
                line, col = node.lc.key(key)
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(part, int):
                if not 0 <= part < len(node):
                    break
                line, col = node.lc.item(part)
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line + 1, col + 1


@dataclass
class _Ctx:
    file: str
    env: Mapping[str, str]
    require_env: bool
    root: Any
    issues: list[ConfigIssue]

    def issue(self, loc: Loc, message: str, severity: Severity = "error") -> None:
        line, col = _position(self.root, loc)
        self.issues.append(
            ConfigIssue(self.file, line, col, format_field_path(loc), message, severity)
        )


def _plain(node: Any, tp: Any, field: FieldInfo | None, loc: Loc, ctx: _Ctx) -> Any:
    """Copy a ruamel node into plain Python data, expanding ``${VAR}`` where allowed."""
    if isinstance(node, dict):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            k = str(key) if isinstance(key, str) else key
            if not loc and isinstance(k, str) and k.startswith("x-"):
                continue  # top-level "x-…" keys hold YAML anchors only
            child_tp, child_field = _child_type(tp, k)
            out[k] = _plain(value, child_tp, child_field, (*loc, k), ctx)
        return out
    if isinstance(node, list):
        item_tp, _ = _child_type(tp, 0)
        return [_plain(v, item_tp, None, (*loc, i), ctx) for i, v in enumerate(node)]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, str):
        text = str(node)
        extra = field.json_schema_extra if field is not None else None
        if isinstance(extra, dict) and extra.get("env_expand"):
            try:
                text, missing = expand_env(text, ctx.env)
            except ValueError as exc:
                ctx.issue(loc, str(exc))
                return text
            for name in missing:
                if ctx.require_env:
                    ctx.issue(loc, f"environment variable {name} is not set")
                else:
                    ctx.issue(
                        loc,
                        f"environment variable {name} is not set "
                        "(it must be set when the edge starts)",
                        "warning",
                    )
        return text
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _message(err: Mapping[str, Any], loc: Loc) -> str:
    kind, msg = err["type"], str(err["msg"])
    if kind == "missing":
        return f"missing required key {loc[-1]!r}" if loc else "missing required key"
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        model = _as_model(_type_at(loc[:-1]))
        text = f"unknown key {key!r}"
        if model is not None:
            close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
            if close:
                text += f" (did you mean {close[0]!r}?)"
        return text
    if kind == "string_pattern_mismatch" and (err.get("ctx") or {}).get("pattern") == ID_PATTERN:
        return "must be a lowercase id: a-z, 0-9, '-' and '_', at most 63 characters"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def _add_validation_errors(exc: ValidationError, ctx: _Ctx) -> None:
    for err in exc.errors():
        loc: Loc = tuple(p for p in err["loc"] if p != "[key]")
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, LocatedValueError):
            for sub, message in error.problems:
                ctx.issue((*loc, *sub), message)
        else:
            ctx.issue(loc, _message(err, loc))


def _fail(ctx: _Ctx) -> None:
    ctx.issues.sort(key=lambda i: (i.line, i.column, i.severity != "error"))
    if any(i.severity == "error" for i in ctx.issues):
        raise ConfigError(ctx.issues)


def _syntax_issue(file: str, exc: YAMLError) -> ConfigIssue:
    if not isinstance(exc, MarkedYAMLError):
        return ConfigIssue(file, 1, 1, "", f"YAML: {exc}")
    mark = exc.problem_mark or exc.context_mark
    text = ": ".join(s for s in (exc.context, exc.problem) if s) or "invalid YAML"
    start = exc.context_mark
    if start is not None and mark is not None and start.line != mark.line:
        text += f" (it starts at line {start.line + 1})"
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return ConfigIssue(file, line, col, "", f"YAML: {text}")


# --------------------------------------------------------------------------- public API


def read_hall_config_from_string(
    text: str,
    filename: str = "<string>",
    *,
    require_env: bool = True,
    env: Mapping[str, str] | None = None,
) -> tuple[HallConfig, list[ConfigIssue]]:
    """Parse and validate a hall config, returning it with its warnings.

    Args:
        text: YAML text.
        filename: Name used in issues.
        require_env: Whether an unset ``${VAR}`` is an error (else a warning).
        env: Environment for ``${VAR}`` (default ``os.environ``).

    Returns:
        The config and the warnings (issues of severity ``warning``).

    Raises:
        ConfigError: The text is not valid YAML or not a valid hall config.
    """
    ctx = _Ctx(filename, os.environ if env is None else env, require_env, None, [])
    try:
        root = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise ConfigError([_syntax_issue(filename, exc)]) from None
    ctx.root = root
    if not isinstance(root, CommentedMap):
        what = "empty" if root is None else f"a {type(root).__name__}"
        ctx.issues.append(
            ConfigIssue(
                filename,
                1,
                1,
                "",
                f"the file is {what}; expected a mapping with hall, cameras and posts",
            )
        )
        raise ConfigError(ctx.issues)
    data = _plain(root, HallConfig, None, (), ctx)
    try:
        config = HallConfig.model_validate(data)
    except ValidationError as exc:
        _add_validation_errors(exc, ctx)
        _fail(ctx)
        raise AssertionError("unreachable: validation failed without issues") from exc
    _fail(ctx)
    for i, cam in enumerate(config.cameras):
        if not config.posts_for_camera(cam.id):
            ctx.issue(("cameras", i), f"camera {cam.id!r} has no posts", "warning")
    ctx.issues.sort(key=lambda i: (i.line, i.column))
    return config, ctx.issues


def read_hall_config(
    path: str | Path, *, require_env: bool = True, env: Mapping[str, str] | None = None
) -> tuple[HallConfig, list[ConfigIssue]]:
    """Load a hall config file, returning it with its warnings.

    Args:
        path: The YAML file (UTF-8).
        require_env: Whether an unset ``${VAR}`` is an error (else a warning).
        env: Environment for ``${VAR}`` (default ``os.environ``).

    Returns:
        The config and the warnings.

    Raises:
        ConfigError: The file cannot be read, or is not a valid hall config.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([ConfigIssue(name, 0, 0, "", f"cannot read file: {reason}")]) from None
    return read_hall_config_from_string(text, name, require_env=require_env, env=env)


def load_hall_config(
    path: str | Path, *, require_env: bool = True, env: Mapping[str, str] | None = None
) -> HallConfig:
    """Load and validate a hall config file; warnings are logged.

    Args:
        path: The YAML file (UTF-8).
        require_env: Whether an unset ``${VAR}`` is an error. Keep the default for
            anything that connects to cameras or the broker.
        env: Environment for ``${VAR}`` (default ``os.environ``).

    Returns:
        The validated config.

    Raises:
        ConfigError: With one issue per problem, each at its file line.
    """
    config, warnings = read_hall_config(path, require_env=require_env, env=env)
    for warning in warnings:
        logger.warning("%s", warning.render())
    return config


def load_hall_config_from_string(
    text: str,
    filename: str = "<string>",
    *,
    require_env: bool = True,
    env: Mapping[str, str] | None = None,
) -> HallConfig:
    """Like :func:`load_hall_config`, from YAML text (for tests and demos)."""
    config, warnings = read_hall_config_from_string(
        text, filename, require_env=require_env, env=env
    )
    for warning in warnings:
        logger.warning("%s", warning.render())
    return config


def validate_config_file(path: str | Path, *, require_env: bool = False) -> int:
    """Check a hall config file and report, for ``hallwatch config validate FILE``.

    Prints ``FILE: OK (hall X, N cameras, M posts)`` on stdout, or every issue as
    ``FILE:LINE:COL: field.path: message`` on stderr. Warnings (by default: unset
    ``${VAR}``, so a file validates on a machine without the secrets) go to stderr and
    do not fail the check.

    Args:
        path: The YAML file.
        require_env: Treat unset environment variables as errors.

    Returns:
        0 if the file is valid, 1 if not.
    """
    try:
        config, warnings = read_hall_config(path, require_env=require_env)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue.render(), file=sys.stderr)
        return 1
    for warning in warnings:
        print(warning.render(), file=sys.stderr)
    print(
        f"{path}: OK (hall {config.hall.id}, {len(config.cameras)} cameras, "
        f"{len(config.posts)} posts)"
    )
    return 0
