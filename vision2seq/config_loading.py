"""Reading configs: YAML files, dotted ``key=value`` overrides, and pydantic's checks as one-line errors.

The schemas (``vision2seq.config``) are stdlib dataclasses that pydantic validates: unknown keys are
errors (``extra="forbid"``), ranges are ``Field`` bounds in the annotations, cross-field rules are model
validators. Pydantic reports every failure as a multi-line table; ``Schema.validate`` turns the first into
the project's one line, ``source: key 'train.epochs' must be >= 1, got 0``, naming the valid keys or
values where there is a choice.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import reprlib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import ConfigDict, Discriminator, Tag, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from vision2seq.errors import UserError
from vision2seq.yamlfiles import KeyLines, YamlRefused, parse_yaml, read_yaml


class ConfigError(UserError):
    """An unknown key, a value of the wrong type or range, or an unreadable config file."""


RULES = "rules"
"""Validation-context flag that switches the cross-field rules on (``Schema.validate(rules=True)``)."""

_PYDANTIC = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)
"""Every schema: a key that is not a field is an error; ``trainable_from: 6`` is the string ``"6"``."""


def contradiction(message: str) -> PydanticCustomError:
    """The error a cross-field rule raises; ``message`` names the keys (dotted) and the fix."""
    return PydanticCustomError("contradiction", message)  # without a context, never formatted


def yaml_number(value: Any) -> Any:
    """Before pydantic's float check: YAML 1.1 leaves ``1e-4`` (no dot) a string, which pydantic parses;
    an int too large for a float becomes inf (refused as not finite); a bool is not a number."""
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "not a number")
    if isinstance(value, int):
        return float(value) if abs(value) < 1e308 else math.inf
    return value


# --------------------------------------------------------------------------------------------------
# Ranges: read back from the annotations for the message


@dataclass(frozen=True)
class Note:
    """Annotation metadata appended to a range message, e.g. how to switch the feature off."""

    text: str


@dataclass(frozen=True)
class Range:
    """The bounds of a numeric key, as its annotation's ``Field(ge=..., lt=...)`` states them."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""

    @classmethod
    def of(cls, annotation: Any) -> Range | None:
        """The bounds in ``annotation`` (through ``Annotated``, ``| None`` and nested aliases), or None."""
        bounds: dict[str, Any] = {}
        for item in unwrap(annotation)[1]:
            for constraint in getattr(item, "metadata", [item]):  # a FieldInfo holds its bounds
                if isinstance(constraint, Note):
                    bounds["note"] = constraint.text
                for name, (end, is_open) in _BOUNDS.items():  # annotated_types.Ge(ge=1), ...
                    if hasattr(constraint, name):
                        bounds[end], bounds[f"{end}_open"] = getattr(constraint, name), is_open
        return cls(**bounds) if "low" in bounds or "high" in bounds else None

    def describe(self) -> str:
        """``>= 1``, ``> 0``, ``in [0, 1)``, ..."""
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return (
            f"in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}"
            f"{')' if self.high_open else ']'}"
        )


_BOUNDS = {"ge": ("low", False), "gt": ("low", True), "le": ("high", False), "lt": ("high", True)}


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


def unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """``annotation`` without ``Annotated`` layers and ``| None``, and the metadata of those layers."""
    metadata: list[Any] = []
    while True:
        if typing.get_origin(annotation) is Annotated:
            metadata = [*annotation.__metadata__, *metadata]
            annotation = annotation.__origin__
        elif typing.get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation, metadata
            annotation = members[0]
        else:
            return annotation, metadata


