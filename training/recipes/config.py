"""Strict YAML recipes → frozen dataclasses (DESIGN §4: "loaded strictly, unknown keys are errors").

A recipe is a YAML mapping whose sections map onto the fields of a (nested) dataclass schema::

    base: common.yaml              # optional: inherit from another recipe (path or list of paths)
    trainer:
      steps: 20000
      lr: 1e-3                     # read as a float (plain PyYAML would read a string)
    model: {name: ecapa_tdnn, channels: 512}   # a ``dict[str, Any]`` field: free-form kwargs

Rules
- Unknown keys anywhere are errors naming the dotted path (``trainer.lrr``), the known keys there
  and the closest one. Duplicate keys in one mapping are errors too (PyYAML keeps the last one
  silently). Every problem of a recipe is reported at once in one ``RecipeError``.
- Scalars are read the YAML 1.2 way: ``1e-3`` is a float, and only ``true``/``false`` are
  booleans (PyYAML's YAML 1.1 turns ``amp: off`` into ``False`` and ``1e-3`` into a string).
- A missing key takes the dataclass default; a field without one is required.
- Field types: ``int`` (an integral float such as ``1e5`` is accepted; bools are not), ``float``
  (ints accepted), ``bool``, ``str`` (numbers are not: quote them), ``Path`` (from a string, kept
  as written: relative paths are relative to the working directory, not to the recipe), ``tuple``
  / ``list`` / ``Sequence`` (a YAML list; ``Sequence`` becomes a tuple), ``dict`` / ``Mapping``,
  ``Optional`` and unions, ``Literal``, enums (by value), nested dataclasses, and ``Any`` (the value
  passes through untouched — ``dict[str, Any]`` is how a section carries free-form constructor
  arguments). A schema's own ``__post_init__`` checks raise ``ValueError``; they are reported with
  the section's path.
- Overrides ``section.key=value`` (the value parsed as YAML: ``trainer.lr=3e-4``,
  ``data.speakers=[1,2]``, ``trainer.grad_clip=null``) are applied to the merged mapping before
  validation, so a misspelt override is caught like a misspelt key. They may create sections the
  file leaves out.
- ``base:`` (top level only, so no schema may have a field named ``base``): paths relative to the
  including file, merged in order, then this file on top. Mappings merge key by key (the
  including file wins), anything else (lists, scalars) is replaced. Chains are allowed; loops are
  errors. Note that free-form ``dict[str, Any]`` sections merge too: a child that switches
  ``model.name`` keeps the base's other ``model`` keys.

Hashes
- ``recipe_hash(obj)``: sha256 of the canonical JSON (sorted keys, no whitespace) of the resolved
  recipe: stable across key order, formatting, comments and ``base:`` layout. This is provenance.
- ``resume_hash(obj)``: the same, skipping fields whose dataclass metadata has
  ``{RESUME_SAFE: True}`` (the trainer's marker, ``training.trainer.config``) — settings a run may
  change when it resumes (total steps, logging cadence, progress bar) without changing what the
  finished steps computed.
- ``run_identity(obj)``: both hashes and the resolved YAML, the form in which the trainer
  receives a recipe (it never imports this package).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from training.recipes.schema import SchemaProblems, convert_dataclass, describe
from training.trainer.config import RESUME_SAFE
from training.trainer.identity import RunIdentity

T = TypeVar("T")
BASE_KEY = "base"


class RecipeError(ValueError):
    """A recipe that does not fit its schema; ``problems`` lists every dotted-path complaint."""

    def __init__(self, problems: Sequence[str], source: str = "recipe") -> None:
        self.problems, self.source = tuple(problems), source
        if len(self.problems) == 1:
            message = f"{source}: {self.problems[0]}"
        else:
            message = f"{source}: {len(self.problems)} problems:\n  - " + "\n  - ".join(self.problems)
        super().__init__(message)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads scalars the YAML 1.2 way.

    ``1e-3`` is a float and only true/false are booleans (``off``, ``no``, ``yes`` are strings).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: let SafeLoader raise its own error
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.2 booleans only: YAML 1.1 reads `amp: off` or `norway: no` as false.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# YAML 1.1 requires a dot in a float ("1.0e-3"); people write "1e-3". Appended after the stock
# resolvers, so it only catches what they leave as a string.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


# ------------------------------------------------------------------------------------ reading


def read_recipe_yaml(path: str | os.PathLike[str], _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping of a recipe file with its ``base:`` files merged in (not yet validated)."""
    path = Path(path).resolve()
    if path in _chain:
        loop = " -> ".join(str(p) for p in (*_chain, path))
        raise RecipeError([f"'base' loops: {loop}"], str(_chain[0]))
    try:
        data = _yaml_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RecipeError([f"cannot read the recipe: {e.strerror or e}"], str(path)) from e
    except yaml.YAMLError as e:
        raise RecipeError([f"invalid YAML: {e}"], str(path)) from e
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise RecipeError([f"the top level must be a mapping, got {describe(data)}"], str(path))
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        return data
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise RecipeError([f"{BASE_KEY}: expected a path or a list of paths"], str(path))
    merged: dict[str, Any] = {}
    for base in bases:
        merged = _deep_merge(merged, read_recipe_yaml(path.parent / base, (*_chain, path)))
    return _deep_merge(merged, data)


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``dotted.key=yaml-value`` override set (sections created)."""
    out = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise RecipeError([f"override {item!r}: expected section.key=value"], "overrides")
        try:
            value = _yaml_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise RecipeError([f"override {item!r}: the value is not valid YAML ({e})"], "overrides") from e
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise RecipeError([f"override {item!r}: {where} is {describe(child)}, not a section"], "overrides")
            node = child
        node[parts[-1]] = value
    return out


def build_recipe(data: Mapping[str, Any], schema: type[T], overrides: Sequence[str] = (), source: str = "recipe") -> T:
    """Validate a mapping (plus overrides) against a dataclass ``schema``; raises ``RecipeError``."""
    if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
        raise TypeError(f"schema must be a dataclass type, got {schema!r}")
    merged = apply_overrides(data, overrides)
    try:
        return convert_dataclass(merged, schema)
    except SchemaProblems as e:
        raise RecipeError(e.problems, source) from None


def load_recipe(path: str | os.PathLike[str], overrides: Sequence[str] = (), *, schema: type[T]) -> T:
    """Read the YAML recipe at ``path`` (``base:`` merged), apply ``overrides``, build ``schema``.

    Raises ``RecipeError`` listing every unknown/missing key and type error by dotted path.
    """
    return build_recipe(read_recipe_yaml(path), schema, overrides, source=str(path))


# ------------------------------------------------------------------------- writing and hashing


def to_plain(obj: Any, *, skip_resume_safe: bool = False) -> Any:
    """JSON/YAML-ready plain data: dataclasses → dicts, tuples → lists, paths → strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_plain(getattr(obj, f.name), skip_resume_safe=skip_resume_safe)
            for f in dataclasses.fields(obj)
            if f.init and not (skip_resume_safe and f.metadata.get(RESUME_SAFE))
        }
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v, skip_resume_safe=skip_resume_safe) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, skip_resume_safe=skip_resume_safe) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot write {type(obj).__name__} into a recipe")


def _sha256(plain: Any) -> str:
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def recipe_hash(obj: Any) -> str:
    """sha256 (hex) of the canonical JSON of a resolved recipe (key order does not matter)."""
    return _sha256(to_plain(obj))


def resume_hash(obj: Any) -> str:
    """Like ``recipe_hash`` but blind to ``resume_safe`` fields: what a resumed run must match."""
    return _sha256(to_plain(obj, skip_resume_safe=True))


def run_identity(obj: Any) -> RunIdentity:
    """What the trainer records of the resolved recipe ``obj``: its two hashes and its YAML."""
    return RunIdentity(recipe_hash=recipe_hash(obj), resume_hash=resume_hash(obj), text=to_yaml(obj))


def to_yaml(obj: Any, header: str | None = None) -> str:
    """The resolved recipe as YAML (field order kept); ``load_recipe`` reads it back equal.

    ``header`` lines are written as ``#`` comments on top (e.g. the recipe hash).
    """
    text = yaml.safe_dump(to_plain(obj), sort_keys=False, allow_unicode=True, default_flow_style=False)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    return text
