"""Schema conversion: plain YAML data → (nested) dataclasses, strictly, with dotted-path errors.

The rules (which types, which coercions) are listed in ``training.recipes.config``'s docstring;
this module only implements them. Problems are collected per section and raised together as
``SchemaProblems``; ``build_recipe`` turns them into a ``RecipeError``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import functools
import os
import types
from collections.abc import Mapping, MutableSequence, Sequence
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    NoReturn,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


class SchemaProblems(Exception):
    """Problems found while converting one subtree: ``problems`` = "dotted.path: message" lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def describe(value: Any) -> str:
    """A short repr of a recipe value with its type, for error messages."""
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _fail(path: str, message: str) -> NoReturn:
    raise SchemaProblems([f"{path or '<top level>'}: {message}"])


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls, include_extras=True)


def convert_dataclass(value: Any, cls: type[T], path: str = "") -> T:
    """Build ``cls`` from a mapping; raises ``SchemaProblems`` listing every problem below ``path``."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        _fail(path, f"expected a mapping (section {cls.__name__}), got {describe(value)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints, problems, kwargs = _hints(cls), [], {}
    for key in value:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            known = ", ".join(fields) or "none"
            problems.append(f"{_join(path, key)}: unknown key{hint}; known keys: {known}")
    for name, field in fields.items():
        if name in value:
            try:
                kwargs[name] = _convert(value[name], hints[name], _join(path, name))
            except SchemaProblems as e:
                problems.extend(e.problems)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            problems.append(f"{_join(path, name)}: missing (required)")
    if problems:
        raise SchemaProblems(problems)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # the schema's own __post_init__ checks
        _fail(path, str(e))


def _convert(value: Any, tp: Any, path: str) -> Any:  # noqa: PLR0911 - one branch per type family
    if tp is Any or tp is object:
        return copy.deepcopy(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return convert_dataclass(value, tp, path)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _convert(value, args[0], path)
    if origin is Literal:
        if any(type(value) is type(a) and value == a for a in args):
            return value
        _fail(path, f"expected one of {', '.join(repr(a) for a in args)}, got {describe(value)}")
    if origin is Union or origin is types.UnionType:
        return _convert_union(value, args, path)
    if tp in (list, tuple, dict):
        origin, args = tp, ()
    if origin in (list, tuple, Sequence, MutableSequence):
        return _convert_sequence(value, origin, args, path)
    if origin in (dict, Mapping):
        return _convert_mapping(value, args, path)
    if tp in _SCALARS:
        return _SCALARS[tp](value, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            _fail(path, f"expected one of {', '.join(repr(m.value) for m in tp)}, got {describe(value)}")
    raise TypeError(f"{path}: unsupported field type {tp!r} in the recipe schema")


def _convert_union(value: Any, args: tuple[Any, ...], path: str) -> Any:
    if value is None and type(None) in args:
        return None
    arms = [a for a in args if a is not type(None)]
    # An arm the value already is wins over one it could be coerced to (int | str with "5").
    arms.sort(key=lambda a: not (isinstance(a, type) and type(value) is a))
    first: SchemaProblems | None = None
    for arm in arms:
        try:
            return _convert(value, arm, path)
        except SchemaProblems as e:
            first = first or e
    if len(arms) == 1 and first is not None:
        raise first
    names = " | ".join(getattr(a, "__name__", repr(a)) for a in args)
    _fail(path, f"expected {names}, got {describe(value)}")


def _convert_sequence(value: Any, origin: Any, args: tuple[Any, ...], path: str) -> Any:
    if not isinstance(value, (list, tuple)):
        _fail(path, f"expected a list, got {describe(value)}")
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            _fail(path, f"expected a list of {len(args)} items, got {len(value)}")
        item_types = list(args)
    else:
        item_types = [args[0] if args else Any] * len(value)
    problems, items = [], []
    for i, (item, item_type) in enumerate(zip(value, item_types)):
        try:
            items.append(_convert(item, item_type, f"{path}[{i}]"))
        except SchemaProblems as e:
            problems.extend(e.problems)
    if problems:
        raise SchemaProblems(problems)
    return items if origin in (list, MutableSequence) else tuple(items)


def _convert_mapping(value: Any, args: tuple[Any, ...], path: str) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        _fail(path, f"expected a mapping, got {describe(value)}")
    key_type, value_type = args if args else (Any, Any)
    problems, out = [], {}
    for key, item in value.items():
        try:
            out[_convert(key, key_type, _join(path, key))] = _convert(item, value_type, _join(path, key))
        except SchemaProblems as e:
            problems.extend(e.problems)
    if problems:
        raise SchemaProblems(problems)
    return out


def _to_int(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():  # "1e5" steps
        return int(value)
    _fail(path, f"expected an integer, got {describe(value)}")


def _to_float(value: Any, path: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    _fail(path, f"expected a number, got {describe(value)}")


def _to_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    _fail(path, f"expected true or false, got {describe(value)}")


def _to_str(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    _fail(path, f"expected a string, got {describe(value)} (quote it in YAML)")


def _to_path(value: Any, path: str) -> Path:
    if isinstance(value, (str, os.PathLike)) and str(value):
        return Path(value)
    _fail(path, f"expected a path, got {describe(value)}")


_SCALARS = {int: _to_int, float: _to_float, bool: _to_bool, str: _to_str, Path: _to_path}