def bare(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` metadata and without ``| None``."""
    return unwrap(annotation)[0]


# --------------------------------------------------------------------------------------------------
# The discriminated union of the task schemas, and its errors as one line


class Schema:
    """The experiment schemas as one pydantic discriminated union on ``task`` (missing: ``default``)."""

    def __init__(self, schemas: dict[str, type], default: str) -> None:
        self.schemas, self.default = schemas, default

    @functools.cached_property
    def adapter(self) -> TypeAdapter[Any]:
        """Pydantic's validator, built on first use (importing the schemas stays cheap)."""
        members = tuple(Annotated[cls, Tag(task)] for task, cls in self.schemas.items())
        union = Annotated[Union[members], Discriminator(self._task)]  # noqa: UP007 - built at run time
        return TypeAdapter(union, config=_PYDANTIC)

    def _task(self, raw: Any) -> str | None:
        task = raw.get("task", self.default) if isinstance(raw, dict) else getattr(raw, "task", None)
        return task if isinstance(task, str) else None

    def validate(self, raw: Any, source: str, rules: bool = False, lines: KeyLines | None = None) -> Any:
        """The config of ``raw``'s task, checked (and its cross-field rules when ``rules``).

        Raises:
            ConfigError: one line naming ``source`` (``source:line`` for a key that ``lines`` places in
                the file), the dotted key, what is allowed and what was given.
        """
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: key '<root>' must be a section (mapping), got {short(raw)}")
        try:
            return self.adapter.validate_python(raw, context={RULES: rules})
        except ValidationError as exc:
            errors = exc.errors()  # a misspelt key first: the values next to it may be meant for it
            first = min(errors, key=lambda error: error["type"] not in _UNKNOWN_KEY)
            path = tuple(part for part in first["loc"][1:] if isinstance(part, str))
            line = (lines or {}).get(path) if first["type"] != "contradiction" else None
            where = source if line is None else f"{source}:{line}"
            raise ConfigError(f"{where}: {self._explain(first, raw)}") from None

    def _explain(self, error: ErrorDetails, raw: dict[str, Any]) -> str:
        kind, value = error["type"], error["input"]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            task = raw.get("task")
            return f"key 'task' must be one of {sorted(self.schemas)}, got {short(task)}"
        if kind == "contradiction":
            return error["msg"]
        root, *path = error["loc"]
        schema = self.schemas[str(root)]
        if kind in _UNKNOWN_KEY:
            parent = bare(_field_at(schema, path[:-1]))
            names = (
                sorted(f.name for f in dataclasses.fields(parent)) if dataclasses.is_dataclass(parent) else []
            )
            key = ".".join(map(str, path))
            return f"unknown key '{key}' (valid keys here: {', '.join(names)})"
        annotation = _field_at(schema, path)
        key = ".".join(part for part in path if isinstance(part, str)) or "<root>"  # not list indices
        if kind in ("dataclass_type", "dataclass_args_type", "dict_type"):
            return f"key '{key}' must be a section (mapping), got {short(value)}"
        if kind == "literal_error":
            choices = typing.get_args(bare(annotation))
            allowed = ", ".join(map(repr, choices)) if choices else error["ctx"]["expected"]
            return f"key '{key}' must be one of {allowed}, got {short(value)}"
        if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            bounds = Range.of(annotation)
            if bounds is not None:
                if bare(annotation) is float and isinstance(value, int) and not isinstance(value, bool):
                    value = float(value)  # the value as the config holds it: train.lr=0 is 0.0
                note = f" ({bounds.note})" if bounds.note else ""
                return f"key '{key}' must be {bounds.describe()}{note}, got {short(value)}"
        if kind == "finite_number":
            return f"key '{key}' must be a finite number, got {short(value)}"
        expected = _EXPECTED.get(kind.split("_")[0])
        if expected is not None:
            return f"key '{key}' must be {expected}, got {short(value)}"
        return f"key '{key}': {' '.join(error['msg'].split())}, got {short(value)}"  # pragma: no cover


_UNKNOWN_KEY = ("unexpected_keyword_argument", "invalid_key", "extra_forbidden")
_EXPECTED = {"int": "int", "float": "float", "bool": "bool", "string": "str", "list": "a list"}
"""Pydantic error-type prefix -> what the message says the key must be."""


def _field_at(schema: type, path: Sequence[str | int]) -> Any:
    """The annotation of the key at ``path`` under ``schema`` (None if the path leaves the schema)."""
    annotation: Any = schema
    for part in path:
        tp = bare(annotation)
        if dataclasses.is_dataclass(tp) and isinstance(part, str):
            annotation = typing.get_type_hints(tp, include_extras=True).get(part)
        elif typing.get_origin(tp) is list and isinstance(part, int):
            annotation = typing.get_args(tp)[0]
        else:
            return None
    return annotation


# --------------------------------------------------------------------------------------------------
# YAML files and overrides


def read_config_file(path: Path, lines: KeyLines | None = None) -> dict[str, Any]:
    """The mapping in YAML file ``path`` (``yamlfiles``' bounds: one value per key, bounded size), with
    the line of each key in ``lines`` when given.

    Raises:
        ConfigError: the file is missing, unreadable, refused, malformed, or not a mapping.
    """
    try:
        loaded = read_yaml(path, lines)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a YAML config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({_one_line(exc)})") from None
    except YamlRefused as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({_one_line(exc)})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys, got {type(loaded).__name__}")
    return loaded


def apply_override(raw: dict[str, Any], item: str, lines: KeyLines | None = None) -> None:
    """Set one dotted ``key=value`` override in a raw config dict (checked later by ``config_from_dict``);
    the file lines of the keys it replaces are forgotten (an error in its value is not on that line)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected key=value, e.g. train.epochs=3")
    try:
        value = parse_yaml(text) if text.strip() else None
    except YamlRefused as exc:
        raise ConfigError(f"override {key!r}: {exc}") from None
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value
    for path in [path for path in lines or {} if path[: len(parts)] == tuple(parts)]:
        del lines[path]  # type: ignore[union-attr]


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxdict, _repr.maxstring, _repr.maxother = 2, 4, 4, 40, 40


def short(value: Any) -> str:
    """A bounded repr: a value from an alias bomb is never formatted in full."""
    return " ".join(_repr.repr(value).split())
